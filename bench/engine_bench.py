"""Foundation benchmarks, one run, one table (issue: foundation).

P1  tokens/s of two adapters decoded in ONE mixed batch vs the same two one after the other (goal >= 1.7x)
P1b two concurrent HTTP requests for different adapters vs two sequential ones via `bactrian serve` (>= 1.6x)
P2  adapter switch time (set_adapter) vs base model load time
P3  cached start vs first GGUF load (goal <= 1/10)

Usage: python bench/engine_bench.py [--base gemma-3-270m] [--tokens 64] [--skip-gguf]
Uses the demo adapters when present, else two random LoRA adapters written to a temp folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_random_adapters(base_name: str, root: Path) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from bactrian.models import load_base

    out = []
    for i, name in enumerate(["bench-a", "bench-b"]):
        b = load_base(base_name)
        torch.manual_seed(i)
        m = get_peft_model(b.model, LoraConfig(r=16, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
        m.save_pretrained(root / name)
        out.append(root / name)
    return out


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="gemma-3-270m")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-gguf", action="store_true", help="skip P3's fresh GGUF load (~1-2 min)")
    ap.add_argument("--threads", type=int, help="torch threads (1 avoids thread-barrier stalls on a busy machine)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    import openai

    from bactrian.adapters import default_search_dirs, discover
    from bactrian.engine import Engine
    from bactrian.service import GenRequest, LocalService
    from bactrian.generation import GenerationParams
    from bactrian.models import get_spec, load_base

    tmp = Path(tempfile.mkdtemp(prefix="bactrian-bench-"))
    infos, _ = discover(default_search_dirs(get_spec(args.base).name))
    dirs = [str(tmp)]
    if len(infos) < 2:
        make_random_adapters(args.base, tmp)
    engine = Engine.load(args.base, dirs)
    names = engine.adapters.names()[:2]
    g = GenerationParams(max_new_tokens=args.tokens, temperature=0, ignore_eos=True)
    prompt = engine.prompter.build("Write a short story about a camel crossing the desert.")
    reqs = [GenRequest(n, prompt=prompt, params=g) for n in names]
    service = LocalService(engine)

    def run(batch):  # submitted together: one mixed batch
        return [s.result() for s in [service.submit(r) for r in batch]]

    run(reqs)  # warm-up: loads both adapters
    seq = timed(lambda: [run([r]) for r in reqs], args.repeat)
    bat = timed(lambda: run(reqs), args.repeat)
    n_tok = 2 * args.tokens
    rows = [("P1 two adapters, one mixed batch", f"{n_tok / bat:.1f} tok/s", f"{n_tok / seq:.1f} tok/s sequential", f"{seq / bat:.2f}x", ">= 1.7x")]

    # P1b: through the HTTP server, two concurrent vs two sequential requests.
    from bactrian.server import create_app
    from tests.helpers import LiveServer

    with LiveServer(create_app(service)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="bench", max_retries=0)

        def ask(name):
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Write a short story about a camel."}], max_tokens=args.tokens, temperature=0, extra_body={"ignore_eos": True})

        ask(names[0])
        http_seq = timed(lambda: [ask(n) for n in names], args.repeat)

        def both():
            ts = [threading.Thread(target=ask, args=(n,)) for n in names]
            [t.start() for t in ts]
            [t.join() for t in ts]

        http_con = timed(both, args.repeat)
    rows.append(("P1b two HTTP requests, concurrent", f"{n_tok / http_con:.1f} tok/s", f"{n_tok / http_seq:.1f} tok/s sequential", f"{http_seq / http_con:.2f}x", ">= 1.6x"))

    # P2: switching adapters vs loading the base.
    model = engine.adapters.model
    switch = timed(lambda: [model.set_adapter(names[i % 2], inference_mode=True) for i in range(100)], 3) / 100
    base_load = timed(lambda: load_base(args.base), 2)
    rows.append(("P2 adapter switch vs base load", f"{switch * 1000:.2f} ms", f"{base_load:.2f} s base load", f"1/{base_load / switch:.0f}", "switch << load"))

    # P3: cached start vs a first GGUF load into an empty cache.
    spec = get_spec(args.base)
    if spec.kind == "pypi-gguf" and not args.skip_gguf:
        cached = timed(lambda: load_base(args.base), 2)
        os.environ["BACTRIAN_CACHE"] = str(tmp / "fresh-cache")
        t0 = time.perf_counter()
        load_base(args.base)
        first = time.perf_counter() - t0
        rows.append(("P3 cached start vs first GGUF load", f"{cached:.1f} s", f"{first:.1f} s first load", f"{cached / first:.3f}", "<= 0.1"))

    import torch

    print(f"\nbase={args.base} adapters={names} tokens/request={args.tokens} cpus={os.cpu_count()} torch threads={torch.get_num_threads()}")
    print(f"| {'benchmark':<36} | {'measured':>14} | {'reference':>26} | {'ratio':>8} | {'goal':>14} |")
    print(f"|{'-' * 38}|{'-' * 16}|{'-' * 28}|{'-' * 10}|{'-' * 16}|")
    for r in rows:
        print(f"| {r[0]:<36} | {r[1]:>14} | {r[2]:>26} | {r[3]:>8} | {r[4]:>14} |")


if __name__ == "__main__":
    main()
