"""Repository API for LLM judging: runs, judgments, the response cache and the token/cost ledger.

Each judge call is stored with one transaction that writes the judgment, its ledger entry and the run's
progress counters together, so a crash never leaves a counted-but-missing judgment.

While a run is ``running`` its message names the process that runs it (``running in process PID on HOST``). A
run whose process is gone (killed, crashed) would otherwise stay ``running`` forever: ``mark_interrupted_runs``
(called when a run starts) marks it ``error`` with an ``interrupted: ...`` message. (The status column's CHECK
constraint has no ``interrupted`` value; adding one would take a schema migration.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from eval_studio.store.db import read_session, transaction
from eval_studio.store.models import (
    AnnotationPair,
    AnnotationTask,
    JudgeCache,
    JudgeRun,
    Judgment,
    UsageEntry,
    utcnow,
)


@dataclass(frozen=True)
class JudgeTarget:
    pair_id: int  # database id
    external_id: str
    question: str
    answer_a: str
    answer_b: str
    language: str


@dataclass(frozen=True)
class CachedResponse:
    raw_output: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class RunStatus:
    id: int
    status: str
    n_total: int
    n_done: int
    n_errors: int
    message: str | None
    prompt_name: str
    judge_model: str
    created: datetime
    finished: datetime | None


def targets(engine: Engine, task: str | None = None, language: str | None = None, limit: int | None = None) -> list[JudgeTarget]:
    with read_session(engine) as s:
        q = select(AnnotationPair).join(AnnotationTask).order_by(AnnotationPair.id)
        if task is not None:
            q = q.where(AnnotationTask.name == task)
        if language is not None:
            q = q.where(AnnotationPair.language == language)
        if limit is not None:
            q = q.limit(limit)
        return [JudgeTarget(p.id, p.external_id, p.question, p.answer_a, p.answer_b, p.language) for p in s.scalars(q)]


def stable_hash(obj: Any) -> str:
    """sha256 of ``obj`` as canonical JSON: parameter sets, cache keys, imported prompts."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


_OWNER = re.compile(r"^running in process (\d+) on (\S+)$")
_LIVE: set[int] = set()  # runs whose worker lives in this process
_LIVE_LOCK = threading.Lock()


def _owner() -> str:
    return f"running in process {os.getpid()} on {socket.gethostname()}"


def create_run(engine: Engine, *, prompt_name: str, prompt_hash: str, judge_model: str, base_url: str | None,
               params: dict[str, Any], n_total: int, live: bool = False) -> int:
    """A new ``running`` run; ``live``: its worker runs in this process until ``forget_live_run``."""
    with _LIVE_LOCK, transaction(engine) as s:
        run = JudgeRun(prompt_name=prompt_name, prompt_hash=prompt_hash, judge_model=judge_model, base_url=base_url,
                       params=params, n_total=n_total, status="running", message=_owner())
        s.add(run)
        s.flush()
        if live:
            _LIVE.add(run.id)
        return run.id


def forget_live_run(run_id: int) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(run_id)


def _started_at(pid: int) -> tuple[float | None, bool]:
    """(start time as a Unix time, zombie?) of a process, from /proc where there is one (else (None, False))."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        btime = next(float(line.split()[1]) for line in Path("/proc/stat").read_text(encoding="ascii").splitlines()
                     if line.startswith("btime"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None, False
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3, starttime field 22
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK"), fields[0] == "Z"


def _process_alive(pid: int, run_id: int, created: datetime) -> bool:
    if pid == os.getpid():
        return run_id in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    started, zombie = _started_at(pid)
    if zombie:
        return False
    return started is None or started <= created.timestamp() + 2.0  # a younger process reuses the number


def mark_interrupted_runs(engine: Engine) -> list[int]:
    """Mark ``running`` runs of this host whose process is gone as ``error`` ("interrupted: ..."); their ids.

    Runs of other hosts, and runs without an owner (recorded before owners were), are left alone: whether
    they still run cannot be told from here."""
    host, out = socket.gethostname(), []
    with _LIVE_LOCK, transaction(engine) as s:
        for run in s.scalars(select(JudgeRun).where(JudgeRun.status == "running")):
            m = _OWNER.match(run.message or "")
            if m is None or m.group(2) != host or _process_alive(int(m.group(1)), run.id, run.created):
                continue
            run.status, run.finished = "error", utcnow()
            run.message = (f"interrupted: process {m.group(1)} on {host} ended without finishing this run "
                           f"({run.n_done} of {run.n_total} calls made; a new run resumes the rest)")
            out.append(run.id)
    return out


def finish_run(engine: Engine, run_id: int, status: str, message: str | None = None) -> None:
    with transaction(engine) as s:
        run = s.get(JudgeRun, run_id)
        run.status, run.message, run.finished = status, message, utcnow()


def run_status(engine: Engine, run_id: int) -> RunStatus:
    with read_session(engine) as s:
        r = s.get(JudgeRun, run_id)
        if r is None:
            raise KeyError(f"no judge run {run_id}")
        return RunStatus(r.id, r.status, r.n_total, r.n_done, r.n_errors, r.message, r.prompt_name, r.judge_model, r.created, r.finished)


def list_runs(engine: Engine, limit: int = 50) -> list[RunStatus]:
    with read_session(engine) as s:
        ids = s.scalars(select(JudgeRun.id).order_by(JudgeRun.id.desc()).limit(limit)).all()
    return [run_status(engine, i) for i in ids]


def failed_calls(engine: Engine, run_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The first ``limit`` failed calls of a run, oldest first: the pair, the order shown, why it failed and the
    judge's raw output (already redacted when stored), so an admin sees why "6 unparseable or failed"."""
    q = (select(AnnotationPair.external_id, Judgment.ordering, Judgment.error, Judgment.raw_output)
         .join(AnnotationPair, AnnotationPair.id == Judgment.pair_id)
         .where(Judgment.run_id == run_id, Judgment.error.is_not(None)).order_by(Judgment.id).limit(limit))
    with read_session(engine) as s:
        rows = s.execute(q).all()
    return [{"pair": p, "ordering": o, "error": e, "raw_output": r} for p, o, e, r in rows]


def completed_calls(engine: Engine, *, prompt_name: str, prompt_hash: str, judge_model: str, params_hash: str,
                    base_url: str | None = None) -> set[tuple[int, str]]:
    """(pair id, ordering) already judged without error under exactly this prompt/model/params, and, given
    ``base_url``, by that endpoint (judgments without a run or a run URL count for any endpoint)."""
    q = select(Judgment.pair_id, Judgment.ordering).where(
        Judgment.prompt_name == prompt_name, Judgment.prompt_hash == prompt_hash,
        Judgment.judge_model == judge_model, Judgment.params_hash == params_hash, Judgment.error.is_(None),
    )
    if base_url is not None:
        q = q.outerjoin(JudgeRun, Judgment.run_id == JudgeRun.id).where(
            or_(JudgeRun.base_url.is_(None), JudgeRun.base_url == base_url))
    with read_session(engine) as s:
        rows = s.execute(q).all()
    return {(p, o) for p, o in rows}


def cache_get(engine: Engine, key: str) -> CachedResponse | None:
    with read_session(engine) as s:
        c = s.get(JudgeCache, key)
        return None if c is None else CachedResponse(c.raw_output, c.prompt_tokens, c.completion_tokens)


def cache_put(engine: Engine, key: str, *, judge_model: str, params: dict[str, Any], response: CachedResponse) -> None:
    try:
        with transaction(engine) as s:
            if s.get(JudgeCache, key) is None:
                s.add(JudgeCache(key=key, judge_model=judge_model, params=params, raw_output=response.raw_output,
                                 prompt_tokens=response.prompt_tokens, completion_tokens=response.completion_tokens))
    except IntegrityError:  # a concurrent worker cached the same call first; either copy will do
        pass


def record_judgment(
    engine: Engine,
    *,
    run_id: int | None,
    pair_id: int,
    prompt_name: str,
    prompt_hash: str,
    judge_model: str,
    params: dict[str, Any],
    params_hash: str,
    ordering: str,
    raw_output: str | None,
    verdict: str | None,
    score_a: float | None,
    score_b: float | None,
    error: str | None,
    cached: bool,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: float | None,
) -> int:
    """Store one judge call: judgment + ledger entry + run counters, atomically."""
    if error is not None and (verdict is not None or score_a is not None or score_b is not None):
        raise ValueError("a judgment with an error cannot carry a verdict or scores")
    with transaction(engine) as s:
        j = Judgment(
            run_id=run_id, pair_id=pair_id, prompt_name=prompt_name, prompt_hash=prompt_hash, judge_model=judge_model,
            params=params, params_hash=params_hash, ordering=ordering, raw_output=raw_output, verdict=verdict,
            score_a=score_a, score_b=score_b, error=error, cached=cached,
        )
        s.add(j)
        s.add(UsageEntry(run_id=run_id, purpose="judge", model=judge_model, prompt_tokens=prompt_tokens,
                         completion_tokens=completion_tokens, cost_usd=0.0 if cached else cost_usd, cached=cached))
        if run_id is not None:
            s.execute(
                update(JudgeRun).where(JudgeRun.id == run_id)
                .values(n_done=JudgeRun.n_done + 1, n_errors=JudgeRun.n_errors + (1 if error else 0))
            )
        s.flush()
        return j.id


def ledger_summary(engine: Engine) -> list[dict[str, Any]]:
    """Tokens and cost per model (cached calls counted separately; they cost nothing)."""
    with read_session(engine) as s:
        rows = s.execute(
            select(
                UsageEntry.model, UsageEntry.cached, func.count(), func.sum(UsageEntry.prompt_tokens),
                func.sum(UsageEntry.completion_tokens), func.sum(UsageEntry.cost_usd),
            ).group_by(UsageEntry.model, UsageEntry.cached).order_by(UsageEntry.model, UsageEntry.cached)
        ).all()
    return [
        {"model": m, "cached": bool(c), "calls": n, "prompt_tokens": int(pt or 0), "completion_tokens": int(ct or 0),
         "cost_usd": None if cost is None else float(cost)}
        for m, c, n, pt, ct, cost in rows
    ]
