"""Issue 16, point 6: judge runs that stop when told, say when they were killed, and a cache that neither replays
failures nor confuses endpoints. A real `bactrian studio judge` process, real signals, a scripted judge over HTTP
on 127.0.0.1 and a real SQLite file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.trust_support import ScriptedJudge, pair_row, write_pairs

REPO = Path(__file__).resolve().parents[1]
N_PAIRS = 20  # 40 calls


@pytest.fixture
def judge():
    with ScriptedJudge(delay=0.25) as server:
        yield server


@pytest.fixture
def store(tmp_path):
    from eval_studio.io import import_pairs_file
    from eval_studio.store import open_store

    url = f"sqlite:///{tmp_path / 'studio.db'}"
    engine = open_store(url)
    rows = [pair_row(i, good="ab"[i % 2]) for i in range(N_PAIRS)]
    import_pairs_file(engine, write_pairs(tmp_path / "pairs.jsonl", rows), task="trust")
    yield url, engine
    engine.dispose()


def _runs(engine):
    from eval_studio.store.models import JudgeRun
    from eval_studio.store import read_session

    with read_session(engine) as s:
        return [(r.id, r.status, r.message, r.n_done) for r in s.scalars(select(JudgeRun).order_by(JudgeRun.id))]


def _judge_process(url, judge, model="slow", concurrency=2):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "bactrian.cli", "studio", "judge", "--db", url, "--base-url", judge.base_url,
           "--model", model, "--prompt", "pair-v2", "--task", "trust", "--concurrency", str(concurrency)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_requests(judge, proc, n, timeout=90.0):
    deadline = time.monotonic() + timeout
    while len(judge.requests) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"judge process gave {len(judge.requests)} requests: {proc.communicate()}")
        time.sleep(0.02)


def test_6_ctrl_c_stops_sending_and_marks_the_run_cancelled(store, judge):
    url, engine = store
    proc = _judge_process(url, judge)
    _wait_for_requests(judge, proc, 4)
    proc.send_signal(signal.SIGINT)
    t_sigint = time.monotonic()
    out, err = proc.communicate(timeout=60)
    after = [t for t, _ in judge.requests if t > t_sigint]
    assert len(after) <= 2, f"{len(after)} requests sent after SIGINT"  # at most a call starting at that instant
    assert len(judge.requests) < 2 * N_PAIRS
    assert proc.returncode == 130, (out, err)
    [(_, status, message, n_done)] = _runs(engine)
    assert status == "cancelled" and "cancelled" in out
    assert n_done == len(judge.requests)  # every call that was made is recorded, nothing more


def test_6_a_killed_run_is_marked_interrupted_at_the_next_start(store, judge):
    from eval_studio.judge import JudgeConfig, judge_pairs

    url, engine = store
    proc = _judge_process(url, judge)
    _wait_for_requests(judge, proc, 4)
    proc.kill()  # SIGKILL: no handler runs, the run row stays "running"
    proc.communicate(timeout=30)
    [(old, status, _, done_before)] = _runs(engine)
    assert status == "running"
    judge.delay = 0.0
    cfg = JudgeConfig(prompt="pair-v2", model="slow", base_url=judge.base_url, max_retries=0, concurrency=4)
    status = judge_pairs(engine, cfg, task="trust").join(timeout=120)
    assert status.status == "done" and status.n_total == 2 * N_PAIRS - done_before  # resumed where it stopped
    runs = {r[0]: r for r in _runs(engine)}
    assert runs[old][1] == "error" and runs[old][2].startswith("interrupted"), runs[old]


def _cfg(judge, model, **kw):
    from eval_studio.judge import JudgeConfig

    return JudgeConfig(prompt="pair-v2", model=model, base_url=judge.base_url, max_retries=0, concurrency=4, **kw)


def _cache_rows(engine, model):
    from eval_studio.store import read_session
    from eval_studio.store.models import JudgeCache

    with read_session(engine) as s:
        return s.scalar(select(func.count()).select_from(JudgeCache).where(JudgeCache.judge_model == model))


def test_6_unparseable_outputs_are_not_cached_nor_replayed_on_resume(store, judge):
    from eval_studio.judge import judge_pairs

    _, engine = store
    judge.delay, judge.garbage = 0.0, True
    first = judge_pairs(engine, _cfg(judge, "toggle"), task="trust").join(timeout=60)
    assert first.n_done == first.n_errors == 2 * N_PAIRS
    assert _cache_rows(engine, "toggle") == 0  # errors are not cached by default
    judge.garbage = False
    sent = len(judge.requests)
    second = judge_pairs(engine, _cfg(judge, "toggle"), task="trust").join(timeout=60)
    assert len(judge.requests) - sent == 2 * N_PAIRS  # the failed calls were asked again, not replayed
    assert second.status == "done" and second.n_errors == 0 and _cache_rows(engine, "toggle") == 2 * N_PAIRS


def test_6_caching_errors_is_opt_in(store, judge):
    from eval_studio.judge import judge_pairs

    _, engine = store
    judge.delay, judge.garbage = 0.0, True
    judge_pairs(engine, _cfg(judge, "toggle", cache_errors=True), task="trust").join(timeout=60)
    assert _cache_rows(engine, "toggle") == 2 * N_PAIRS
    judge.garbage = False
    sent = len(judge.requests)
    again = judge_pairs(engine, _cfg(judge, "toggle", cache_errors=True), task="trust").join(timeout=60)
    assert len(judge.requests) == sent and again.n_errors == 2 * N_PAIRS  # replayed, as asked


def test_6_cache_and_resume_are_per_endpoint(store, judge):
    from eval_studio.judge import judge_pairs

    _, engine = store
    judge.delay = 0.0
    with ScriptedJudge(delay=0.0) as other:
        first = judge_pairs(engine, _cfg(judge, "fair"), task="trust").join(timeout=60)
        assert first.status == "done" and len(judge.requests) == 2 * N_PAIRS
        rerun = judge_pairs(engine, _cfg(other, "fair"), task="trust").join(timeout=60)
        assert rerun.status == "done" and rerun.n_total == 2 * N_PAIRS
        assert len(other.requests) == 2 * N_PAIRS  # another URL: real calls, not the first endpoint's answers
        same = judge_pairs(engine, _cfg(other, "fair"), task="trust").join(timeout=60)
        assert same.n_total == 0 and len(other.requests) == 2 * N_PAIRS  # that endpoint's own work resumes
