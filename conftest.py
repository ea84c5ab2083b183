"""The suite's pytest plugin (target, pre-flight, budget, reports) for this repository's tests."""

pytest_plugins = ["workerprobe.suite.plugin"]
