"""The contract suite's own code: target selection, OpenAI checks, levels."""
