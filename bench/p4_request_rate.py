"""P4: achieved request rate of the respond step against a local OpenAI-compatible server that answers after a
fixed delay L, at concurrency C, divided by the bound C / L (goal >= 0.9); plus the dry-run estimate of the
paper's full job (67,017 rows x 52 languages, gpt-3.5-turbo, Google Translate).

    python bench/p4_request_rate.py [--delay 0.2] [--concurrency 32] [--requests 960] [--repeat 1] [--no-estimate]

The stub server (aiohttp, tests/stubapi.py) runs in its own process; its CPU time is read from /proc
and printed, together with the client's CPU time and the load average, so a short rate can be attributed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a child process (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _warm_imports() -> None:
    """Import what the respond step imports lazily, before the clock starts: a one-time process cost (~0.8 s of
    CPU here), not part of the request rate of a job that runs for hours."""
    import httpx  # noqa: F401
    import openai  # noqa: F401
    import tqdm.auto  # noqa: F401

    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        pass


def rate(delay: float, concurrency: int, n: int) -> dict:
    _warm_imports()
    port = _free_port()
    # The server runs in its own process so it does not share the client's interpreter lock.
    server = subprocess.Popen([sys.executable, "-m", "tests.stubapi", "--port", str(port), "--delay", str(delay)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])  # tests/ is a package there
    try:
        server.stdout.readline()  # "stub API on ..."
        spec = RespondSpec(model="stub", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None,
                           concurrency=concurrency, max_tokens=64)
        items = []
        for i in range(n):
            msgs = build_messages(f"Question {i}: name something blue.", "")
            items.append(Item(f"alpaca-{i}", "zh", msgs, prompt_hash(msgs, spec)))
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "work.db") as store:
            load0, s0 = os.getloadavg()[0], _proc_cpu_s(server.pid)
            t0, c0 = time.perf_counter(), time.process_time()
            stats = asyncio.run(respond_items(spec, store, items, progress=False))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            s1, load1 = _proc_cpu_s(server.pid), os.getloadavg()[0]
            stored = store.query("SELECT COUNT(*) FROM responses")[0][0]
    finally:
        server.terminate()
        server.wait()
    achieved = stored / wall
    bound = concurrency / delay
    server_cpu = None if s0 is None or s1 is None else s1 - s0
    return {"L_ms": delay * 1000, "C": concurrency, "requests": n, "stored": stored, "failed": stats.failed,
            "wall_s": wall, "client_cpu_s": cpu, "server_cpu_s": server_cpu, "achieved_rps": achieved,
            "bound_rps": bound, "ratio": achieved / bound, "load": (load0, load1)}


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
    ap.add_argument("--repeat", type=int, default=1, help="measure this many times (a fresh server each time)")
    ap.add_argument("--no-estimate", action="store_true", help="skip the paper-scale dry-run estimate")
    args = ap.parse_args()
    print("| L (ms) | C | requests | stored | failed | wall (s) | client CPU (s) | server CPU (s) | load avg (1 min) "
          "| achieved req/s | bound C/L | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.repeat):
        r = rate(args.delay, args.concurrency, args.requests)
        server_cpu = "n/a" if r["server_cpu_s"] is None else f"{r['server_cpu_s']:.2f}"
        print(f"| {r['L_ms']:.0f} | {r['C']} | {r['requests']} | {r['stored']} | {r['failed']} | {r['wall_s']:.2f} "
              f"| {r['client_cpu_s']:.2f} | {server_cpu} | {r['load'][0]:.1f} -> {r['load'][1]:.1f} "
              f"| {r['achieved_rps']:.1f} | {r['bound_rps']:.1f} | {r['ratio']:.3f} |", flush=True)
    if not args.no_estimate:
        print()
        print(paper_estimate())


if __name__ == "__main__":
    main()
