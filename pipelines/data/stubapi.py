"""A small real HTTP server speaking the OpenAI chat/files/batches shape and Google Translation v2, for tests and
benchmarks: it answers after a fixed delay, logs every request (never a key) and can inject errors.

Answers are deterministic: a translation request echoes the text after ``[<language>] ``, markers intact; a chat
request answers ``Answer: <first words of the prompt>``. Run alone: ``python -m pipelines.data.stubapi --port 8001``.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class StubConfig:
    delay_s: float = 0.0
    log_path: Path | None = None
    errors: list[int] = field(default_factory=list)  # statuses returned, in order, by the first chat requests
    google_key: str | None = None  # when set, Google requests must carry it
    openai_key: str | None = None  # when set, OpenAI requests must carry it as a Bearer token


class StubState:
    def __init__(self, config: StubConfig):
        self.config = config
        self.lock = threading.Lock()
        self.errors = list(config.errors)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.chat_requests = 0

    def log(self, rec: dict[str, Any]) -> None:
        if self.config.log_path is None:
            return
        with self.lock, open(self.config.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()

    def next_error(self) -> int | None:
        with self.lock:
            self.chat_requests += 1
            return self.errors.pop(0) if self.errors else None


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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real API servers
    disable_nagle_algorithm = True  # headers and body go in two writes: without this, delayed ACKs add ~40-200 ms
    state: StubState  # set on the subclass built by ``serve``

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any, raw: bytes | None = None, headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized_openai(self) -> bool:
        want = self.state.config.openai_key
        return want is None or self.headers.get("Authorization") == f"Bearer {want}"

    def do_GET(self) -> None:  # noqa: N802
        st = self.state
        if self.path.rstrip("/") == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0,
                                                                "owned_by": "stub"}]})
        m = re.fullmatch(r"/v1/batches/([\w-]+)", self.path)
        if m and m.group(1) in st.batches:
            b = st.batches[m.group(1)]
            if b["status"] == "validating":
                b["status"] = "in_progress"
            elif b["status"] == "in_progress":  # completes on the second poll, so clients must really poll
                lines = st.files[b["input_file_id"]].decode().splitlines()
                out = [json.dumps({"id": f"resp-{i}", "custom_id": json.loads(ln)["custom_id"],
                                   "response": {"status_code": 200, "body": chat_answer(json.loads(ln)["body"])},
                                   "error": None}) for i, ln in enumerate(lines) if ln.strip()]
                fid = f"file-{uuid.uuid4().hex[:12]}"
                st.files[fid] = ("\n".join(out) + "\n").encode()
                b.update(status="completed", output_file_id=fid)
                st.log({"path": "/v1/batches/complete", "batch": b["id"], "n": len(out), "t": time.time()})
            return self._send(200, b)
        m = re.fullmatch(r"/v1/files/([\w-]+)/content", self.path)
        if m and m.group(1) in st.files:
            return self._send(200, None, raw=st.files[m.group(1)])
        self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        st = self.state
        raw = self._body()
        path = self.path.split("?")[0]
        if path == "/language/translate/v2":
            return self._google(raw)
        if not self._authorized_openai():
            return self._send(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        if path == "/v1/chat/completions":
            body = json.loads(raw)
            user = (body.get("messages") or [{}])[-1].get("content", "")
            st.log({"path": path, "model": body.get("model"), "user": user, "t": time.time()})
            if st.config.delay_s:
                time.sleep(st.config.delay_s)
            err = st.next_error()
            if err:
                return self._send(err, {"error": {"message": f"injected {err}", "type": "server_error"}},
                                  headers={"Retry-After": "0"})
            return self._send(200, chat_answer(body))
        if path == "/v1/files":
            msg = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            content = next(p.get_payload(decode=True) for p in msg.get_payload() if p.get_param("name", header="content-disposition") == "file")
            fid = f"file-{uuid.uuid4().hex[:12]}"
            st.files[fid] = content
            st.log({"path": path, "file": fid, "lines": content.count(b"\n"), "t": time.time()})
            return self._send(200, {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                    "filename": "batch.jsonl", "purpose": "batch", "status": "processed"})
        if path == "/v1/batches":
            body = json.loads(raw)
            bid = f"batch_{uuid.uuid4().hex[:12]}"
            st.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "input_file_id":
                               body["input_file_id"], "completion_window": body["completion_window"],
                               "status": "validating", "created_at": int(time.time()), "output_file_id": None,
                               "error_file_id": None}
            st.log({"path": path, "batch": bid, "t": time.time()})
            return self._send(200, st.batches[bid])
        self._send(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def _google(self, raw: bytes) -> None:
        st = self.state
        key = self.headers.get("X-Goog-Api-Key") or (re.search(r"[?&]key=([^&]+)", self.path) or [None, None])[1]
        bearer = self.headers.get("Authorization", "").startswith("Bearer ")
        if st.config.google_key and key != st.config.google_key and not bearer:
            return self._send(403, {"error": {"code": 403, "message": "The request is missing a valid API key."}})
        body = json.loads(raw)
        q = body["q"] if isinstance(body["q"], list) else [body["q"]]
        st.log({"path": "/language/translate/v2", "n": len(q), "target": body.get("target"), "t": time.time()})
        if st.config.delay_s:
            time.sleep(st.config.delay_s)
        out = [{"translatedText": f"[{body['target']}] {s}", "detectedSourceLanguage": "en"} for s in q]
        self._send(200, {"data": {"translations": out}})


def serve(config: StubConfig, port: int = 0, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, StubState]:
    """Start in a daemon thread; returns the server (``server.server_port``) and its state."""
    state = StubState(config)
    handler = type("BoundHandler", (Handler,), {"state": state})
    server_cls = type("StubServer", (ThreadingHTTPServer,), {"request_queue_size": 256})  # many clients connect at once
    server = server_cls((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--log", type=Path, help="append one JSON line per request here")
    args = ap.parse_args()
    # Many handler threads wake at once after their delay; the default 5 ms GIL switch interval makes them
    # queue behind each other (a convoy), which would measure the stub, not the client.
    sys.setswitchinterval(1e-4)
    server, _ = serve(StubConfig(delay_s=args.delay, log_path=args.log), port=args.port)
    print(f"stub API on http://127.0.0.1:{server.server_port}/v1", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
