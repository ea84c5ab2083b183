"""workerprobe: contract tests, load profiles, a reference gateway and a Workers AI emulator."""

__version__ = "0.1.0"
