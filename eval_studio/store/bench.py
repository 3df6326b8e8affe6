"""Ingest benchmark results (JSON files written by ``bactrian bench``) into ``benchmark_runs``.

Accepted shapes:
- ``bactrian bench --out`` files (schema ``bactrian.bench/v1``): ``{"schema", "run_id", "model", "adapter",
  "records": [{"task", "language", "metric", "value", "stderr", "n", ...}], "averages": [...]}``; the
  per-language records are stored with their item counts and the run's ``created`` time, the averages are not
  (the views recompute them from the records);
- the project's own short form: ``{"run_id", "model", "adapter" (null/"" = bare base), "results": [{"task",
  "language", "metric", "value", "stderr"?}, ...]}``;
- lm-eval's results file: ``{"results": {task: {"acc,none": v, "acc_stderr,none": s, ...}}, "config":
  {"model_args": "pretrained=...,peft=..."}, "model_name"?, "date"?}``; the language is the task's last ``_xx``
  part when that is a known language code.
A row's ``created`` is when the run ran (the file's ``created`` or lm-eval's ``date``), else when it was ingested:
the views show the newest run per model variant, so ingesting an old file after a new one must not hide the new one.
Re-ingesting a file is a no-op; a different value for the same (run, model, adapter, task, language, metric)
is an error, so nothing is silently overwritten.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from eval_studio.store.db import read_session, transaction
from eval_studio.store.models import BenchmarkRun, utcnow
from eval_studio.store.repo import StoreError


@dataclass(frozen=True)
class BenchRow:
    run_id: str
    model: str
    adapter: str
    task: str
    language: str
    metric: str
    value: float
    stderr: float | None = None
    n: int | None = None
    created: datetime | None = None  # when the run ran; None: unknown (ingestion time is used)


def _created(value: Any, source: str) -> datetime | None:
    """An ISO time (``bactrian bench``) or a Unix timestamp (lm-eval's ``date``) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    try:
        t = datetime.fromtimestamp(float(value), timezone.utc) if isinstance(value, (int, float)) else datetime.fromisoformat(str(value))
    except (TypeError, ValueError, OverflowError, OSError) as e:
        raise StoreError(f"{source}: unreadable run time {value!r} ({e})") from e
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _language_of(task: str) -> str:
    from bactrian.languages import language_codes

    tail = task.rsplit("_", 1)[-1].lower()
    # known codes, and the two-letter codes benchmarks use that Bactrian-X lacks (xcopa qu/ht, xwinograd jp)
    return tail if "_" in task and (tail in language_codes() or (len(tail) == 2 and tail.isalpha())) else ""


def _model_args(args: Any) -> dict[str, str]:
    if isinstance(args, dict):
        return {k: str(v) for k, v in args.items()}
    pairs = (item.split("=", 1) for item in str(args or "").split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def parse_bench(data: dict[str, Any], source: str) -> list[BenchRow]:
    if not isinstance(data, dict):
        raise StoreError(f"{source}: not a bench results file (expected a JSON object)")
    key = "records" if str(data.get("schema") or "").startswith("bactrian.bench/") else "results"
    if isinstance(data.get(key), list):
        run_id, model = data.get("run_id") or Path(source).stem, data.get("model")
        if not model:
            raise StoreError(f"{source}: missing 'model'")
        created = _created(data.get("created"), source)
        rows = []
        for i, r in enumerate(data[key]):
            try:
                rows.append(BenchRow(str(run_id), str(model), str(data.get("adapter") or ""), str(r["task"]),
                                     str(r.get("language") or ""), str(r["metric"]), float(r["value"]),
                                     None if r.get("stderr") is None else float(r["stderr"]), _count(r.get("n")), created))
            except (KeyError, TypeError, ValueError) as e:
                raise StoreError(f"{source}: {key}[{i}] needs task, metric and a numeric value ({e})") from e
        return rows
    if isinstance(data.get("results"), dict):
        args = _model_args((data.get("config") or {}).get("model_args"))
        model = data.get("model_name") or args.get("pretrained") or args.get("model") or "unknown"
        adapter = args.get("peft") or args.get("adapter") or ""
        run_id = str(data.get("run_id") or data.get("date") or Path(source).stem)
        created = _created(data.get("date"), source)
        rows = []
        for task, metrics in data["results"].items():
            for key, value in metrics.items():
                name, _, _filter = key.partition(",")
                if name.endswith("_stderr") or name == "alias" or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                err = metrics.get(f"{name}_stderr,{_filter}" if _filter else f"{name}_stderr")
                rows.append(BenchRow(run_id, str(model), str(adapter), task, _language_of(task), name, float(value),
                                     float(err) if isinstance(err, (int, float)) and not isinstance(err, bool) else None,
                                     created=created))
        return rows
    raise StoreError(f"{source}: not a bench results file (expected a 'results' list or lm-eval 'results' object)")


def read_bench_file(path: str | Path) -> list[BenchRow]:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"cannot read bench results {path}: {e}") from e
    return parse_bench(data, str(path))


def bench_file_rows(path: str | Path) -> list[dict[str, Any]]:
    """A results file's metrics shaped like ``list_bench`` rows (for views of files not in a database)."""
    return [{**asdict(r), "created": r.created.isoformat() if r.created else ""}
            for r in read_bench_file(path) if not math.isnan(r.value)]


def ingest_bench_file(engine: Engine, path: str | Path) -> tuple[int, int]:
    """Store the metrics of one results file; returns (added, unchanged)."""
    path = Path(path)
    rows = read_bench_file(path)
    added = unchanged = 0
    with transaction(engine) as s:
        for r in rows:
            if math.isnan(r.value):
                continue  # lm-eval writes NaN for metrics it could not compute; skip rather than store NaN
            existing = s.scalar(select(BenchmarkRun).where(
                BenchmarkRun.run_id == r.run_id, BenchmarkRun.model == r.model, BenchmarkRun.adapter == r.adapter,
                BenchmarkRun.task == r.task, BenchmarkRun.language == r.language, BenchmarkRun.metric == r.metric))
            if existing is None:
                s.add(BenchmarkRun(run_id=r.run_id, model=r.model, adapter=r.adapter, task=r.task, language=r.language,
                                   metric=r.metric, value=r.value, stderr=r.stderr, n=r.n, source_file=str(path),
                                   created=r.created or utcnow()))
                added += 1
            elif existing.value != r.value:
                raise StoreError(f"{path}: {r.task}/{r.metric} for run {r.run_id} already stored with value {existing.value}")
            else:
                unchanged += 1
    return added, unchanged


def list_bench(db: Engine | str) -> list[dict[str, Any]]:
    """Every stored metric (an engine, or a database URL opened just for this read)."""
    from eval_studio.store.db import make_engine

    engine = db if isinstance(db, Engine) else make_engine(db)
    try:
        with read_session(engine) as s:
            rows = s.scalars(select(BenchmarkRun).order_by(BenchmarkRun.task, BenchmarkRun.language, BenchmarkRun.model)).all()
            return [{"run_id": r.run_id, "model": r.model, "adapter": r.adapter, "task": r.task, "language": r.language,
                     "metric": r.metric, "value": r.value, "stderr": r.stderr, "n": r.n, "created": r.created.isoformat()}
                    for r in rows]
    finally:
        if engine is not db:
            engine.dispose()
