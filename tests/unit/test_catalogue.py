from __future__ import annotations

import datetime as dt

from workerprobe.catalogue import load


def test_the_upstream_workers_defaults_and_current_models_are_there() -> None:
    catalogue = load()
    for name in [
        "@cf/meta/llama-3-8b-instruct",
        "@cf/meta/llama-3.2-1b-instruct",
        "@cf/meta/llama-3.2-3b-instruct",
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "@cf/mistral/mistral-7b-instruct-v0.1",
        "@hf/mistral/mistral-7b-instruct-v0.2",
        "@cf/baai/bge-base-en-v1.5",
        "@cf/meta/llama-3.1-8b-instruct-fast",
        "@cf/meta/llama-3.1-8b-instruct-fp8-fast",
        "@cf/google/gemma-4-26b-a4b-it",
        "@cf/zai-org/glm-4.7-flash",
        "@cf/baai/bge-small-en-v1.5",
        "@cf/baai/bge-large-en-v1.5",
        "@cf/baai/bge-m3",
    ]:
        assert catalogue.model(name) is not None, name


def test_prices_limits_and_retirement() -> None:
    catalogue = load()
    llama = catalogue.model("@cf/meta/llama-3.3-70b-instruct-fp8-fast")
    assert llama is not None and llama.context_window == 24000 and llama.default_max_tokens == 256
    assert llama.neurons(1_000_000, 1_000_000) == 26668 + 204805
    assert catalogue.rpm(llama) == 300
    large = catalogue.model("@cf/baai/bge-large-en-v1.5")
    assert large is not None and catalogue.rpm(large) == 1500
    base = catalogue.model("@cf/baai/bge-base-en-v1.5")
    assert base is not None and catalogue.rpm(base) == 3000 and base.dimensions == 768
    old = catalogue.model("@cf/meta/llama-3-8b-instruct")
    assert old is not None and old.deprecated is not None
    assert not old.retired_on(dt.date(2026, 5, 29)) and old.retired_on(dt.date(2026, 5, 30))
    assert catalogue.model(old.deprecated.replacement) is not None
    assert catalogue.free_plan.daily_neurons == 10_000


def test_every_replacement_is_an_active_model() -> None:
    catalogue = load()
    for model in catalogue.models:
        if model.deprecated is not None:
            replacement = catalogue.model(model.deprecated.replacement)
            assert replacement is not None and replacement.deprecated is None
            assert replacement.task == model.task
