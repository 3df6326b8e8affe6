"""Studio store throughput on a real SQLite file (WAL, BEGIN IMMEDIATE writers).

Measures: arena votes (record_battle + record_vote) from concurrent threads; annotation rounds
(next_pair_for + vote_on_assignment) from concurrent annotators with overlap k=2; load_battles on the result.
Prints a markdown table. Usage: python bench/studio_store.py [--threads 20] [--votes 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from eval_studio.store import open_store
from eval_studio.store.battles import load_battles
from eval_studio.store.repo import record_battle, record_vote
from eval_studio.store.tasks import (
    PairRecord,
    import_pairs,
    next_pair_for,
    vote_on_assignment,
)


def _parallel(n_threads: int, work) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)

    def run(i: int) -> None:
        barrier.wait()
        for lat in work(i):
            with lock:
                latencies.append(lat)

    def guarded(i: int) -> None:
        try:
            run(i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, len(errors)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=20)
    ap.add_argument("--votes", type=int, default=50, help="per thread")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")

        def arena(i: int):
            for j in range(args.votes):
                t = time.perf_counter()
                bid = record_battle(engine, question=f"q{i}-{j}", answer_a="A " * 100, answer_b="B " * 120, model_a="m1",
                                    model_b="m2", mode="battle", language="en", params={"temperature": 0.7})
                record_vote(engine, bid, "a", annotator=f"user{i}")
                yield time.perf_counter() - t

        wall, lat, errs = _parallel(args.threads, arena)
        rows.append(("arena vote (battle + vote)", len(lat), errs, wall, lat))

        n_pairs = args.threads * args.votes  # capacity 2x the demand with k=2
        import_pairs(engine, [PairRecord(id=f"p{i}", question=f"Q{i}?", answer_a="left", answer_b="right", model_a="m1",
                                         model_b="m2", language="en") for i in range(n_pairs)], task="bench", overlap=2)

        def annotate(i: int):
            for _ in range(args.votes):
                t = time.perf_counter()
                shown = next_pair_for(engine, f"ann{i}", "bench")
                vote_on_assignment(engine, shown.assignment_id, f"ann{i}", "b")
                yield time.perf_counter() - t

        wall, lat, errs = _parallel(args.threads, annotate)
        rows.append(("annotation round (next_pair_for + vote)", len(lat), errs, wall, lat))

        t = time.perf_counter()
        df = load_battles(engine)
        rows.append(("load_battles (all rows)", len(df), 0, time.perf_counter() - t, []))
        engine.dispose()

    print(f"threads={args.threads}, per thread={args.votes}")
    print("| operation | ops | errors | wall s | ops/s | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, errs, wall, lat in rows:
        p50 = f"{statistics.median(lat) * 1000:.1f}" if lat else "-"
        p95 = f"{statistics.quantiles(lat, n=20)[-1] * 1000:.1f}" if len(lat) > 1 else "-"
        print(f"| {name} | {n} | {errs} | {wall:.2f} | {n / wall:.0f} | {p50} | {p95} |")


if __name__ == "__main__":
    main()
