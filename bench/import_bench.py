"""Studio import speed (issue 16, point 11): `bactrian studio import-pairs` on a JSONL file of labelled pairs.

Writes N pairs (question ~60 chars, answers ~600 chars each, one human label per pair from one of 50 annotators,
5 models) to a temporary JSONL file, then times ``import_pairs_file`` (read + validate + store, one transaction)
into a fresh SQLite file, and a re-import of the same file (every pair already there). The goal: 100K pairs in
<= 60 s. Prints a markdown table with the date, the machine and the load average.

Usage: python bench/import_bench.py [--pairs 100000] [--pairs 20000 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from eval_studio.io import import_pairs_file
from eval_studio.store import open_store

MODELS = ("alpha", "beta", "gamma", "delta", "epsilon")


def write_pairs(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            a, b = MODELS[i % 5], MODELS[(i + 1 + (i // 5) % 4) % 5]  # offset 1..4: never the same model
            row = {"id": f"p{i}", "question": f"Question {i}: how would you explain topic number {i} to a child?",
                   "answer_a": f"Answer A to {i}. " + "Some explanation text. " * 26,
                   "answer_b": f"Answer B to {i}. " + "Another explanation. " * 28,
                   "model_a": a, "model_b": b, "language": ("en", "zh", "es", "ar")[i % 4], "category": "generic",
                   "question_id": f"q{i}", "labels": [{"annotator": f"annotator-{i % 50}", "winner": ("a", "b", "tie")[i % 3]}]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def measure(n: int, tmp: Path) -> list[str]:
    src = tmp / f"pairs-{n}.jsonl"
    write_pairs(src, n)
    engine = open_store(f"sqlite:///{tmp / f'studio-{n}.db'}")
    rows = []
    for what in ("first import", "re-import (all present)"):
        t0, c0 = time.perf_counter(), time.process_time()
        report = import_pairs_file(engine, src, task="bench")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(f"| {n:,} | {what} | {report.added:,} / {report.unchanged:,} / {report.labels_added:,} | {wall:.1f} | "
                    f"{cpu:.1f} | {1000 * cpu / n:.2f} | {n / wall:,.0f} |")
    engine.dispose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, action="append", help="pairs per file (repeatable; default 20000 and 100000)")
    args = ap.parse_args()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"date: {when}; machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average (1/5/15 min) at start: {load}")
    print()
    print("| pairs | run | added / present / labels | wall s | CPU s | CPU ms per pair | pairs/s |")
    print("|---:|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        for n in args.pairs or [20_000, 100_000]:
            for row in measure(n, Path(tmp)):
                print(row, flush=True)
    print()
    print(f"load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
