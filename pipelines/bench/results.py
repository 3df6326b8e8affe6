"""Benchmark results as JSON (one run per file) and the paper-style tables built from them.

Schema ``bactrian.bench/v1``: a run's header (model, adapter, source, limit, ...) and ``records``, one per
task and language: ``{run_id, created, model, adapter, task, language, metric, value, stderr, n, lm_eval_task}``;
``averages`` repeats that shape with ``language: "avg"`` (unweighted mean over the run's languages, as the
paper's "avg" columns). The studio ingests these files (``bactrian studio import-bench``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean

SCHEMA = "bactrian.bench/v1"
AVG = "avg"
TABLE4_COLUMNS = ("xcopa", "xstorycloze", "xwinograd", "sentimentx")


@dataclass(frozen=True)
class Record:
    run_id: str
    created: str
    model: str
    adapter: str | None
    task: str
    language: str
    metric: str
    value: float
    stderr: float | None = None
    n: int | None = None
    lm_eval_task: str | None = None

    @property
    def variant(self) -> str:
        """How a model row is labelled: the base, or ``base + adapter``."""
        return f"{self.model} + {self.adapter}" if self.adapter else self.model


@dataclass
class BenchRun:
    schema: str
    run_id: str
    created: str
    model: str
    adapter: str | None
    adapter_path: str | None
    source: str
    limit: int | None
    batch_size: int
    lm_eval_version: str
    seconds: float
    cache: str | None
    records: list[Record] = field(default_factory=list)
    averages: list[Record] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    def write(self, path: str | Path) -> Path:
        """Write atomically, so an interrupted run never leaves half a file where a result was."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(self.to_json() + "\n", "utf-8")
        tmp.replace(p)
        return p


def average_records(records: list[Record]) -> list[Record]:
    """One ``avg`` record per task: the unweighted mean over languages; n is the total of examples."""
    out = []
    for task in dict.fromkeys(r.task for r in records):
        rows = [r for r in records if r.task == task]
        first = rows[0]
        ns = [r.n for r in rows if r.n is not None]
        out.append(Record(run_id=first.run_id, created=first.created, model=first.model, adapter=first.adapter,
                          task=task, language=AVG, metric=first.metric, value=mean(r.value for r in rows),
                          n=sum(ns) if ns else None))
    return out


def read_run(path: str | Path) -> BenchRun:
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not a readable results file ({e})") from e
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{p}: schema {data.get('schema')!r} is not {SCHEMA!r}")
    data["records"] = [Record(**r) for r in data.get("records", [])]
    data["averages"] = [Record(**r) for r in data.get("averages", [])]
    return BenchRun(**data)


def table4(runs: list[BenchRun], digits: int = 1) -> str:
    """Markdown table like the paper's Table 4: one row per model variant, one column per benchmark average (%)."""
    present = [c for c in TABLE4_COLUMNS if any(a.task == c for run in runs for a in run.averages)]
    lines = ["| model | " + " | ".join(present) + " |", "|---" * (len(present) + 1) + "|"]
    for run in runs:
        by_task = {a.task: a for a in run.averages}
        label = run.averages[0].variant if run.averages else run.model
        cells = [f"{100 * by_task[c].value:.{digits}f}" if c in by_task else "–" for c in present]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def language_table(run: BenchRun, digits: int = 1) -> str:
    """Markdown table of one run: a row per task, a column per language, then the average (%)."""
    lines = []
    for task in dict.fromkeys(r.task for r in run.records):
        rows = [r for r in run.records if r.task == task]
        avg = next(a for a in run.averages if a.task == task)
        lines += [f"{task} ({rows[0].metric}, n per language: {', '.join(f'{r.language}={r.n}' for r in rows)})",
                  "| " + " | ".join(r.language for r in rows) + f" | {AVG} |",
                  "|---" * (len(rows) + 1) + "|",
                  "| " + " | ".join(f"{100 * r.value:.{digits}f}" for r in rows) + f" | {100 * avg.value:.{digits}f} |", ""]
    return "\n".join(lines).rstrip()
