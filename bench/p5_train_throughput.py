"""P5: training tokens/s with our batching vs a plain padded, shuffled baseline (same data, same loss).

Each configuration runs `bactrian train` in its own process (so peak memory is its own) on the same
instruction records, same seed, same token-mean response-only loss, and reports what the trainer measured:
non-padding tokens per second of training (model load and eval excluded), the same per CPU-second of the
process (all threads; steadier than wall time on a machine shared with other jobs), and peak memory during
training (GPU: max allocated; CPU: resident high-water mark of the process, reset after the model loaded).
``--repeats R`` runs the configurations in R interleaved rounds and reports the round with the best tokens/s
of each (the least disturbed one), plus the spread.

Configurations
- plain:    shuffled batches padded to their longest example, LM head over every position (the usual setup)
- padded:   the same batches, LM head only where a response token is predicted
- grouped:  ours: length-grouped batches + LM head only on response positions

    BACTRIAN_CACHE=/tmp/bcache python bench/p5_train_throughput.py --examples 48
    python bench/p5_train_throughput.py --examples 32 --configs plain,grouped --repeats 2
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
    ap.add_argument("--repeats", type=int, default=1, help="interleaved rounds; the best of each config is reported")
    ap.add_argument("--json", help="also write every run's training summary here")
    args = ap.parse_args(argv)
    names = args.configs.split(",")
    if unknown := [n for n in names if n not in CONFIGS]:
        print(f"error: unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    if not Path(args.data).is_file():
        print(f"error: {args.data} not found (the shared data lives in ../shared/data)", file=sys.stderr)
        return 2
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        sample_records(Path(args.data), args.examples, data)
        for rnd, name in [(r, n) for r in range(args.repeats) for n in names]:
            recipe = {
                "name": f"p5-{name}", "base": args.base,
                "data": {"source": "jsonl", "path": str(data), "eval_fraction": 0.0},
                "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "attention"},
                "train": {"batch_size": args.micro * 2, "micro_batch_size": args.micro, "max_length": args.max_length,
                          "epochs": 1, "warmup_steps": 1, "save_every": 10_000, "log_every": 1, **CONFIGS[name]},
                "output": {"dir": f"{tmp}/{name}-{rnd}/adapter", "run_dir": f"{tmp}/{name}-{rnd}"},
            }
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(recipe, allow_unicode=True), "utf-8")
            log = Path(tmp) / f"{name}-{rnd}.log"
            with log.open("w") as err:
                proc = subprocess.run([sys.executable, "-m", "pipelines.train", str(path), "--no-progress"],
                                      cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err)
            if proc.returncode:
                print(log.read_text()[-3000:], file=sys.stderr)
                return proc.returncode
            tr = json.loads((Path(tmp) / f"{name}-{rnd}" / "adapter" / "bactrian_adapter.json").read_text())["training"]
            runs[name].append(tr)
            print(f"  round {rnd + 1} {name}: {tr['tokens_per_second']} tok/s, {tr['tokens_per_cpu_second']} tok/CPU-s, "
                  f"peak {tr['peak_memory_mb']} MB", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1), "utf-8")
    best = {n: max(rs, key=lambda tr: tr["tokens_per_second"]) for n, rs in runs.items()}
    best_cpu = {n: max(tr["tokens_per_cpu_second"] for tr in rs) for n, rs in runs.items()}
    ref_name = "plain" if "plain" in best else names[0]
    ref, ref_cpu = best[ref_name]["tokens_per_second"], best_cpu[ref_name]
    print(f"\nP5 training throughput: {args.examples} examples of {Path(args.data).name}, base {args.base}, "
          f"micro-batch {args.micro}, max length {args.max_length}, 1 epoch, 1 process, best of {args.repeats} round(s)")
    print(f"| config | steps | tokens | padded positions | padding | train s | tokens/s | vs {ref_name} | "
          f"tokens/CPU-s | vs {ref_name} (CPU) | tokens/s of all rounds | peak memory MB | final train loss |")
    print("|---" * 13 + "|")
    for name, tr in best.items():
        pad = 1 - tr["tokens"] / max(tr["padded_tokens"], 1)
        spread = " / ".join(str(r["tokens_per_second"]) for r in runs[name])
        peak = max(r["peak_memory_mb"] for r in runs[name])
        print(f"| {name} | {tr['steps']} | {tr['tokens']} | {tr['padded_tokens']} | {pad:.0%} | {tr['train_seconds']} | "
              f"{tr['tokens_per_second']} | {tr['tokens_per_second'] / ref:.2f}x | {best_cpu[name]} | "
              f"{best_cpu[name] / ref_cpu:.2f}x | {spread} | {peak} | {tr['train_loss']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
