"""The contract tests' engine lives in workerprobe.suite.contract; this folder holds the tests."""
