"""Assistants, threads, messages and runs (OpenAI Assistants API v2)."""
