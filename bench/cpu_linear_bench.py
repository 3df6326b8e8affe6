"""Why mixed batching gained nothing on a 2-core AMD EPYC, and what ``bactrian.cpu_linear`` changes.

    python bench/cpu_linear_bench.py [--threads 1 2] [--rows 1 2 4 8] [--repeat 7]

Part 1: the LM head alone (Gemma 3 270M's tied 262,144 x 640 float32 embedding), ``F.linear`` vs the few-rows
path, per number of rows. Part 2: one decode step of the embedded Gemma with mixed demo adapters, per batch
size, with every linear layer on ``F.linear`` (stock) and on the few-rows path, in the same run. Minimum of ``--repeat`` interleaved rounds
(the minimum is the least disturbed by other work on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from bactrian import cpu_linear


def best_ms(fn, repeat: int) -> float:
    fn()
    out = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out * 1000


def lm_head(rows_list: list[int], repeat: int) -> list[str]:
    w = torch.randn(262144, 640)
    lines = []
    with torch.inference_mode():
        for rows in rows_list:
            x = torch.randn(rows, 640)
            stock = best_ms(lambda: F.linear(x, w), repeat)
            fast = best_ms(lambda: cpu_linear.skinny_linear(x, w), repeat)
            lines.append(f"| LM head, {rows} row(s) | {stock:.0f} ms | {fast:.0f} ms | {stock / fast:.2f}x |")
    return lines


def decode_steps(rows_list: list[int], repeat: int) -> list[str]:
    from bactrian.engine import Engine

    engine = Engine.load("gemma-3-270m", include_default_dirs=True, device="cpu", dtype="float32")
    # the engine routed its linears through cpu_linear at load; "stock" takes that away for the same model
    patched = {m: m.forward for m in engine.base.model.modules() if "forward" in vars(m)}

    def use(fast: bool) -> None:
        for module, forward in patched.items():
            if fast:
                module.forward = forward
            else:
                del module.forward  # back to nn.Linear.forward, i.e. F.linear
    adapters = [n for n in ("demo-zh", "demo-es", "demo-ar", "demo-multi") if n in engine.adapters.names()] or ["__base__"]
    ids = engine.codec.encode(engine.prompter.build("Write a short story about a camel crossing the desert."))
    lines, single = [], {}
    for rows in rows_list:
        names = [adapters[i % len(adapters)] for i in range(rows)]
        engine.load_adapters(names)
        batch, logits = engine.prefill([ids] * rows, names)
        tokens = [int(t) for t in logits.argmax(-1)]
        times = {}
        for label in ("stock", "fast"):
            use(label == "fast")
            times[label] = best_ms(lambda: engine.decode(batch, tokens), repeat)
        single = single or times
        gain = {k: rows * single[k] / times[k] for k in times}
        lines.append(f"| decode step, {rows} row(s) over {len(set(names))} adapter(s) | {times['stock']:.0f} ms "
                     f"(batching gain {gain['stock']:.2f}x) | {times['fast']:.0f} ms (batching gain {gain['fast']:.2f}x) | "
                     f"{times['stock'] / times['fast']:.2f}x |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--skip-engine", action="store_true", help="only the LM-head kernel (no embedded model needed)")
    args = p.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    for threads in args.threads:
        torch.set_num_threads(threads)
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu}, {os.cpu_count()} cores · torch threads {threads} · "
              f"load average {load}")
        print("| what | F.linear (stock) | few-rows path | speed-up |")
        print("|---|---:|---:|---:|")
        for line in lm_head(args.rows, args.repeat) + ([] if args.skip_engine else decode_steps(args.rows, args.repeat)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
