"""The neuron budget of a run against a deployed Worker: every model call is estimated before it
is made (its prompt, plus `max_tokens` at the model's output price), refused when it would pass
the cap, and charged from the `usage` it reports. Prices come from the catalogue; an unknown
model is priced as the dearest one, so the estimate never falls short."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workerprobe import tokens
from workerprobe.catalogue import Catalogue, Model, load

__all__ = ["Budget", "Exhausted", "GENERATION_CAP"]

# max_tokens the suite gives generated chat and run requests against a deployed target.
GENERATION_CAP = 16


class Exhausted(Exception):
    """The next call would pass the cap; the message says why it is not run."""


@dataclass
class Budget:
    max_neurons: float
    catalogue: Catalogue = field(default_factory=load)
    spent: float = 0.0
    refused: int = 0

    def _model(self, name: Any) -> Model:
        model = self.catalogue.model(str(name).split("#", 1)[0]) if name else None
        if model is not None:
            return model
        text = [m for m in self.catalogue.models if m.task == "text-generation"]
        return max(text, key=lambda m: m.price.output)

    def estimate(self, body: dict[str, Any], default_model: str) -> float:
        """Worst-case neurons of one call with this body."""
        model = self._model(body.get("model") or default_model)
        prompt = tokens.count(str(body.get("messages") or body.get("input") or body.get("prompt") or ""))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            limit = model.default_max_tokens or 0  # an invalid value is refused, or the default applies
        return model.neurons(prompt + 16, limit if model.task == "text-generation" else 0)

    def reserve(self, body: dict[str, Any], default_model: str) -> float:
        """Hold the worst case of a call; raises Exhausted when it would pass the cap."""
        cost = self.estimate(body, default_model)
        if self.spent + cost > self.max_neurons:
            self.refused += 1
            raise Exhausted(
                f"not run: this call may cost {cost:.2f} neurons and {self.spent:.2f} of the "
                f"{self.max_neurons:g} allowed (--max-neurons) are spent"
            )
        self.spent += cost
        return cost

    def settle(self, reserved: float, model: str, status: int, usage: Any) -> None:
        """Replace a reservation by what the call used: nothing when it was refused (4xx, 5xx),
        its reported usage when it has one; a stream without usage keeps the worst case."""
        if status >= 400:
            self.spent -= reserved
        elif isinstance(usage, dict):
            prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            self.spent += self._model(model).neurons(prompt, completion) - reserved
