"""The free-plan methods of the reference gateway, each switchable in the settings:

- retry.py     transient upstream failures retried (backoff, Retry-After, deadline, budget)
- budget.py    neuron budgets per UTC day (total, per key, per model) and per-key rate limits
- cache.py     exact-match response cache for deterministic chat requests
- the chat service (chat/service.py) continues cut answers, processes long texts part by part
  and checks the context window; the embeddings endpoint splits batches and truncates inputs
"""
