"""The Workers AI model catalogue: one data file (`workers_ai.yaml`) and its typed loader.

The emulator, the gateway and the load profiles all read the catalogue through `load()`;
nothing else in the project names a model, a price, a limit or an error code.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = [
    "Catalogue",
    "Deprecation",
    "ErrorSpec",
    "Model",
    "ParameterRange",
    "Price",
    "Task",
    "load",
]

TaskName = Literal["text-generation", "text-embeddings"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Price(_Frozen):
    """Neurons (or US dollars) per million input and output tokens."""

    input: float
    output: float


class Deprecation(_Frozen):
    date: dt.date
    replacement: str


class Task(_Frozen):
    id: str
    name: str
    description: str


class ErrorSpec(_Frozen):
    """An upstream error: its Cloudflare code, HTTP status and message template."""

    code: int
    status: int
    message: str

    def format(self, **fields: object) -> str:
        return self.message.format(**fields)


class ParameterRange(_Frozen):
    type: Literal["integer", "number", "boolean", "string"]
    min: float | None = None
    max: float | None = None


class ChatTemplateTokens(_Frozen):
    per_request: int
    per_message: int


class FreePlan(_Frozen):
    daily_neurons: float
    reset: str


# Workers AI's default output limit for the classic text models (cloudflare-workers-ai.md).
CLASSIC_MAX_TOKENS = 256


class Model(_Frozen):
    name: str
    id: str
    task: TaskName
    description: str
    created_at: str
    price: Price
    usd_per_m: Price
    rate_limit_class: str | None = None
    deprecated: Deprecation | None = None
    assumed: tuple[str, ...] = ()
    # text generation
    context_window: int | None = None
    default_max_tokens: int | None = None
    input: Literal["native", "openai"] = "native"
    result: Literal["native", "openai"] = "native"
    tool_calls: Literal["legacy", "openai"] = "legacy"
    function_calling: bool = False
    json_mode: bool = False
    responses_api: bool = False  # served on /ai/v1/responses (the GPT-OSS models)
    vision: bool = False  # takes images in its messages
    # embeddings
    dimensions: int | None = None
    max_input_tokens: int | None = None
    max_batch: int | None = None
    info: str | None = None

    @property
    def limit_class(self) -> str:
        """The per-minute rate-limit class: a per-model exception, or the task's default."""
        return self.rate_limit_class or self.task

    def retired_on(self, day: dt.date) -> bool:
        return self.deprecated is not None and day >= self.deprecated.date

    @property
    def max_tokens_applied(self) -> int:
        """The output limit the upstream applies when a request sets none (the classic models'
        256 where the catalogue gives no default)."""
        return self.default_max_tokens or CLASSIC_MAX_TOKENS

    def neurons(self, input_tokens: int, output_tokens: int) -> float:
        """Neurons a call costs: tokens times the per-million prices."""
        return (input_tokens * self.price.input + output_tokens * self.price.output) / 1e6


class Catalogue(_Frozen):
    tasks: dict[TaskName, Task]
    rate_limits: dict[str, int]
    free_plan: FreePlan
    text_generation_parameters: dict[str, ParameterRange]
    prompt_max_chars: int
    chat_template_tokens: ChatTemplateTokens
    errors: dict[str, ErrorSpec]
    defaults: dict[TaskName, str]
    models: tuple[Model, ...] = Field(min_length=1)

    _by_name: dict[str, Model] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: object, /) -> None:
        self._by_name.update((m.name, m) for m in self.models)
        for task, name in self.defaults.items():
            if getattr(self._by_name.get(name), "task", None) != task:
                raise ValueError(f"the default {task} model {name!r} is not a {task} model of the catalogue")

    def default(self, task: TaskName) -> Model:
        """The model used for `task` where nobody named one."""
        return self._by_name[self.defaults[task]]

    def model(self, name: str) -> Model | None:
        return self._by_name.get(name)

    def error(self, key: str) -> ErrorSpec:
        return self.errors[key]

    def rpm(self, model: Model) -> int:
        return self.rate_limits.get(model.limit_class, self.rate_limits[model.task])


@cache
def load() -> Catalogue:
    """Read and validate the packaged catalogue (once per process)."""
    text = resources.files(__package__).joinpath("workers_ai.yaml").read_text(encoding="utf-8")
    return Catalogue.model_validate(yaml.safe_load(text))
