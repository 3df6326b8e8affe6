"""An OpenAI-compatible HTTP server over the engine: ``/v1/models`` and ``/v1/chat/completions``.

Model ids are the base name and every adapter name. Concurrent requests (for any mix of adapters) are
decoded together by the batch scheduler. Errors use OpenAI's body shape: ``{"error": {"message", "type",
"param", "code"}}``. Accepts vLLM's extras ``ignore_eos`` and ``min_tokens``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .adapters import AdapterError
from .engine import Engine, GenRequest, InputError, StreamEvent
from .generation import GenerationParams
from .scheduler import BatchScheduler, Ticket

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields we do not use (user, n=1, ...)

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    ignore_eos: bool = False
    min_tokens: int = 0
    stream_options: dict[str, Any] | None = None


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _err(status: int, message: str, **kw: Any) -> JSONResponse:
    return JSONResponse(error_body(message, **kw), status_code=status)


def create_app(engine: Engine, max_batch: int = 8, window_s: float = 0.02) -> FastAPI:
    """The ASGI app; one scheduler per app (no module state, so tests can run several)."""
    scheduler = BatchScheduler(engine, max_batch=max_batch, window_s=window_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        scheduler.close()

    app = FastAPI(title="Bactrian-X OpenAI-compatible server", lifespan=lifespan)
    app.state.engine = engine
    app.state.scheduler = scheduler

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _err(400, f"invalid request: {loc}: {first.get('msg', 'bad value')}", param=loc or None)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > MAX_BODY_BYTES:
            return _err(413, f"request body is {size} bytes; the limit is {MAX_BODY_BYTES}", code="request_too_large")
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "base": engine.base_name, "batches_run": scheduler.batches_run}

    @app.get("/v1/models")
    async def models() -> dict:
        created = int(time.time())
        data = [{"id": engine.base_name, "object": "model", "created": created, "owned_by": "bactrian", "root": engine.base_name, "parent": None}]
        for info in engine.adapters.infos():
            data.append({"id": info.name, "object": "model", "created": created, "owned_by": "bactrian", "root": engine.base_name, "parent": engine.base_name, "languages": list(info.languages)})
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        if body.model not in engine.variants():
            return _err(400, f"unknown model {body.model!r}; available: {', '.join(engine.variants())}", param="model", code="model_not_found")
        if body.n != 1:
            return _err(400, "only n=1 is supported", param="n")
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        try:
            params = GenerationParams(
                max_new_tokens=next((v for v in (body.max_completion_tokens, body.max_tokens) if v is not None), 256),
                temperature=body.temperature,
                top_p=body.top_p,
                top_k=body.top_k,
                repetition_penalty=body.repetition_penalty,
                seed=body.seed,
                min_tokens=body.min_tokens,
                ignore_eos=body.ignore_eos,
                stop=stop,
            ).validate()
            prompt = engine.prompt_for([m.model_dump() for m in body.messages])
        except (ValueError, InputError) as e:
            return _err(400, str(e))
        gen = GenRequest(prompt, None if body.model == engine.base_name else body.model, params)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[StreamEvent | Exception] = asyncio.Queue()
        ticket = Ticket(gen, lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev))
        scheduler.submit(ticket)
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            first = await events.get()  # errors before the first token still get a proper status code
            if isinstance(first, Exception):
                return _error_response(first)
            return StreamingResponse(_sse(first, events, ticket, request, rid, created, body.model, include_usage), media_type="text/event-stream")
        text = ""
        while True:
            ev = await events.get()
            if isinstance(ev, Exception):
                return _error_response(ev)
            text += ev.delta
            if ev.finished:
                break
        usage = {"prompt_tokens": ev.prompt_tokens, "completion_tokens": ev.completion_tokens, "total_tokens": ev.prompt_tokens + ev.completion_tokens}
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": ev.finish_reason, "logprobs": None}],
            "usage": usage,
        }

    return app


def _error_response(e: Exception) -> JSONResponse:
    if isinstance(e, (InputError, AdapterError, ValueError)):
        code = "context_length_exceeded" if "context length" in str(e) else None
        return _err(400, str(e), code=code)
    log.error("generation failed: %s", e)
    return _err(500, f"generation failed: {type(e).__name__}", type_="server_error")


async def _sse(first, events, ticket: Ticket, request: Request, rid: str, created: int, model: str, include_usage: bool):
    def chunk(delta: dict, finish: str | None, usage: dict | None = None) -> str:
        payload = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if usage is not None:
            payload = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    ev = first
    try:
        while True:
            if isinstance(ev, Exception):
                yield f"data: {json.dumps(error_body(str(ev), 'server_error'))}\n\n"
                break
            if ev.delta:
                yield chunk({"content": ev.delta}, None)
            if ev.finished:
                yield chunk({}, ev.finish_reason)
                if include_usage:
                    yield chunk({}, None, {"prompt_tokens": ev.prompt_tokens, "completion_tokens": ev.completion_tokens, "total_tokens": ev.prompt_tokens + ev.completion_tokens})
                break
            if await request.is_disconnected():
                ticket.cancelled.set()
                return
            ev = await events.get()
        yield "data: [DONE]\n\n"
    finally:
        ticket.cancelled.set()  # a client that went away frees its batch row


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    import uvicorn

    uvicorn.run(create_app(engine), host=host, port=port, log_level=log_level)
