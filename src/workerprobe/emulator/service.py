"""What the emulator does for each call: admission (model, faults, limits), generation or
embedding, metering, and the response in the shape the real API gives."""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from starlette.responses import Response

from workerprobe.catalogue import Catalogue, Model
from workerprobe.emulator import embeddings, responses, shapes
from workerprobe.emulator.batch import Batches
from workerprobe.emulator.errors import UpstreamError, envelope_response
from workerprobe.emulator.faults import Faults
from workerprobe.emulator.generation import Completion, Prompt, SchemaUnmet, generate
from workerprobe.emulator.limits import Clock, Meter, RateLimiter
from workerprobe.emulator.streams import PacedStream
from workerprobe.emulator.validation import embedding_input, text_generation_input
from workerprobe.settings import EmulatorSettings

__all__ = ["Call", "Emulator", "Reply"]

Reply = Response | PacedStream

Surface = Literal["run", "v1"]  # /ai/run/{model} (envelope) or /ai/v1/* (OpenAI-shaped)


@dataclass(frozen=True, slots=True)
class Call:
    account: str
    model_name: str
    body: Any
    fault_header: str | None
    stall_ms: float | None = None
    trace_id: str | None = None  # the client's x-request-id: the call's trace is kept under it
    arrived: float = 0.0  # time.monotonic() when the request arrived


class Emulator:
    """The emulator's state and behaviour; one per app."""

    def __init__(self, settings: EmulatorSettings, catalogue: Catalogue) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.clock = Clock()
        daily = settings.daily_neurons
        if daily is None and settings.free_plan:
            daily = catalogue.free_plan.daily_neurons
        self.meter = Meter(self.clock, daily)
        self.limiter = RateLimiter(self.clock)
        self.faults = Faults(settings.fault_rates, settings.fault_seed, settings.retry_after_s)
        # The server's clock per streamed call, by the client's x-request-id (the newest 20,000).
        self.traces: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._anonymous = 0
        self.batches = Batches(self.clock.now, settings.batch_queue_s, settings.batch_run_s)
        self._slots: dict[str, asyncio.Semaphore] = {}  # per model, with `model_concurrency`

    def anonymous_trace_id(self) -> str | None:
        """With `trace_all`, an id for a call that came without one; else None (not traced)."""
        if not self.settings.trace_all:
            return None
        self._anonymous += 1
        return f"anon-{self._anonymous}"

    def trace(self, call: Call) -> dict[str, Any] | None:
        if call.trace_id is None:
            return None
        entry: dict[str, Any] = {"arrived": call.arrived, "started": None, "tokens": []}
        self.traces[call.trace_id] = entry
        while len(self.traces) > 20_000:
            self.traces.popitem(last=False)
        return entry

    # -- admission ---------------------------------------------------------------------------

    def model(self, name: str) -> Model:
        model = self.catalogue.model(name)
        if model is None:
            raise UpstreamError("no_such_model", model=name)
        if model.deprecated is not None and model.retired_on(self.clock.today()):
            raise UpstreamError(
                "model_retired", model=name, replacement=model.deprecated.replacement, date=model.deprecated.date
            )
        return model

    def _admit(self, call: Call, model: Model, text: str) -> str | None:
        """Faults, daily allocation, per-minute limit; returns the stream fault to apply."""
        fault = self.faults.pick(call.fault_header, text)
        self.faults.raise_error(fault)
        if self.meter.exhausted(call.account):
            raise UpstreamError("daily_quota" if self.settings.quota_code == "4006" else "daily_quota_documented")
        if self.settings.rate_limits:
            wait = self.limiter.acquire(call.account, model.limit_class, self.catalogue.rpm(model))
            if wait is not None:
                headers = None
                if self.settings.retry_after_s is not None:
                    headers = {"retry-after": str(max(math.ceil(wait), 1))}
                raise UpstreamError("rate_limited", headers=headers)
        return fault

    def record_error(self, account: str, error: UpstreamError) -> None:
        self.meter.record_error(account, error.code)

    # -- text generation ---------------------------------------------------------------------

    async def _slot(self, call: Call, model: Model, fault: str | None) -> Callable[[], None]:
        """A place among the generations the model serves at once: waits for one (Workers AI
        queues), or with `options.rejectIfBusy` answers 429 / 3040 at once. Returns its release."""
        options = call.body.get("options") if isinstance(call.body, dict) else None
        reject = isinstance(options, dict) and options.get("rejectIfBusy") is True
        limit = self.settings.model_concurrency
        slots = self._slots.setdefault(model.name, asyncio.Semaphore(limit)) if limit else None
        busy = fault == "busy" or (slots is not None and slots.locked())
        if busy and reject:
            raise UpstreamError("capacity")
        if fault == "busy":
            await asyncio.sleep(self.settings.busy_wait_s)
        if slots is None:
            return lambda: None
        await slots.acquire()
        return slots.release

    def _complete(
        self, account: str, model: Model, prompt: Prompt, prompt_tokens: int
    ) -> tuple[Completion, dict[str, Any]]:
        """Generate and meter one text generation: the completion and its usage."""
        try:
            completion = generate(model.name, prompt)
        except SchemaUnmet:
            raise UpstreamError("json_mode_unmet") from None
        neurons = model.neurons(prompt_tokens, completion.completion_tokens)
        usage = shapes.usage(model, prompt_tokens, completion, neurons)
        self.meter.record(account, model.name, prompt_tokens, completion.completion_tokens, neurons)
        return completion, usage

    async def text_generation(self, call: Call, model: Model, surface: Surface) -> Reply:
        prompt, prompt_tokens, stream = text_generation_input(call.body, model, self.catalogue)
        fault = self._admit(call, model, prompt.last_user)
        release = await self._slot(call, model, fault)
        try:
            completion, usage = self._complete(call.account, model, prompt, prompt_tokens)
        except BaseException:
            release()
            raise
        settings = self.settings
        if stream:
            if surface == "v1":
                events = shapes.v1_stream_events(call.model_name, model, completion, usage)
            else:
                events = shapes.run_stream_events(model, completion, usage, settings.padding)
            stall = call.stall_ms if call.stall_ms is not None else settings.stall_ms
            return PacedStream(
                events, settings.ttft_s, settings.tpot_s, fault, stall / 1000, self.trace(call), on_done=release
            )
        try:
            duration = settings.ttft_s + completion.completion_tokens * settings.tpot_s
            if duration > settings.timeout_s:
                await asyncio.sleep(settings.timeout_s)
                raise UpstreamError("timeout")
            if duration > 0:
                await asyncio.sleep(duration)
        finally:
            release()
        if surface == "v1":
            return _json(shapes.openai_completion(call.model_name, model, completion, usage))
        return envelope_response(self._run_result(model, completion, usage))

    async def responses(self, call: Call) -> Response:
        """`/ai/v1/responses` (the GPT-OSS models): read as the chat body the model takes, generated
        and paced as a whole chat completion, answered as a Response object (emulator/responses.py
        says what is assumed)."""
        model = self.model(call.model_name)
        if model.task != "text-generation":
            raise UpstreamError("no_such_model", model=call.model_name)
        body = call.body if isinstance(call.body, dict) else {}
        prompt, prompt_tokens, _ = text_generation_input(responses.as_chat(call.body, model), model, self.catalogue)
        fault = self._admit(call, model, prompt.last_user)
        release = await self._slot(call, model, fault)
        try:
            completion, usage = self._complete(call.account, model, prompt, prompt_tokens)
            duration = self.settings.ttft_s + completion.completion_tokens * self.settings.tpot_s
            if duration > self.settings.timeout_s:
                await asyncio.sleep(self.settings.timeout_s)
                raise UpstreamError("timeout")
            if duration > 0:
                await asyncio.sleep(duration)
        finally:
            release()
        return _json(responses.response(call.model_name, body, completion, usage))

    @staticmethod
    def _run_result(model: Model, completion: Completion, usage: dict[str, Any]) -> dict[str, Any]:
        if model.result == "openai":
            return shapes.openai_completion(model.name, model, completion, usage)
        return shapes.native_result(model, completion, usage)

    # -- embeddings --------------------------------------------------------------------------

    async def embeddings(self, call: Call, model: Model, surface: Surface) -> Response:
        data, input_tokens = embedding_input(call.body, model, openai_shape=surface == "v1")
        self._admit(call, model, data.texts[-1])
        neurons = model.neurons(input_tokens, 0)
        self.meter.record(call.account, model.name, input_tokens, 0, neurons)
        if self.settings.ttft_s > 0:
            await asyncio.sleep(self.settings.ttft_s)
        if surface == "v1":
            vectors = embeddings.embed(data.texts, model.dimensions or 768, data.pooling)
            return _json(
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                    "model": call.model_name,
                    "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
                }
            )
        return envelope_response(self._embedding_result(model, call.body, data))

    @staticmethod
    def _embedding_result(model: Model, body: Any, data: Any) -> dict[str, Any]:
        dims = model.dimensions or 768
        if data.query is not None:
            return {"response": embeddings.rank(data.query, data.texts, dims)}
        vectors = embeddings.embed(data.texts, dims, data.pooling)
        if isinstance(body, dict) and "contexts" in body and "text" not in body:
            return {"response": vectors, "shape": [len(vectors), dims], "pooling": data.pooling}
        return {"shape": [len(vectors), dims], "data": vectors, "pooling": data.pooling}

    # -- the batch API -----------------------------------------------------------------------

    def batch(self, call: Call, size: int) -> Response:
        """`?queueRequest=true`: a batch sent (`requests`) or polled (`request_id`); batch.py."""
        model = self.model(call.model_name)
        generating = model.task == "text-generation"

        def check(request: dict[str, Any]) -> None:
            if generating:
                text_generation_input(request, model, self.catalogue)
            else:
                embedding_input(request, model)

        def answer(request: dict[str, Any]) -> tuple[Any, dict[str, int]]:
            if generating:
                prompt, prompt_tokens, _ = text_generation_input(request, model, self.catalogue)
                completion, usage = self._complete(call.account, model, prompt, prompt_tokens)
                return self._run_result(model, completion, usage), usage
            data, tokens_in = embedding_input(request, model)
            self.meter.record(call.account, model.name, tokens_in, 0, model.neurons(tokens_in, 0))
            used = {"prompt_tokens": tokens_in, "completion_tokens": 0, "total_tokens": tokens_in}
            return self._embedding_result(model, request, data), used

        body = call.body
        if isinstance(body, dict) and "request_id" in body and "requests" not in body:
            return envelope_response(self.batches.poll(call.account, model.name, body["request_id"], answer))
        return envelope_response(self.batches.submit(call.account, model.name, body, size, check))

    # -- dispatch ----------------------------------------------------------------------------

    async def run(self, call: Call, surface: Surface, task: str | None = None) -> Reply:
        model = self.model(call.model_name)
        if task is not None and model.task != task:
            raise UpstreamError("no_such_model", model=call.model_name)
        if model.task == "text-generation":
            return await self.text_generation(call, model, surface)
        return await self.embeddings(call, model, surface)

    # -- catalogue ---------------------------------------------------------------------------

    def search(self, task: str | None, search: str | None, page: int, per_page: int | None) -> Response:
        today = self.clock.today()
        found = []
        for model in self.catalogue.models:
            if model.retired_on(today):
                continue
            task_info = self.catalogue.tasks[model.task]
            if task and task.lower() not in (task_info.name.lower(), model.task):
                continue
            if search and search.lower() not in model.name.lower() and search.lower() not in model.description.lower():
                continue
            found.append(_search_object(model, task_info.model_dump()))
        total = len(found)
        shown = found
        if self.settings.honour_per_page and per_page:
            shown = found[(page - 1) * per_page : page * per_page]
        info = {
            "page": page,
            "per_page": per_page if self.settings.honour_per_page and per_page else total,
            "count": len(shown),
            "total_count": total,
        }
        return envelope_response(shown, result_info=info)


def _search_object(model: Model, task: dict[str, Any]) -> dict[str, Any]:
    properties: list[dict[str, Any]] = []
    prices = [{"unit": "per M input tokens", "price": model.usd_per_m.input, "currency": "USD"}]
    if model.task == "text-generation":
        prices.append({"unit": "per M output tokens", "price": model.usd_per_m.output, "currency": "USD"})
        properties.append({"property_id": "context_window", "value": str(model.context_window)})
        if model.function_calling:
            properties.append({"property_id": "function_calling", "value": "true"})
    else:
        properties.append({"property_id": "async_queue", "value": "true"})
        properties.append({"property_id": "max_input_tokens", "value": str(model.max_input_tokens)})
        properties.append({"property_id": "output_dimensions", "value": str(model.dimensions)})
    properties.append({"property_id": "price", "value": prices})
    if model.info:
        properties.append({"property_id": "info", "value": model.info})
    if model.deprecated is not None:
        properties.append({"property_id": "planned_deprecation_date", "value": model.deprecated.date.isoformat()})
    return {
        "id": model.id,
        "source": 1,
        "name": model.name,
        "description": model.description,
        "task": task,
        "created_at": model.created_at,
        "tags": [],
        "properties": properties,
    }


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
