"""Throughput of the generation service on a GPU: 1, 8 and 32 concurrent streams over 4 adapters.

    python bench/gpu_throughput.py [--device cuda] [--tokens 128] [--streams 1 8 32]

No downloads and no weights travel: a random-init model with Gemma 3 270M's exact configuration (262,144-word
vocabulary, 18 layers, sliding window) and a tiny BLOOM, each with 4 random LoRA adapters written to a temp
folder, served in the device's auto dtype (bf16 on a recent GPU). Random weights generate random tokens, so
every stream runs to ``--tokens`` (ignore_eos) and the numbers measure the serving path, not the text.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

GEMMA_270M = dict(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                  num_attention_heads=4, num_key_value_heads=1, head_dim=256, max_position_embeddings=32768,
                  sliding_window=512, rope_theta=1_000_000.0, query_pre_attn_scalar=256)


def write_base(folder: Path, arch: str) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from bactrian.testing import make_tiny_base, make_tokenizer

    if arch == "bloom":
        return make_tiny_base(folder, arch="bloom")
    tok = make_tokenizer()
    config = AutoConfig.for_model("gemma3_text", **GEMMA_270M, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_adapters(base: Path, root: Path, targets: list[str], n: int = 4) -> list[str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    names = []
    for i in range(n):
        model = AutoModelForCausalLM.from_pretrained(base)
        torch.manual_seed(100 + i)
        peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False))
        name = f"random-{i}"
        peft_model.save_pretrained(root / name)
        (root / name / "bactrian_adapter.json").write_text(json.dumps({"name": name, "base_model": None}), "utf-8")
        names.append(name)
    return names


def measure(service, names: list[str], streams: int, tokens: int) -> tuple[float, float]:
    from bactrian.generation import GenerationParams
    from bactrian.service import GenRequest

    params = GenerationParams(max_new_tokens=tokens, temperature=0, ignore_eos=True)
    t0 = time.perf_counter()
    subs = [service.submit(GenRequest(names[i % len(names)], [{"role": "user", "content": f"Question {i}"}], params=params))
            for i in range(streams)]
    first = None
    total = 0
    for s in subs:
        for ev in s:
            if first is None and ev.completion_tokens:
                first = time.perf_counter() - t0
        total += ev.completion_tokens
    return total / (time.perf_counter() - t0), first or 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32])
    args = p.parse_args()

    import torch

    from bactrian.engine import Engine
    from bactrian.service import LocalService

    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    print("| base | streams | adapters | aggregate tok/s | time to first token | placement |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for arch, label, targets in (("gemma3_text", "Gemma 3 270M config, random", ["q_proj", "k_proj", "v_proj", "o_proj"]),
                                     ("bloom", "tiny BLOOM, random", ["query_key_value"])):
            base = write_base(Path(tmp) / arch, arch)
            names = write_adapters(base, Path(tmp) / f"{arch}-adapters", targets)
            engine = Engine.load(str(base), [str(Path(tmp) / f"{arch}-adapters")], include_default_dirs=False,
                                 device=args.device, dtype=args.dtype)
            service = LocalService(engine, max_rows=max(args.streams))
            try:
                measure(service, names, 4, 4)  # warm-up: loads every adapter, compiles kernels
                for n in args.streams:
                    tps, ttft = measure(service, names, n, args.tokens)
                    print(f"| {label} | {n} | {min(n, len(names))} | {tps:.0f} | {ttft:.2f} s | {engine.describe()} |", flush=True)
            finally:
                service.close()


if __name__ == "__main__":
    main()
