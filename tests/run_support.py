"""Helpers for the flow tests (export -> train, `bactrian run`): tiny source files, a served tiny model that
counts the calls it answers, and a stand-in for the Hugging Face Hub's upload API (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from fastapi import FastAPI, Request  # at module level: the routes' annotations are resolved from here

REPO = Path(__file__).resolve().parents[1]

# Plain prose (no code, numbers or URLs: nothing the translate step protects or keeps in English), all distinct.
_TOPICS = ("rivers", "mountains", "deserts", "forests", "oceans", "islands", "glaciers", "valleys", "lakes",
           "volcanoes", "meadows", "canyons")


def write_alpaca(path: Path, n: int = 6) -> Path:
    """``n`` Alpaca-shaped rows; every other one has an input."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            topic = _TOPICS[i % len(_TOPICS)]
            row = {"instruction": f"Describe {topic} in one sentence.", "input": "" if i % 2 else f"Think of {topic} at dawn.",
                   "output": f"The {topic} are quiet and wide."}
            f.write(json.dumps(row) + "\n")
    return path


def write_sentiment(path: Path, languages: tuple[str, ...] = ("zh", "es")) -> Path:
    """A tiny SentimentX-shaped file (text, label, language) so the bench stage needs no shared data."""
    texts = {"positive": "I love this", "negative": "I hate this", "neutral": "It is a table"}
    with path.open("w", encoding="utf-8") as f:
        for lang in languages:
            for label, text in texts.items():
                f.write(json.dumps({"text": f"{text} ({lang})", "label": label, "language": lang}) + "\n")
    return path


def data_overrides(url: str, model: str, tokenizer: Path, source: Path, limit: int) -> dict[str, Any]:
    """The data recipe's settings that point it at a served tiny model and a local source file."""
    return {"sources.0.path": str(source), "sources.0.limit": limit, "translate.base_url": url,
            "translate.model": model, "respond.base_url": url, "respond.model": model, "translate.max_tokens": 12,
            "respond.max_tokens": 12, "respond.temperature": 0, "report.tokenizer": str(tokenizer),
            "filter.outlier_mad": 0, "translate.concurrency": 4, "respond.concurrency": 1}


def request_key(body: dict) -> str:
    """What makes a chat call the same paid call: model, messages and sampling settings."""
    keep = {k: body.get(k) for k in ("model", "messages", "max_tokens", "temperature")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class CountingApp:
    """ASGI wrapper that records every chat completion the inner app answered (status 200), keyed by
    :func:`request_key`, split into translate calls (a system message) and respond calls (none).

    ``before_respond(n)`` runs when the n-th respond call arrives (1-based), before the model sees it; if it
    returns True the call is refused (503) and never answered, e.g. after the client was killed.
    """

    def __init__(self, app: Any):
        self.app = app
        self.answered: dict[str, list[str]] = {"translate": [], "respond": []}
        self.respond_arrivals = 0
        self.before_respond: Callable[[int], bool] | None = None
        self.lock = threading.Lock()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        raw = b"".join(chunks)
        body = json.loads(raw or b"{}")
        kind = "translate" if any(m.get("role") == "system" for m in body.get("messages", [])) else "respond"
        if kind == "respond":
            with self.lock:
                self.respond_arrivals += 1
                n = self.respond_arrivals
            if self.before_respond is not None and self.before_respond(n):
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": {"message": "refused by the test"}}'})
                return
        status: dict[str, int] = {}
        sent = []

        async def replay() -> dict:
            if not sent:  # the body once, then the real channel (the app may wait for the disconnect)
                sent.append(True)
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        async def watch(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        await self.app(scope, replay, watch)
        if status.get("code") == 200:
            with self.lock:
                self.answered[kind].append(request_key(body))


@contextlib.contextmanager
def served_tiny_model(tiny_base: Path) -> Iterator[tuple[Any, CountingApp, str]]:
    """`bactrian serve` for the tiny base, in this process: (LiveServer, counter, model id)."""
    from bactrian.engine import Engine
    from bactrian.server import create_app
    from bactrian.service import LocalService
    from tests.helpers import LiveServer

    app = CountingApp(create_app(LocalService(Engine.load(str(tiny_base), include_default_dirs=False))))
    with LiveServer(app) as server:
        import httpx

        model = httpx.get(f"{server.base_url}/models", timeout=10).json()["data"][0]["id"]
        yield server, app, model


def stub_hub_app(uploads: dict[str, dict[str, bytes]], calls: list[tuple[str, str, str]]) -> Any:
    """The Hub routes ``create_repo`` + ``upload_folder`` use (huggingface_hub >= 1): create a repo, check a card's
    YAML, ``preupload`` (every file answered "regular", so no LFS/xet storage is involved), the NDJSON ``commit``.
    Uploaded files land in ``uploads[repo_type/repo_id][path]``; ``calls`` gets (method, path, authorization)."""
    app = FastAPI()

    @app.post("/api/repos/create")
    async def create(request: Request) -> dict:
        body = await request.json()
        calls.append(("POST", "/api/repos/create", request.headers.get("authorization", "")))
        repo = f"{body.get('organization') or 'user'}/{body['name']}"
        uploads.setdefault(f"{body.get('type') or 'model'}/{repo}", {})
        return {"url": f"{request.base_url}{repo}", "name": repo}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> Any:
        import yaml
        from fastapi.responses import JSONResponse

        calls.append(("POST", "/api/validate-yaml", request.headers.get("authorization", "")))
        content = (await request.json())["content"]
        front = content.split("---")[1] if content.startswith("---") else ""
        try:
            yaml.safe_load(front)
        except yaml.YAMLError as e:
            return JSONResponse({"errors": [{"message": str(e)}]}, status_code=400)
        return {"errors": [], "warnings": []}

    @app.post("/api/{repo_type}s/{owner}/{name}/preupload/{revision}")
    async def preupload(repo_type: str, owner: str, name: str, revision: str, request: Request) -> dict:
        calls.append(("POST", request.url.path, request.headers.get("authorization", "")))
        files = (await request.json())["files"]
        return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}

    @app.post("/api/{repo_type}s/{owner}/{name}/commit/{revision}")
    async def commit(repo_type: str, owner: str, name: str, revision: str, request: Request) -> dict:
        calls.append(("POST", request.url.path, request.headers.get("authorization", "")))
        store = uploads.setdefault(f"{repo_type}/{owner}/{name}", {})
        for line in (await request.body()).splitlines():
            item = json.loads(line)
            if item.get("key") == "file":
                store[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        oid = hashlib.sha1(json.dumps(sorted(store)).encode()).hexdigest()
        return {"commitUrl": f"{request.base_url}{owner}/{name}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}

    return app
