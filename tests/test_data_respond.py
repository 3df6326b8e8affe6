"""Respond step over real HTTP: retries, resume, rate limits, the Batch API path, and kill -9 crash safety."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests import stubapi
from pipelines.data.limits import RateLimiter
from pipelines.data.recipe import parse_recipe
from pipelines.data.respond import run_respond
from pipelines.data.sources import Row
from pipelines.data.store import Store
from pipelines.data.translate import run_translate

ROWS = [Row(f"alpaca-{i}", f"Question number {i}: name a thing.", "", "A thing.", "alpaca") for i in range(12)]


def _recipe_dict(tmp_path, url, **respond):
    return {"name": "t", "output": str(tmp_path / "out"), "languages": ["zh", "es"],
            "sources": [{"kind": "alpaca", "path": str(tmp_path / "src.jsonl")}],
            "translate": {"backend": "llm", "model": "stub", "base_url": url, "api_key_env": None},
            "respond": {"model": "stub", "base_url": url, "api_key_env": None, "concurrency": 4,
                        "backoff_base_s": 0.01, **respond}}


def _chat_log(log: Path) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["path"] == "/v1/chat/completions"]


def test_retries_then_resume_without_new_requests(tmp_path):
    log = tmp_path / "log.jsonl"
    server, state = stubapi.serve(stubapi.StubConfig(log_path=log))
    url = f"http://127.0.0.1:{server.server_port}/v1"
    recipe = parse_recipe(_recipe_dict(tmp_path, url))
    with Store(recipe.out / "work.db") as store:
        run_translate(recipe, store, ROWS, progress=False)
        n_translate = len(_chat_log(log))
        state.errors[:] = [429, 500, 503]
        stats = run_respond(recipe, store, ROWS, progress=False)
        assert (stats.planned, stats.stored, stats.failed, stats.retries) == (24, 24, 0, 3)
        assert stats.prompt_tokens > 0 and stats.completion_tokens > 0
        assert len(_chat_log(log)) == n_translate + 24 + 3
        again = run_respond(recipe, store, ROWS, progress=False)
        assert (again.already_done, again.requested) == (24, 0)
        assert len(_chat_log(log)) == n_translate + 27
    server.shutdown()


def test_permanent_error_is_recorded_and_run_goes_on(tmp_path):
    server, state = stubapi.serve(stubapi.StubConfig())
    url = f"http://127.0.0.1:{server.server_port}/v1"
    recipe = parse_recipe(_recipe_dict(tmp_path, url, max_retries=1, concurrency=1))  # errors hit items in order
    with Store(recipe.out / "work.db") as store:
        run_translate(recipe, store, ROWS, progress=False)
        state.errors[:] = [400, 500, 500]
        stats = run_respond(recipe, store, ROWS, progress=False)
        assert (stats.stored, stats.failed) == (22, 2)  # the 400 at once, the 500 after its one retry
        assert store.query("SELECT COUNT(*) FROM failures WHERE step = 'respond'")[0][0] == 2
        assert run_respond(recipe, store, ROWS, progress=False).stored == 2  # rerun fills the gaps only
    server.shutdown()


def test_rate_limiter_holds_the_rate():
    async def go():
        lim = RateLimiter(60 * 50, burst_s=0.1)  # 50 per second, bursts of 5
        t0 = time.perf_counter()
        for _ in range(30):
            await lim.acquire(1)
        return time.perf_counter() - t0

    assert 0.4 <= asyncio.run(go()) < 1.5  # (30 - 5) / 50 = 0.5 s


def test_rpm_limit_applies_to_the_respond_step(tmp_path):
    server, _ = stubapi.serve(stubapi.StubConfig())
    url = f"http://127.0.0.1:{server.server_port}/v1"
    recipe = parse_recipe(_recipe_dict(tmp_path, url, rpm=120.0, concurrency=8))  # 2/s, burst 20
    with Store(recipe.out / "work.db") as store:
        run_translate(recipe, store, ROWS, progress=False)
        stats = run_respond(recipe, store, ROWS, progress=False)
    assert stats.stored == 24 and stats.seconds >= 1.5  # 4 requests beyond the burst at 2/s
    server.shutdown()


def test_batch_api_path(tmp_path):
    log = tmp_path / "log.jsonl"
    server, _ = stubapi.serve(stubapi.StubConfig(log_path=log))
    url = f"http://127.0.0.1:{server.server_port}/v1"
    recipe = parse_recipe(_recipe_dict(tmp_path, url, use_batch_api=True, batch_poll_s=0.05))
    with Store(recipe.out / "work.db") as store:
        run_translate(recipe, store, ROWS, progress=False)
        n_chat = len(_chat_log(log))
        stats = run_respond(recipe, store, ROWS, progress=False)
        assert stats.stored == 24 and stats.failed == 0
        rows = store.query("SELECT via, prompt, response FROM responses")
        assert {r[0] for r in rows} == {"batch"} and all(r[1] and r[2].startswith("Answer:") for r in rows)
        assert store.query("SELECT status, ingested FROM batches") == [("completed", 1)]
        assert run_respond(recipe, store, ROWS, progress=False).requested == 0
    events = [json.loads(line)["path"] for line in log.read_text().splitlines()]
    assert events.count("/v1/files") == 1 and events.count("/v1/batches") == 1
    assert len(_chat_log(log)) == n_chat  # nothing went through the online endpoint
    batch_file = next((recipe.out / "batches").glob("*.jsonl"))
    first = json.loads(batch_file.read_text().splitlines()[0])
    assert first["url"] == "/v1/chat/completions" and first["custom_id"].count("|") == 2
    server.shutdown()


def test_kill_9_midway_then_resume_loses_and_repeats_nothing(tmp_path):
    """The acceptance crash test: kill -9 the respond step (a real `bactrian data respond` process) midway."""
    secret = "sk-test-SECRET-crash-9f8e7d"
    log = tmp_path / "log.jsonl"
    server, state = stubapi.serve(stubapi.StubConfig(log_path=log, delay_s=0.25, openai_key=secret))
    url = f"http://127.0.0.1:{server.server_port}/v1"
    rows = [{"instruction": f"Question {i}: describe item {i}.", "input": "", "output": "Item."} for i in range(30)]
    (tmp_path / "src.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    d = _recipe_dict(tmp_path, url, concurrency=3)
    d["translate"]["api_key_env"] = d["respond"]["api_key_env"] = "STUB_API_KEY"
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(d))
    env = {**os.environ, "STUB_API_KEY": secret}
    cmd = [sys.executable, "-m", "bactrian.cli", "data"]
    subprocess.run(cmd + ["translate", str(recipe_path), "--no-progress"], env=env, check=True, capture_output=True)
    db = tmp_path / "out" / "work.db"

    proc = subprocess.Popen(cmd + ["respond", str(recipe_path), "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    stored = 0
    while time.time() < deadline and stored < 15:
        time.sleep(0.1)
        if db.exists():
            with sqlite3.connect(db) as c:
                stored = c.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 15 <= stored < 60, "the kill must land midway"
    with sqlite3.connect(db) as c:
        finished = {r[0] for r in c.execute("SELECT prompt FROM responses")}
    assert len(finished) >= 15
    log_size_at_kill = len(log.read_text().splitlines())

    done = subprocess.run(cmd + ["respond", str(recipe_path), "--no-progress"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as c:
        total, distinct = c.execute("SELECT COUNT(*), COUNT(DISTINCT row_id || '/' || lang) FROM responses").fetchone()
    assert total == distinct == 60  # none lost, none duplicated
    after = [json.loads(line) for line in log.read_text().splitlines()[log_size_at_kill:]]
    rerequested = [r for r in after if r["path"] == "/v1/chat/completions" and r["user"] in finished]
    assert rerequested == []  # nothing finished before the kill was asked again
    assert len(after) <= 60 - len(finished) + 3  # only the unfinished ones (+ at most those in flight at the kill)
    server.shutdown()
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f"API key leaked into {f}"
