"""Model names: aliases, the `#task` suffix, retired models; and the model-list endpoints."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from workerprobe.catalogue import Catalogue, Model
from workerprobe.gateway.errors import BadRequest, NotFound
from workerprobe.gateway.protocol import json_response
from workerprobe.settings import GatewaySettings

__all__ = ["ModelRouter", "Resolved", "list_models", "retrieve_model", "routes", "search_models"]


@dataclass(frozen=True, slots=True)
class Resolved:
    model: Model
    requested: str
    replaced: str | None = None  # the retired model this one stands in for

    def headers(self) -> dict[str, str]:
        if self.replaced is None:
            return {}
        return {"x-workerprobe-model-replaced": f"{self.replaced} -> {self.model.name}"}


class ModelRouter:
    def __init__(self, catalogue: Catalogue, settings: GatewaySettings) -> None:
        self.catalogue = catalogue
        self.settings = settings
        # A plain dict: the catalogue's own index is a pydantic private attribute, whose every read
        # goes through BaseModel.__getattr__ (it showed in the hot path's profile).
        self._by_name = {model.name: model for model in catalogue.models}
        self._aliases = settings.model_aliases

    def lookup(self, requested: str) -> Model | None:
        name = requested.split("#", 1)[0]
        return self._by_name.get(self._aliases.get(name, name))

    def resolve(self, requested: str, task: str, endpoint: str | None = None) -> Resolved:
        """The model to call for `task`. Called from an endpoint (`v1/chat/completions`,
        `v1/embeddings`), a model of another task is 404 as OpenAI answers; from the Assistants
        API, 400 ("cannot be used with the Assistants API")."""
        model = self.lookup(requested)
        if model is None:
            raise NotFound(f"The model `{requested}` does not exist", param="model", code="model_not_found")
        if model.task != task:
            # OpenAI answers a model an endpoint cannot serve 404, as one that does not exist
            # ("This is not a chat model and thus not supported in the v1/chat/completions endpoint").
            kind = "an embeddings" if model.task == "text-embeddings" else "a text-generation"
            if endpoint is None:
                raise BadRequest(
                    f"The model `{requested}` is {kind} model and cannot be used with the Assistants API",
                    param="model",
                    code="model_not_supported",
                )
            raise NotFound(
                f"The model `{requested}` is {kind} model and thus not supported in the {endpoint} endpoint",
                param="model",
                code="model_not_supported",
            )
        if model.deprecated is not None and model.retired_on(dt.datetime.now(dt.UTC).date()):
            replacement = self.catalogue.model(model.deprecated.replacement)
            if self.settings.retired_models == "error" or replacement is None:
                raise NotFound(
                    f"The model `{requested}` was retired on {model.deprecated.date}; "
                    f"use `{model.deprecated.replacement}`",
                    param="model",
                    code="model_not_found",
                )
            return Resolved(replacement, requested, replaced=model.name)
        return Resolved(model, requested)


def _item(model: Model) -> dict[str, object]:
    created = dt.datetime.strptime(model.created_at[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    item: dict[str, object] = {
        "id": model.name,
        "object": "model",
        "created": int(created.timestamp()),
        "owned_by": model.name.split("/")[1] if model.name.count("/") >= 2 else "cloudflare",
        "task": model.task,
        "description": model.description,
    }
    if model.context_window is not None:
        item["context_window"] = model.context_window
    if model.dimensions is not None:
        item["dimensions"] = model.dimensions
    if model.deprecated is not None:
        item["deprecation"] = {"date": model.deprecated.date.isoformat(), "replacement": model.deprecated.replacement}
    return item


async def list_models(request: Request) -> Response:
    router: ModelRouter = request.app.state.models
    return json_response({"object": "list", "data": [_item(m) for m in router.catalogue.models]})


async def retrieve_model(request: Request) -> Response:
    router: ModelRouter = request.app.state.models
    requested = request.path_params["model"]
    model = router.lookup(requested)
    if model is None:
        raise NotFound(f"The model `{requested}` does not exist", param="model", code="model_not_found")
    return json_response(_item(model))


async def search_models(request: Request) -> Response:
    """`/models/search`: an HTML table (no auth), or JSON with `?query=json`: `{"data": [...]}`,
    as the upstream Worker (pa4080/openai-to-cloudflare-ai) answers it, so scripts written for it
    read ours."""
    router: ModelRouter = request.app.state.models
    items = [_item(m) for m in router.catalogue.models]
    query = request.query_params.get("query")
    if query == "json":
        return json_response({"object": "list", "data": items})
    if query is not None:
        raise BadRequest(f"Invalid value for 'query': {query!r}; the only value is 'json'", param="query")
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(item.get(k, '')))}</td>" for k in ("id", "task", "owned_by", "description"))
        + "</tr>"
        for item in items
    )
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Models</title></head><body>'
        "<h1>Workers AI models</h1><table><thead><tr><th>id</th><th>task</th><th>owned by</th>"
        f"<th>description</th></tr></thead><tbody>{rows}</tbody></table></body></html>"
    )
    return HTMLResponse(page)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
    Route("/models/search", search_models, methods=["GET"]),
]
