"""An OpenAI-compatible HTTP server over the engine: ``/v1/models`` and ``/v1/chat/completions``.

Model ids are the base name and every adapter name. Every request goes through one generation service
(``bactrian.service``): concurrent requests for any mix of adapters decode together, a new one joining the
running batch at the next step; a client that disconnects frees its row; a full queue answers 429. Errors use OpenAI's body shape: ``{"error": {"message", "type",
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
from .generation import GenerationParams
from .prompter import InputError
from .service import Busy, GenerationService, GenRequest, Stream, StreamEvent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
DISCONNECT_POLL_S = 0.5  # how often a waiting request checks that its client is still there


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


def create_app(service: GenerationService) -> FastAPI:
    """The ASGI app over one generation service (no module state, so tests can run several)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        service.close()

    app = FastAPI(title="Bactrian-X OpenAI-compatible server", lifespan=lifespan)
    app.state.service = service

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
        return {"status": "ok", "base": service.base_name, "engine": service.describe(), "stats": dict(getattr(service, "stats", {}))}

    @app.get("/v1/models")
    async def models() -> dict:
        created = int(time.time())
        base = service.base_name
        data = []
        for v in service.variants():
            entry = {"id": v.name, "object": "model", "created": created, "owned_by": "bactrian", "root": base,
                     "parent": None if v.kind == "base" else base, "languages": list(v.languages)}
            if v.digest:
                entry["digest"] = v.digest  # lineage: which weights answer under this name
            data.append(entry)
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        names = [v.name for v in service.variants()]
        if body.model not in names:
            return _err(400, f"unknown model {body.model!r}; available: {', '.join(names)}", param="model", code="model_not_found")
        if body.n != 1:
            return _err(400, "only n=1 is supported", param="n")
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[StreamEvent | Exception] = asyncio.Queue()
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
            stream = service.submit(GenRequest(body.model, [m.model_dump() for m in body.messages], params=params),
                                    on_event=lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev))
        except Exception as e:  # noqa: BLE001 - bad input, busy: mapped to a status code
            return _error_response(e)
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        first = await _next_event(events, stream, request)  # errors before the first token get a status code
        if first is None:
            return _err(499, "client closed the request", code="cancelled")
        if isinstance(first, Exception):
            return _error_response(first)
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(_sse(first, events, stream, request, rid, created, body.model, include_usage), media_type="text/event-stream")
        text, ev = first.delta, first
        while not ev.finished:
            nxt = await _next_event(events, stream, request)
            if nxt is None:
                return _err(499, "client closed the request", code="cancelled")
            if isinstance(nxt, Exception):
                return _error_response(nxt)
            ev = nxt
            text += ev.delta
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


async def _next_event(events: asyncio.Queue, stream: Stream, request: Request) -> StreamEvent | Exception | None:
    """The next event; None (and the row cancelled) once the client has gone, checked while waiting too."""
    while True:
        try:
            return await asyncio.wait_for(events.get(), timeout=DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                stream.cancel()
                return None


def _error_response(e: Exception) -> JSONResponse:
    if isinstance(e, Busy):
        resp = _err(429, str(e), type_="server_busy", code="busy")
        resp.headers["Retry-After"] = "1"
        return resp
    if isinstance(e, (InputError, AdapterError, ValueError)):
        code = "context_length_exceeded" if "context length" in str(e) else None
        return _err(400, str(e), code=code)
    log.error("generation failed: %s", e)
    return _err(500, f"generation failed: {type(e).__name__}", type_="server_error")


async def _sse(first, events, stream: Stream, request: Request, rid: str, created: int, model: str, include_usage: bool):
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
            ev = await _next_event(events, stream, request)
            if ev is None:
                return
        yield "data: [DONE]\n\n"
    finally:
        stream.cancel()  # a client that went away frees its batch row at the next step
