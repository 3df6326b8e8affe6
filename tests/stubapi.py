"""A test double (not shipped): a small real HTTP server speaking the OpenAI chat/files/batches shape and Google Translation v2, for tests and
benchmarks: it answers after a fixed delay, logs every request (never a key) and can inject errors.

Answers are deterministic: a translation request echoes the text after ``[<language>] ``, markers intact; a chat
request answers ``Answer: <first words of the prompt>``. Run alone: ``python -m tests.stubapi --port 8001``.

The server is asyncio (aiohttp, installed with ``httpx-aiohttp``): a delayed answer is a timer on the loop, not a
thread parked per connection, so the stub's cost does not grow with the client's concurrency. On the project's
loaded 2-core box it answers 32 parallel 200 ms requests in ~230 ms and spends ~0.45 ms of CPU per request
(bench/p4_request_rate.py prints its CPU time), so the P4 benchmark measures the client, not the stub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


@dataclass
class StubConfig:
    delay_s: float = 0.0
    log_path: Path | None = None
    errors: list[int] = field(default_factory=list)  # statuses returned, in order, by the first chat requests
    google_key: str | None = None  # when set, Google requests must carry it
    openai_key: str | None = None  # when set, OpenAI requests must carry it as a Bearer token


class StubState:
    """What tests inspect or change while the server runs (``errors`` may be reassigned from another thread:
    list operations are atomic under the GIL and the server only pops from it)."""

    def __init__(self, config: StubConfig):
        self.config = config
        self.errors = list(config.errors)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.chat_requests = 0
        self._log_file: Any = None

    def log(self, rec: dict[str, Any]) -> None:
        if self.config.log_path is None:
            return
        if self._log_file is None:
            self._log_file = open(self.config.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        # One line per request, flushed at once: the kill -9 test reads the log while the server runs.
        self._log_file.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._log_file.flush()

    def next_error(self) -> int | None:
        self.chat_requests += 1
        try:
            return self.errors.pop(0)
        except IndexError:
            return None

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def chat_answer(body: dict[str, Any]) -> dict[str, Any]:
    msgs = body.get("messages") or []
    system = " ".join(m.get("content", "") for m in msgs if m.get("role") == "system")
    user = msgs[-1].get("content", "") if msgs else ""
    m = re.search(r"into (\w+)", system)
    text = f"[{m.group(1)}] {user}" if "Translate" in system and m else "Answer: " + " ".join(user.split()[:12])
    words = lambda s: max(1, len(s.split()))  # noqa: E731
    pt, ct = sum(words(x.get("content", "")) for x in msgs), words(text)
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json",
                        headers=headers)


def _not_found(path: str) -> web.Response:
    return _json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})


def make_app(state: StubState) -> web.Application:
    """The aiohttp application; every handler reads and writes ``state`` on the event loop's thread."""
    cfg = state.config

    def authorized(request: web.Request) -> bool:
        return cfg.openai_key is None or request.headers.get("Authorization") == f"Bearer {cfg.openai_key}"

    async def models(request: web.Request) -> web.Response:
        return _json(200, {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "stub"}]})

    async def chat(request: web.Request) -> web.Response:
        if not authorized(request):
            return _json(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        body = json.loads(await request.read())
        user = (body.get("messages") or [{}])[-1].get("content", "")
        state.log({"path": "/v1/chat/completions", "model": body.get("model"), "user": user, "t": time.time()})
        # The answer is built before the delay: requests sent together wake together, and whatever is left to
        # do after the sleep is done one request after another on this loop (and adds to every later one).
        answer = _json(200, chat_answer(body))
        if cfg.delay_s:
            await asyncio.sleep(cfg.delay_s)
        err = state.next_error()
        if err:
            return _json(err, {"error": {"message": f"injected {err}", "type": "server_error"}}, {"Retry-After": "0"})
        return answer

    async def upload(request: web.Request) -> web.Response:
        if not authorized(request):
            return _json(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        form = await request.post()
        content = form["file"].file.read()  # type: ignore[union-attr]
        fid = f"file-{uuid.uuid4().hex[:12]}"
        state.files[fid] = content
        state.log({"path": "/v1/files", "file": fid, "lines": content.count(b"\n"), "t": time.time()})
        return _json(200, {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                           "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})

    async def file_content(request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        if fid not in state.files:
            return _not_found(request.path)
        return web.Response(body=state.files[fid], content_type="application/octet-stream")

    async def create_batch(request: web.Request) -> web.Response:
        if not authorized(request):
            return _json(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        body = json.loads(await request.read())
        bid = f"batch_{uuid.uuid4().hex[:12]}"
        state.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"],
                              "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                              "status": "validating", "created_at": int(time.time()), "output_file_id": None,
                              "error_file_id": None}
        state.log({"path": "/v1/batches", "batch": bid, "t": time.time()})
        return _json(200, state.batches[bid])

    async def get_batch(request: web.Request) -> web.Response:
        b = state.batches.get(request.match_info["bid"])
        if b is None:
            return _not_found(request.path)
        if b["status"] == "validating":
            b["status"] = "in_progress"
        elif b["status"] == "in_progress":  # completes on the second poll, so clients must really poll
            lines = [json.loads(ln) for ln in state.files[b["input_file_id"]].decode().splitlines() if ln.strip()]
            out = [json.dumps({"id": f"resp-{i}", "custom_id": ln["custom_id"],
                               "response": {"status_code": 200, "body": chat_answer(ln["body"])}, "error": None})
                   for i, ln in enumerate(lines)]
            fid = f"file-{uuid.uuid4().hex[:12]}"
            state.files[fid] = ("\n".join(out) + "\n").encode()
            b.update(status="completed", output_file_id=fid)
            state.log({"path": "/v1/batches/complete", "batch": b["id"], "n": len(out), "t": time.time()})
        return _json(200, b)

    async def google(request: web.Request) -> web.Response:
        key = request.headers.get("X-Goog-Api-Key") or request.query.get("key")
        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        if cfg.google_key and key != cfg.google_key and not bearer:
            return _json(403, {"error": {"code": 403, "message": "The request is missing a valid API key."}})
        body = json.loads(await request.read())
        q = body["q"] if isinstance(body["q"], list) else [body["q"]]
        state.log({"path": "/language/translate/v2", "n": len(q), "target": body.get("target"), "t": time.time()})
        if cfg.delay_s:
            await asyncio.sleep(cfg.delay_s)
        out = [{"translatedText": f"[{body['target']}] {s}", "detectedSourceLanguage": "en"} for s in q]
        return _json(200, {"data": {"translations": out}})

    async def fallback(request: web.Request) -> web.Response:
        return _not_found(request.path)

    # Batch input files can be large; aiohttp's default cap on a request body is 1 MiB.
    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/files", upload)
    app.router.add_get(r"/v1/files/{fid:[\w-]+}/content", file_content)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get(r"/v1/batches/{bid:[\w-]+}", get_batch)
    app.router.add_post("/language/translate/v2", google)
    # Unknown paths get an OpenAI-shaped JSON error, which the openai client can parse.
    app.router.add_route("*", "/{tail:.*}", fallback)
    return app


async def start(config: StubConfig, port: int = 0, host: str = "127.0.0.1") -> tuple[web.AppRunner, int, StubState]:
    """Start on the running loop; returns the runner (``await runner.cleanup()`` stops it), the port and the state."""
    state = StubState(config)
    # access_log=None: one log line per request would cost more CPU than answering it.
    runner = web.AppRunner(make_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)  # many clients connect at once
    await site.start()
    return runner, runner.addresses[0][1], state


class StubServer:
    """The stub running on its own event loop in a daemon thread (for tests in the caller's process)."""

    def __init__(self, config: StubConfig, port: int = 0, host: str = "127.0.0.1"):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stubapi", daemon=True)
        self._thread.start()
        self._runner, self.server_port, self.state = asyncio.run_coroutine_threadsafe(
            start(config, port, host), self._loop).result(timeout=30)

    def shutdown(self) -> None:
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self.state.close()


def serve(config: StubConfig, port: int = 0, host: str = "127.0.0.1") -> tuple[StubServer, StubState]:
    """Start in a daemon thread; returns the server (``server.server_port``, ``server.shutdown()``) and its state."""
    server = StubServer(config, port, host)
    return server, server.state


async def _main(args: argparse.Namespace) -> None:
    runner, port, state = await start(StubConfig(delay_s=args.delay, log_path=args.log), args.port)
    print(f"stub API on http://127.0.0.1:{port}/v1", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        state.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--log", type=Path, help="append one JSON line per request here")
    args = ap.parse_args()
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
