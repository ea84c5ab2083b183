"""The thinnest OpenAI pass-through to Workers AI's own /ai/v1 endpoint: the benchmark's baseline.

python bench/thin_passthrough.py PORT UPSTREAM_BASE
"""

import gc
import sys
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = sys.argv[2]
session: aiohttp.ClientSession


@asynccontextmanager
async def lifespan(app):
    global session
    session = aiohttp.ClientSession(headers={"Authorization": "Bearer bench"})
    yield
    await session.close()


async def chat(request: Request) -> Response:
    body = await request.body()
    upstream = await session.post(
        f"{UPSTREAM}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    if upstream.headers.get("content-type", "").startswith("text/event-stream"):

        async def relay():
            async with upstream:
                async for chunk in upstream.content.iter_any():
                    yield chunk

        return StreamingResponse(relay(), media_type="text/event-stream")
    async with upstream:
        return Response(await upstream.read(), upstream.status, media_type="application/json")


# The same collector settings as `workerprobe gateway` (cli._serve), so the comparison is fair.
gc.collect()
gc.freeze()
gc.set_threshold(20_000, 50, 100)
app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan)
uvicorn.run(
    app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", log_level="warning", access_log=False
)
