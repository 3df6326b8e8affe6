"""Head-of-line blocking and concurrency through a real `bactrian serve` process (issue 14's acceptance).

    python bench/serve_bench.py [--base gemma-3-270m] [--threads 2] [--long 256] [--short 16] [--tokens 64]

H1  a short request (another adapter) sent 0.3 s after a long one started: its latency vs alone (goal <= 1.5x)
C1  8 concurrent streams over 4 adapters vs the same 8 one after another: aggregate tokens/s (goal >= 3x),
    and every stream's greedy text must equal its single-request text.
Everything runs in one process tree in one run, so the ratios compare like with like on a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import free_port  # noqa: E402

ADAPTERS = ["demo-zh", "demo-es", "demo-ar", "demo-multi"]
QUESTIONS = ["用一句话介绍骆驼。", "¿Por qué los camellos tienen jorobas?", "ما هي عاصمة مصر؟", "Name three desert animals.",
             "什么是机器学习？", "Escribe un poema corto sobre el mar.", "اكتب جملة عن الصحراء.", "What is the capital of France?"]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{model}, {os.cpu_count()} cores"


def start_server(args) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "bactrian.cli", "serve", "--base", args.base, "--port", str(port), "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bactrian serve exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url + "/v1"
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("bactrian serve did not start within 600 s")


def ask(client: openai.OpenAI, model: str, question: str, tokens: int) -> tuple[str, float]:
    t0 = time.perf_counter()
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}], max_tokens=tokens,
                                       temperature=0, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == tokens, r.usage
    return r.choices[0].message.content, time.perf_counter() - t0


def concurrently(client, jobs: list[tuple[str, str]], tokens: int) -> tuple[list[str], float]:
    out: list[str | None] = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        barrier.wait()
        out[i] = ask(client, jobs[i][0], jobs[i][1], tokens)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    t0 = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    return [o or "" for o in out], time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="gemma-3-270m")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the server")
    p.add_argument("--long", type=int, default=256)
    p.add_argument("--short", type=int, default=16)
    p.add_argument("--tokens", type=int, default=64, help="tokens per stream in C1")
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3, help="rounds of H1 (median)")
    args = p.parse_args()

    proc, url = start_server(args)
    try:
        client = openai.OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=1800)
        for a in ADAPTERS:  # warm-up: every adapter loaded once
            ask(client, a, "Hi", 2)

        # H1: head-of-line
        alone, behind = [], []
        for _ in range(args.repeat):
            alone.append(ask(client, ADAPTERS[0], QUESTIONS[0], args.short)[1])
            long_thread = threading.Thread(target=ask, args=(client, ADAPTERS[1], QUESTIONS[1], args.long))
            long_thread.start()
            time.sleep(0.3)
            behind.append(ask(client, ADAPTERS[0], QUESTIONS[0], args.short)[1])
            long_thread.join()
        h_alone, h_behind = statistics.median(alone), statistics.median(behind)

        # C1: concurrency
        jobs = [(ADAPTERS[i % len(ADAPTERS)], QUESTIONS[i % len(QUESTIONS)]) for i in range(args.streams)]
        t0 = time.perf_counter()
        single = [ask(client, m, q, args.tokens)[0] for m, q in jobs]
        seq = time.perf_counter() - t0
        together, con = concurrently(client, jobs, args.tokens)
        same = sum(a == b for a, b in zip(single, together))
        health = httpx.get(url.removesuffix("/v1") + "/health").json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    n_tok = args.streams * args.tokens
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {machine()} · load average {load} · "
          f"server threads {args.threads or 'default'} · {health['engine']}")
    print("| check | measured | reference | ratio | goal |")
    print("|---|---:|---:|---:|---|")
    print(f"| H1 {args.short}-token request sent 0.3 s into a {args.long}-token one (other adapter) | "
          f"{h_behind:.2f} s | {h_alone:.2f} s alone | {h_behind / h_alone:.2f}x | <= 1.5x |")
    print(f"| C1 {args.streams} concurrent streams over {len(ADAPTERS)} adapters, {args.tokens} tokens each | "
          f"{n_tok / con:.1f} tok/s | {n_tok / seq:.1f} tok/s one after another | {seq / con:.2f}x | >= 3x |")
    print(f"| C1 greedy text equal to the single-request text | {same}/{args.streams} | | | all |")
    print(f"server stats: {health['stats']}")


if __name__ == "__main__":
    main()
