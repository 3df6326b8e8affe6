"""P4: achieved request rate of the respond step against a local OpenAI-compatible server that answers after a
fixed delay L, at concurrency C, divided by the bound C / L (goal >= 0.9); plus the dry-run estimate of the
paper's full job (67,017 rows x 52 languages, gpt-3.5-turbo, Google Translate).

    python bench/p4_request_rate.py [--delay 0.2] [--concurrency 32] [--requests 960]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bactrian.languages import language_codes
from pipelines.data.ledger import estimate, format_estimate
from pipelines.data.recipe import RespondSpec, SourceSpec
from pipelines.data.respond import Item, build_messages, prompt_hash, respond_items
from pipelines.data.sources import load_source
from pipelines.data.store import Store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DOLLY_ROWS = 67_017 - 52_002  # the paper's merge: Alpaca 52,002 + Dolly 15,015


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rate(delay: float, concurrency: int, n: int) -> dict:
    port = _free_port()
    # The server runs in its own process so it does not share the client's interpreter lock.
    server = subprocess.Popen([sys.executable, "-m", "pipelines.data.stubapi", "--port", str(port), "--delay", str(delay)],
                              stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()  # "stub API on ..."
        spec = RespondSpec(model="stub", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None,
                           concurrency=concurrency, max_tokens=64)
        items = []
        for i in range(n):
            msgs = build_messages(f"Question {i}: name something blue.", "")
            items.append(Item(f"alpaca-{i}", "zh", msgs, prompt_hash(msgs, spec)))
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "work.db") as store:
            t0, c0 = time.perf_counter(), time.process_time()
            stats = asyncio.run(respond_items(spec, store, items, progress=False))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            stored = store.query("SELECT COUNT(*) FROM responses")[0][0]
    finally:
        server.terminate()
        server.wait()
    achieved = stored / wall
    bound = concurrency / delay
    return {"L_ms": delay * 1000, "C": concurrency, "requests": n, "stored": stored, "failed": stats.failed,
            "wall_s": wall, "client_cpu_s": cpu, "achieved_rps": achieved, "bound_rps": bound, "ratio": achieved / bound}


def paper_estimate() -> str:
    alpaca = SHARED / "alpaca" / "alpaca_data_en_52k.jsonl"
    if not alpaca.is_file():
        return f"(skipped: {alpaca} absent)"
    rows = load_source(SourceSpec(kind="alpaca", path=str(alpaca))).rows
    # Dolly 15K is not available offline: stand in with Alpaca rows repeated to Dolly's row count.
    # Dolly's rows are longer (context paragraphs), so this under-estimates its share.
    stand_in = [rows[i % len(rows)] for i in range(DOLLY_ROWS)]
    e = estimate(rows + stand_in, language_codes(), "gpt-3.5-turbo", "google", max_tokens=1024)
    return format_estimate(e) + "\n  (Dolly's 15,015 rows approximated by Alpaca rows: not available offline)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=960)
    args = ap.parse_args()
    r = rate(args.delay, args.concurrency, args.requests)
    print("| L (ms) | C | requests | stored | failed | wall (s) | client CPU (s) | achieved req/s | bound C/L | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {r['L_ms']:.0f} | {r['C']} | {r['requests']} | {r['stored']} | {r['failed']} | {r['wall_s']:.2f} | {r['client_cpu_s']:.2f} "
          f"| {r['achieved_rps']:.1f} | {r['bound_rps']:.1f} | {r['ratio']:.3f} |")
    print()
    print(paper_estimate())


if __name__ == "__main__":
    main()
