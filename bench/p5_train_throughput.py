"""P5: training tokens/s with our batching vs a plain padded, shuffled baseline (same data, same loss).

Each configuration runs `bactrian train` in its own process (so peak memory is its own) on the same
instruction records, same seed, same token-mean response-only loss, and reports what the trainer measured:
non-padding tokens per second of training (model load and eval excluded) and peak memory (GPU: max allocated;
CPU: peak resident set of the process).

Configurations
- plain:    shuffled batches padded to their longest example, LM head over every position (the usual setup)
- padded:   the same batches, LM head only where a response token is predicted
- grouped:  ours: length-grouped batches + LM head only on response positions

    BACTRIAN_CACHE=/tmp/bcache python bench/p5_train_throughput.py --examples 48
    python bench/p5_train_throughput.py --base /path/to/tiny --data my.jsonl   # any base, any jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CONFIGS = {
    "plain": {"batching": "padded", "response_only_logits": False},
    "padded": {"batching": "padded", "response_only_logits": True},
    "grouped": {"batching": "grouped", "response_only_logits": True},
}


def sample_records(source: Path, n: int, out: Path) -> None:
    rows = []
    with source.open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("instruction") and r.get("output"):
                rows.append({"instruction": r["instruction"], "input": r.get("input") or "", "output": r["output"]})
            if len(rows) == n:
                break
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="gemma-3-270m")
    ap.add_argument("--data", default=str(SHARED / "alpaca_zh" / "alpaca_zh_52k_v3.jsonl"))
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: {args.data} not found (the shared data lives in ../shared/data)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        sample_records(Path(args.data), args.examples, data)
        for name in args.configs.split(","):
            recipe = {
                "name": f"p5-{name}", "base": args.base,
                "data": {"source": "jsonl", "path": str(data), "eval_fraction": 0.0},
                "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "attention"},
                "train": {"batch_size": args.micro * 2, "micro_batch_size": args.micro, "max_length": args.max_length,
                          "epochs": 1, "warmup_steps": 1, "save_every": 10_000, "log_every": 1, **CONFIGS[name]},
                "output": {"dir": f"{tmp}/{name}/adapter", "run_dir": f"{tmp}/{name}"},
            }
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(recipe, allow_unicode=True), "utf-8")
            proc = subprocess.run([sys.executable, "-m", "pipelines.train", str(path), "--no-progress"],
                                  cwd=REPO, env=dict(os.environ), capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            tr = json.loads((Path(tmp) / name / "adapter" / "bactrian_adapter.json").read_text())["training"]
            rows.append((name, tr))
            print(f"  {name}: {tr['tokens_per_second']} tok/s", file=sys.stderr, flush=True)
    ref = dict(rows).get("plain", rows[0][1])["tokens_per_second"]
    print(f"\nP5 training throughput: {args.examples} examples of {Path(args.data).name}, base {args.base}, "
          f"micro-batch {args.micro}, max length {args.max_length}, 1 epoch, 1 process")
    print("| config | steps | tokens | padded positions | padding | train s | tokens/s | vs plain | peak memory MB | final train loss |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, tr in rows:
        pad = 1 - tr["tokens"] / max(tr["padded_tokens"], 1)
        print(f"| {name} | {tr['steps']} | {tr['tokens']} | {tr['padded_tokens']} | {pad:.0%} | {tr['train_seconds']} | "
              f"{tr['tokens_per_second']} | {tr['tokens_per_second'] / ref:.2f}x | {tr['peak_memory_mb']} | {tr['train_loss']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
