"""Issue 15: CPU decode of the embedded Gemma, fast path (llama.cpp + a LoRA adapter) vs llama.cpp bare vs torch.

One run, interleaved rounds, medians; prints the machine, the load average before and after, and two tables:
1. single-stream decode tokens/s at 1 and 2 threads, greedy, 64 new tokens (ignore_eos), the same prompt ids:
   - fast path: ``LlamaCppService`` with adapter ``demo-zh`` (the service's worker, sampling, detokenizing);
   - llama.cpp bare: the same package and GGUF, a plain context, no adapter, argmax (the reference);
   - torch path: ``LocalService`` over ``Engine`` (transformers + peft, float32), adapter ``demo-zh``;
2. the arena case: two streams with two different adapters at once vs one stream (tokens/s, all threads).
Decode tokens/s counts from the first generated token to the last (the prompt's prefill is excluded).

    .venv/bin/python bench/cpu_decode_vs_llamacpp.py [--rounds 3] [--tokens 64] [--skip-torch]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch

from bactrian.engine import Engine
from bactrian.generation import GenerationParams
from bactrian.llamacpp import LlamaCppEngine, LlamaCppService, cpu_count
from bactrian.llamacpp_lib import native
from bactrian.service import GenRequest, LocalService

MESSAGES = [{"role": "user", "content": "Write a short story about a camel crossing the desert."}]
ADAPTER, OTHER = "demo-zh", "demo-es"


def decode_rate(service: LocalService, model: str, tokens: int) -> tuple[float, int]:
    """(decode tokens/s, tokens) of one greedy request: from the first generated token to the last."""
    params = GenerationParams(max_new_tokens=tokens, temperature=0, ignore_eos=True)
    return _rates(service, [model], params)[0]


def _marks(service: LocalService, models: list[str], params: GenerationParams) -> list[list[tuple[float, int]]]:
    """(time, completion tokens so far) of every event of ``models`` requested at once, per request."""
    marks: list[list[tuple[float, int]]] = [[] for _ in models]
    left, done = [len(models)], threading.Event()

    def on_event(i: int):
        def cb(ev):
            if isinstance(ev, Exception):
                print(f"error: {ev}")
                done.set()
                return
            marks[i].append((time.perf_counter(), ev.completion_tokens))
            if ev.finished:
                left[0] -= 1
                if not left[0]:
                    done.set()
        return cb

    for i, m in enumerate(models):
        service.submit(GenRequest(m, MESSAGES, params=params), on_event=on_event(i))
    done.wait()
    return marks


def _rates(service: LocalService, models: list[str], params: GenerationParams) -> list[tuple[float, int]]:
    out = []
    for m in _marks(service, models, params):
        (t0, c0), (t1, c1) = m[0], m[-1]
        out.append(((c1 - c0) / (t1 - t0), c1))
    return out


def first_token(service: LocalService) -> float:
    """Seconds from submit to the first streamed text of a short chat request (what a studio user waits)."""
    t0 = time.perf_counter()
    with service.submit(GenRequest(ADAPTER, [{"role": "user", "content": "Hi"}],
                                   params=GenerationParams(max_new_tokens=32, temperature=0))) as stream:
        for ev in stream:
            if ev.delta or ev.finished:
                return time.perf_counter() - t0
    return time.perf_counter() - t0


def arena_rate(service: LocalService, models: list[str], tokens: int) -> float:
    """Total decode tokens/s of ``models`` streaming at once (first event of any to the last of all)."""
    marks = _marks(service, models, GenerationParams(max_new_tokens=tokens, temperature=0, ignore_eos=True))
    start, end = min(m[0][0] for m in marks), max(m[-1][0] for m in marks)
    return sum(m[-1][1] - m[0][1] for m in marks) / (end - start)


class BareLlama:
    """llama.cpp with nothing of ours: one plain context, the prompt in, greedy tokens out. The greedy pick is a
    numpy argmax over the logits (~0.1 ms; llama.cpp's own greedy sampler builds a 262K-entry candidate array per
    token and is slower), so the reference is as fast as this package's llama.cpp gets."""

    def __init__(self, path: str):
        n = native()
        self.lib, self.ffi = n.lib, n.ffi
        params = self.lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = self.lib.llama_model_load_from_file(path.encode(), params)
        self.n_vocab = self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.model))
        self.ctx = None

    def _argmax(self) -> int:
        ptr = self.lib.llama_get_logits_ith(self.ctx, -1)
        return int(np.argmax(np.frombuffer(self.ffi.buffer(ptr, self.n_vocab * 4), dtype=np.float32)))

    def rate(self, ids: list[int], tokens: int, threads: int) -> float:
        lib = self.lib
        if self.ctx is not None:
            lib.llama_free(self.ctx)
        p = lib.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_threads, p.n_threads_batch, p.no_perf = 1024, 512, threads, threads, True
        self.ctx = lib.llama_init_from_model(self.model, p)
        arr = self.ffi.new("llama_token[]", ids)
        assert lib.llama_decode(self.ctx, lib.llama_batch_get_one(arr, len(ids))) == 0
        tok = self.ffi.new("llama_token[1]", [self._argmax()])
        t0 = time.perf_counter()
        for _ in range(tokens - 1):
            assert lib.llama_decode(self.ctx, lib.llama_batch_get_one(tok, 1)) == 0
            tok[0] = self._argmax()
        return (tokens - 1) / (time.perf_counter() - t0)


@contextlib.contextmanager
def torch_service(engine: Engine, threads: int):
    """A torch-path service whose worker runs ``threads`` torch threads (a torch thread takes the count when it
    starts, so each setting gets a fresh worker; one service at a time over the engine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    service = LocalService(engine)
    try:
        yield service
    finally:
        service.close()
        torch.set_num_threads(previous)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())
    return f"{model}, {cpu_count()} cores, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()
    print(f"date {datetime.date.today()}  machine: {machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    t0 = time.perf_counter()
    fast = LlamaCppService(LlamaCppEngine.load("gemma-3-270m", threads=cpu_count()))
    loaded = time.perf_counter() - t0
    ttft = [first_token(fast) for _ in range(4)]  # the first one creates a lane (adapters converted and cached)
    print(f"fast path: service ready in {loaded:.1f} s; first token of a short chat request (demo-zh, 'Hi'): "
          f"first request {ttft[0]:.2f} s, then median {statistics.median(ttft[1:]):.2f} s", flush=True)
    ids = fast.engine.codec.encode(fast.engine.prompter.prompt_for(MESSAGES))
    bare = BareLlama(str(fast.engine.model_file))
    torch_engine = None if args.skip_torch else Engine.load("gemma-3-270m")
    print(f"prompt {len(ids)} tokens, {args.tokens} new tokens, greedy; fast path: {fast.describe()}", flush=True)
    decode_rate(fast, ADAPTER, 8)  # warm-up: adapter conversion (cached), a lane, first-call costs
    if torch_engine is not None:
        with torch_service(torch_engine, cpu_count()) as slow:
            decode_rate(slow, ADAPTER, 4)

    threads = [t for t in (1, 2) if t <= cpu_count()]
    single: dict[tuple[str, int], list[float]] = {}
    arena: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for t in threads:
            fast.engine.threads = t
            single.setdefault(("fast", t), []).append(decode_rate(fast, ADAPTER, args.tokens)[0])
            single.setdefault(("bare", t), []).append(bare.rate(ids, args.tokens, t))
            if torch_engine is not None:
                with torch_service(torch_engine, t) as slow:
                    single.setdefault(("torch", t), []).append(decode_rate(slow, ADAPTER, args.tokens)[0])
        fast.engine.threads = cpu_count()
        arena.setdefault("fast 1", []).append(arena_rate(fast, [ADAPTER], args.tokens))
        arena.setdefault("fast 2", []).append(arena_rate(fast, [ADAPTER, OTHER], args.tokens))
        if torch_engine is not None:
            with torch_service(torch_engine, cpu_count()) as slow:
                arena.setdefault("torch 1", []).append(arena_rate(slow, [ADAPTER], args.tokens))
                arena.setdefault("torch 2", []).append(arena_rate(slow, [ADAPTER, OTHER], args.tokens))
        print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)

    med = {k: statistics.median(v) for k, v in single.items()}
    print("\n| threads | fast path (LoRA demo-zh) | llama.cpp bare | fast / llama.cpp | torch path (LoRA demo-zh) | fast / torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for t in threads:
        f, b, s = med[("fast", t)], med[("bare", t)], med.get(("torch", t))
        torch_cols = f"{s:.1f} tok/s | {f / s:.1f}x" if s else "- | -"
        print(f"| {t} | {f:.1f} tok/s | {b:.1f} tok/s | {f / b:.2f} | {torch_cols} |")
    am = {k: statistics.median(v) for k, v in arena.items()}
    print(f"\n| arena, {cpu_count()} threads | one column | two columns (demo-zh + demo-es) | ratio |")
    print("|---|---:|---:|---:|")
    for eng in ("fast", "torch"):
        if f"{eng} 1" in am:
            one, two = am[f"{eng} 1"], am[f"{eng} 2"]
            print(f"| {eng} path | {one:.1f} tok/s | {two:.1f} tok/s | {two / one:.2f}x |")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    fast.close()


if __name__ == "__main__":
    main()
