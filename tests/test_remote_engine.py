"""The remote engine: ``RemoteService`` over a real second server (``bactrian serve`` standing in for vLLM).

Real parts: the tiny model and adapters, uvicorn on 127.0.0.1 (in a thread, or a ``bactrian serve`` process),
the official openai client, a SQLite store. One ``LocalService`` is the only worker on the model: the served
app and the local reference answers share it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from bactrian.client import EndpointError
from bactrian.generation import GenerationParams
from bactrian.prompter import InputError
from bactrian.remote import RemoteService
from bactrian.service import Busy, GenRequest, generate
from tests.helpers import LiveServer
from tests.ui_support import DEAD_URL, studio_settings

HI = [{"role": "user", "content": "Hi"}]


class Recorder:
    """Passes everything to the served service and remembers how each request ended on the server side."""

    def __init__(self, inner):
        self.inner = inner
        self.ended: list[tuple[GenRequest, object]] = []  # (request, final StreamEvent or exception)
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def submit(self, request, on_event=None):
        def spy(ev):
            if isinstance(ev, Exception) or ev.finished:
                with self._lock:
                    self.ended.append((request, ev))
            on_event(ev)

        return self.inner.submit(request, spy)

    def ended_with(self, max_new_tokens: int) -> list:
        with self._lock:
            return [ev for req, ev in self.ended if req.params.max_new_tokens == max_new_tokens]


@pytest.fixture(scope="module")
def adapters_dirs(tiny_adapters, tmp_path_factory) -> list[str]:
    """alpha and beta, plus gamma (alpha's weights) whose manifest names two languages."""
    more = tmp_path_factory.mktemp("more-adapters")
    gamma = more / "gamma"
    shutil.copytree(tiny_adapters["alpha"], gamma)
    manifest = json.loads((gamma / "bactrian_adapter.json").read_text("utf-8"))
    (gamma / "bactrian_adapter.json").write_text(json.dumps({**manifest, "name": "gamma", "languages": ["zh", "es"]}), "utf-8")
    return [str(tiny_adapters["root"]), str(more)]


@pytest.fixture(scope="module")
def local(tiny_base, adapters_dirs):
    from bactrian.engine import Engine
    from bactrian.service import LocalService

    service = LocalService(Engine.load(str(tiny_base), adapters_dirs, include_default_dirs=False))
    yield service
    service.close()


@pytest.fixture(scope="module")
def served(local):
    """`bactrian serve` over the same service, on a free loopback port."""
    from bactrian.server import create_app

    recorder = Recorder(local)
    with LiveServer(create_app(recorder)) as s:
        s.recorder = recorder
        yield s


@pytest.fixture(scope="module")
def remote(served):
    return RemoteService(served.base_url)


def greedy(n: int, **kw) -> GenerationParams:
    return GenerationParams(max_new_tokens=n, temperature=0.0, **kw)


# -- listing, outputs, streaming, cancellation -------------------------------------------------------------
def test_lists_the_served_variants_base_first_with_kind_languages_and_digest(remote, local, served):
    got = [(v.name, v.kind, v.languages, v.digest) for v in remote.variants()]
    want = [(v.name, v.kind, v.languages, v.digest) for v in local.variants()]
    assert got[0] == (local.base_name, "base", (), None) and remote.base_name == local.base_name
    assert sorted(got) == sorted(want)
    by_name = {v.name: v for v in remote.variants()}
    assert {"alpha", "beta", "gamma"} <= set(by_name) and all(by_name[n].kind == "adapter" for n in ("alpha", "beta", "gamma"))
    assert by_name["gamma"].languages == ("zh", "es")
    assert by_name["alpha"].digest and len(by_name["alpha"].digest) == 12 and by_name["alpha"].digest != by_name["beta"].digest
    assert served.base_url in remote.describe()


@pytest.mark.parametrize("model, params", [
    ("alpha", greedy(12, ignore_eos=True)),
    ("beta", greedy(10, repetition_penalty=1.3, min_tokens=10)),  # vLLM's extras travel in extra_body
    ("base", greedy(8, top_k=5, stop=["\n\n\n"])),
    ("alpha", GenerationParams(max_new_tokens=10, temperature=0.8, seed=7, ignore_eos=True)),  # seeded sampling too
])
def test_output_through_the_remote_equals_the_local_output(remote, local, model, params):
    model = local.base_name if model == "base" else model
    want = generate(local, GenRequest(model, HI, params=params))
    got = generate(remote, GenRequest(model, HI, params=params))
    assert got.text == want.text and want.completion_tokens > 0
    assert (got.finish_reason, got.prompt_tokens, got.completion_tokens) == (want.finish_reason, want.prompt_tokens, want.completion_tokens)


def test_streams_in_several_events(remote):
    events = list(remote.submit(GenRequest("beta", HI, params=greedy(24, ignore_eos=True))))
    assert len(events) >= 5
    assert all(not e.finished for e in events[:-1]) and events[-1].finished and events[-1].finish_reason == "length"
    assert events[-1].completion_tokens == 24 and events[-1].prompt_tokens > 0
    assert "".join(e.delta for e in events) == generate(remote, GenRequest("beta", HI, params=greedy(24, ignore_eos=True))).text


def test_cancelling_a_remote_stream_stops_its_row_on_the_server(remote, served):
    long = GenerationParams(max_new_tokens=400, temperature=0.7, ignore_eos=True)
    stream = remote.submit(GenRequest("alpha", HI, params=long))
    seen = []
    for ev in stream:
        seen.append(ev)
        if len(seen) == 2:
            stream.cancel()
    assert seen[-1].finished and seen[-1].finish_reason == "cancelled"  # the client side ends at once
    deadline = time.time() + 15
    while not served.recorder.ended_with(400) and time.time() < deadline:
        time.sleep(0.05)
    (server_end,) = served.recorder.ended_with(400)
    # the server saw the disconnect and freed the row long before its 400 tokens
    assert not isinstance(server_end, Exception) and server_end.finish_reason == "cancelled", server_end
    assert server_end.completion_tokens < 400
    # nothing runs any more: the worker's step counter stands still, and the next request is served at once
    steps = lambda: httpx.get(served.base_url.removesuffix("/v1") + "/health", timeout=5).json()["stats"]["steps"]  # noqa: E731
    before = steps()
    time.sleep(0.3)
    assert steps() == before
    t0 = time.time()
    assert generate(remote, GenRequest("beta", HI, params=greedy(4, ignore_eos=True))).completion_tokens == 4
    assert time.time() - t0 < 10


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "system", "content": "用中文。"}, {"role": "user", "content": "你好\n世界"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "  A1 \n"}, {"role": "user", "content": "Q2"}],
])
def test_the_chat_template_for_vllm_renders_the_bactrian_x_prompt(tiny_base, messages):
    """`vllm serve --chat-template bactrian/templates/bactrian-x.jinja` builds the prompt `bactrian serve` builds."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from bactrian.prompter import Prompter

    template = (Path(__file__).resolve().parents[1] / "bactrian" / "templates" / "bactrian-x.jinja").read_text("utf-8")
    tok = AutoTokenizer.from_pretrained(tiny_base)
    want = Prompter.load("bactrian-x").build_chat(messages)
    render = lambda **kw: tok.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True, **kw)  # noqa: E731
    assert render() == tok.bos_token + want  # the BOS the engine's tokenizer adds (Gemma, Llama)
    assert render(add_bos=False) == want  # BLOOM: --default-chat-template-kwargs '{"add_bos": false}'


# -- bad input ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def empty_server():
    """An OpenAI-compatible server that serves no models (and nothing else)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": []}

    with LiveServer(app) as s:
        yield s


def test_a_url_that_is_down_fails_at_start_with_a_clear_error():
    t0 = time.time()
    with pytest.raises(EndpointError, match=r"cannot reach http://127\.0\.0\.1:9/v1"):
        RemoteService(DEAD_URL)
    assert time.time() - t0 < 10


def test_a_server_that_lists_no_models_or_is_not_openai_fails_at_start(empty_server):
    with pytest.raises(EndpointError, match="lists no models"):
        RemoteService(empty_server.base_url)
    with pytest.raises(EndpointError, match="answered 404"):
        RemoteService(empty_server.base_url.replace("/v1", "/not-an-api/v1"))


def test_unknown_model_raw_prompt_and_bad_params_are_refused_before_sending(remote):
    with pytest.raises(InputError, match=r"unknown model 'delta'; available at .*alpha, beta"):
        remote.submit(GenRequest("delta", HI))
    with pytest.raises(InputError, match="chat messages"):
        remote.submit(GenRequest("alpha", prompt="### Input:\nHi"))
    with pytest.raises(ValueError, match="temperature"):
        remote.submit(GenRequest("alpha", HI, params=GenerationParams(temperature=9.0)))


def test_a_full_remote_queue_arrives_as_busy_in_the_stream(tiny_base, adapters_dirs):
    from bactrian.engine import Engine
    from bactrian.server import create_app
    from bactrian.service import LocalService

    small = LocalService(Engine.load(str(tiny_base), adapters_dirs, include_default_dirs=False), max_rows=1, max_queue=1)
    with LiveServer(create_app(small)) as s:
        remote = RemoteService(s.base_url)
        long = GenerationParams(max_new_tokens=450, temperature=0.7, ignore_eos=True)
        running = small.submit(GenRequest("alpha", HI, params=long))  # takes the only row...
        next(iter(running))
        waiting = small.submit(GenRequest("beta", HI, params=long))  # ...and this one the only queue place
        try:
            with pytest.raises(Busy, match="busy"):
                list(remote.submit(GenRequest("alpha", HI, params=greedy(4))))
        finally:
            running.cancel()
            waiting.cancel()
        # once the queue drains the same remote is served again
        assert generate(remote, GenRequest("alpha", HI, params=greedy(3, ignore_eos=True))).completion_tokens == 3


def test_cancelling_a_request_still_queued_on_the_server_returns_at_once(tiny_base, adapters_dirs):
    from bactrian.engine import Engine
    from bactrian.server import create_app
    from bactrian.service import LocalService

    small = LocalService(Engine.load(str(tiny_base), adapters_dirs, include_default_dirs=False), max_rows=1)
    with LiveServer(create_app(small)) as s:
        remote = RemoteService(s.base_url)
        running = small.submit(GenRequest("alpha", HI, params=GenerationParams(max_new_tokens=450, ignore_eos=True)))
        next(iter(running))
        queued = remote.submit(GenRequest("beta", HI, params=greedy(4)))  # waits on the server for the only row
        time.sleep(0.3)
        t0 = time.monotonic()
        queued.cancel()
        events = list(queued)
        assert events[-1].finish_reason == "cancelled" and time.monotonic() - t0 < 2
        running.cancel()
        assert generate(remote, GenRequest("alpha", HI, params=greedy(3, ignore_eos=True))).completion_tokens == 3


# -- the studio on a remote engine ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx(tiny_base, tiny_adapters, served, tmp_path_factory):
    from eval_studio.ui.context import create_context

    settings = studio_settings(tiny_base, tiny_adapters, tmp_path_factory.mktemp("remote-studio") / "studio.db",
                               engine_url=served.base_url, adapters_dirs=())
    return create_context(settings, None)


def _counts(ctx) -> tuple[int, int, int]:
    with sqlite3.connect(ctx.settings.db_url.removeprefix("sqlite:///")) as con:
        return con.execute("SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM turns), "
                           "(SELECT count(*) FROM battles)").fetchone()


def test_studio_catalog_lists_what_the_remote_serves(ctx, local):
    assert isinstance(ctx.service, RemoteService)
    names = [v for _, v in ctx.catalog.choices()]
    assert names[0] == local.base_name and {"alpha", "beta", "gamma", "offline-gpt"} <= set(names)
    labels = dict((v, k) for k, v in ctx.catalog.choices())
    assert labels["alpha"] == "[other] alpha" and labels["gamma"] == "[multilingual] gamma"
    local_digests = {v.name: v.digest for v in local.variants()}
    assert ctx.catalog.get("alpha").digest == local_digests["alpha"]  # lineage survives the network


def test_studio_chat_and_arena_on_the_remote_engine(ctx, local):
    from eval_studio.store.battles import load_battles
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, arena_vote, pick_models
    from eval_studio.ui.chat_tab import ChatState, chat_turn
    from eval_studio.ui.common import make_params
    from eval_studio.ui.streaming import Job, stream_columns

    params = make_params({"ignore_eos": True}, 16, 0.0, 1.0, 0, 1.0, -1)
    snaps = list(stream_columns(ctx.catalog, [Job("alpha", HI, params), Job("beta", HI, params)]))
    a, b = snaps[-1]
    assert a.ok and b.ok and len(snaps) > 2  # both streamed
    assert a.text == generate(local, GenRequest("alpha", HI, params=params)).text

    snaps = list(chat_turn(ctx, ChatState(), "Hi", "gamma", params, ctx.users["bob"]))
    hist, st, col = snaps[-1]
    assert col.ok and st.conversation_id and [m["role"] for m in st.history] == ["user", "assistant"]
    assert col.text == generate(local, GenRequest("gamma", HI, params=params)).text

    st = pick_models(ctx, ArenaState(), "named", ("alpha", "beta"), "en", random.Random(1))
    *_, (cols, st) = arena_turn(ctx, st, "Hi", make_params({}, 8, 0.7, 0.95, 50, 1.0, 3), None)
    assert st.battle_id and not st.failed and all(c.ok for c in cols)
    arena_vote(ctx, st, "a", None)
    row = load_battles(ctx.db).iloc[-1]
    assert (row.model_a, row.model_b, row.winner) == ("alpha", "beta", "a")
    with sqlite3.connect(ctx.settings.db_url.removeprefix("sqlite:///")) as con:
        stored = con.execute("SELECT answer_a, answer_b, digest_a, digest_b FROM battles WHERE id = ?", (st.battle_id,)).fetchone()
    assert stored == (cols[0].text, cols[1].text, ctx.catalog.get("alpha").digest, ctx.catalog.get("beta").digest)


def test_studio_keeps_serving_when_the_remote_goes_down_mid_answer(tiny_base, tiny_adapters, tmp_path):
    """A real `bactrian serve` process, frozen mid-answer then killed: the column ends with an error, nothing is stored."""
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, pick_models
    from eval_studio.ui.chat_tab import ChatState, chat_turn
    from eval_studio.ui.common import make_params
    from eval_studio.ui.context import create_context
    from tests.serve_support import ServeProcess

    server = ServeProcess(tiny_base, tiny_adapters["root"], tmp_path).start()
    try:
        ctx = create_context(studio_settings(tiny_base, tiny_adapters, tmp_path / "studio.db", engine_url=server.base_url,
                                             adapters_dirs=()), None)
        short = make_params({}, 6, 0.7, 0.95, 50, 1.0, -1)
        *_, (_, st, col) = chat_turn(ctx, ChatState(), "Hi", "alpha", short, None)
        assert col.ok
        before = _counts(ctx)

        long = make_params({"min_tokens": 400, "ignore_eos": True}, 400, 0.7, 0.95, 50, 1.0, -1)
        turn = chat_turn(ctx, st, "Tell me more", "alpha", long, None)
        for _, _, col in turn:
            if col.text:
                break
        server.pause()  # frozen mid-answer, its connection still open...
        server.kill()  # ...then gone: the kernel drops the connection
        snaps = list(turn)
        _, st2, col = snaps[-1]
        assert col.done and col.error and not col.ok, col
        assert server.base_url in col.error  # says which engine failed (a visitor's message: no traceback)
        assert st2 is st  # the visitor's conversation is unchanged
        assert _counts(ctx) == before  # nothing half-written

        # the app keeps serving: the next requests fail at once and cleanly, in chat and arena
        t0 = time.time()
        *_, (_, st3, col) = chat_turn(ctx, st, "Still there?", "alpha", short, None)
        assert "cannot reach" in col.error and st3 is st
        arena = pick_models(ctx, ArenaState(), "named", ("alpha", "beta"), "en", random.Random(1))
        *_, (cols, arena) = arena_turn(ctx, arena, "Hi", short, None)
        assert arena.failed and arena.battle_id is None and all(c.error for c in cols)
        assert time.time() - t0 < 15 and _counts(ctx) == before

        # and once the engine is back on the same address, the same studio answers again
        server = ServeProcess(tiny_base, tiny_adapters["root"], tmp_path, port=server.port).start()
        *_, (_, st4, col) = chat_turn(ctx, st, "Back?", "alpha", short, None)
        assert col.ok and len(st4.history) == 4
    finally:
        server.stop()


# -- bactrian chat --url ------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8", "BACTRIAN_HOME": "/nonexistent-bactrian-home"}
    return subprocess.run([sys.executable, "-m", "bactrian.cli", "chat", *args], capture_output=True, text=True,
                          encoding="utf-8", timeout=120, env=env)


def test_cli_chat_on_a_remote_server(served, local):
    r = _cli("--url", served.base_url, "--adapter", "alpha", "--temperature", "0", "--max-new-tokens", "8", "Hi")
    assert r.returncode == 0, r.stderr
    want = generate(local, GenRequest("alpha", HI, params=greedy(8, repetition_penalty=1.1))).text  # the CLI's defaults
    assert r.stdout == want + "\n"
    r = _cli("--url", served.base_url, "--adapter", "delta", "Hi")
    assert r.returncode == 2 and "error: unknown adapter 'delta'" in r.stderr


def test_cli_chat_with_a_dead_url_exits_2():
    r = _cli("--url", DEAD_URL, "--adapter", "alpha", "Hi")
    assert r.returncode == 2
    assert r.stderr.startswith("error: cannot reach http://127.0.0.1:9/v1") and "Traceback" not in r.stderr
