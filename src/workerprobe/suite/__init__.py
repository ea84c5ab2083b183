"""The contract suite's own code: target selection, OpenAI checks, levels."""

# Generated cases per operation and phase, by `workerprobe test --depth`.
DEPTHS = {"quick": 4, "default": 12, "deep": 120}
