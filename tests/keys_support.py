"""Support for the keys-and-money tests: a small OpenAI-compatible server on 127.0.0.1 (stdlib HTTP, real sockets).

It lists a base and an adapter (``local-a``, ``local-b``), streams a short reply for any model it serves, and answers every model in ``deny``
with an error whose body repeats the ``Authorization`` header it received (``Bearer <key>``), as a careless or
hostile upstream would. Used as the studio's engine (``engine_url``), as an external (paid) model and as a judge.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from tests.helpers import LoopbackHTTPServer

LOCAL = ("local-a", "local-b")


def _chunk(model: str, delta: dict | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


class FakeOpenAI(LoopbackHTTPServer):
    """``deny``: model id -> HTTP status answered (with the key echoed); ``auth``: every Authorization header seen."""

    def __init__(self, deny: dict[str, int] | None = None, reply: str = "Hello from the fake server.") -> None:
        self.deny = dict(deny or {})
        self.reply = reply
        self.auth: list[str] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in LOCAL]
                data[1]["parent"] = LOCAL[0]  # an adapter of the first, as vLLM lists a LoRA module
                self._send(200, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                auth = self.headers.get("Authorization", "")
                outer.auth.append(auth)
                outer.calls += 1
                model = body["model"]
                if model in outer.deny:
                    error = {"message": f"Incorrect API key provided: {auth}. You can find your API key at "
                                        "https://platform.openai.com/account/api-keys.",
                             "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
                    self._send(outer.deny[model], json.dumps({"error": error}).encode())
                    return
                words = outer.reply.split(" ")
                if body.get("stream"):
                    parts = [_chunk(model, {"role": "assistant", "content": ""})]
                    parts += [_chunk(model, {"content": (" " if i else "") + w}) for i, w in enumerate(words)]
                    parts.append(_chunk(model, {}, "stop"))
                    parts.append(_chunk(model, None, usage={"prompt_tokens": 5, "completion_tokens": len(words),
                                                            "total_tokens": 5 + len(words)}))
                    self._send(200, b"".join(parts) + b"data: [DONE]\n\n", "text/event-stream")
                    return
                payload = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": outer.reply},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}}
                self._send(200, json.dumps(payload).encode())

        self.start_server(Handler)

