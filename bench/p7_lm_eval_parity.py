"""P7: `bactrian bench` gives the same per-language accuracy as the `lm_eval` command line on the same task files.

For the embedded Gemma base, with and without an adapter, it runs
  1. ``bactrian bench --model gemma-3-270m [--adapter A] --tasks ... --limit N --no-cache``
     (bactrian loads the model and hands the loaded object to ContinuationScoringHFLM, its HFLM subclass), and
  2. ``lm_eval run --model hf --model_args pretrained=<cached folder>,dtype=float32[,peft=A]
     --include_path pipelines/bench/tasks --tasks <the same lm-eval task names> --metadata {"data_root": ...}``
     (lm-eval loads everything itself),
and prints one row per task and language with both accuracies; exit code 1 if any differ.

Without ``--adapter`` it uses ``bactrian/data/adapters/gemma-3-270m/demo-multi`` when present, otherwise it creates a
small LoRA for gemma-3-270m with random (non-zero) A and B matrices, so the adapter really changes the scores.

    BACTRIAN_CACHE=/tmp/bcache python bench/p7_lm_eval_parity.py --limit 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "benchmarks"
BIN = Path(sys.executable).parent


def random_adapter(folder: Path, seed: int = 0) -> Path:
    """A LoRA for gemma-3-270m with random A and B (peft's init_lora_weights=False), saved as a peft folder."""
    if (folder / "adapter_config.json").is_file():
        return folder
    import torch
    from peft import LoraConfig, get_peft_model

    from bactrian.models import load_base

    base = load_base("gemma-3-270m")
    torch.manual_seed(seed)
    model = get_peft_model(base.model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(folder)
    manifest = {"name": "p7-random-lora", "base_model": "gemma-3-270m", "languages": [], "description": "random LoRA for P7"}
    (folder / "bactrian_adapter.json").write_text(json.dumps(manifest), "utf-8")
    return folder


def run_bactrian(args, adapter: Path | None, out: Path) -> dict[str, float]:
    cmd = [str(BIN / "bactrian"), "bench", "--model", "gemma-3-270m", "--tasks", args.tasks, "--languages", args.languages,
           "--limit", str(args.limit), "--batch-size", str(args.batch_size), "--data-root", str(args.data_root),
           "--no-cache", "--out", str(out), "--force"]
    if adapter:
        cmd += ["--adapter", str(adapter)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = json.loads(out.read_text("utf-8"))
    return {r["lm_eval_task"]: r["value"] for r in data["records"]}


def run_lm_eval(args, adapter: Path | None, task_names: list[str], out_dir: Path) -> dict[str, float]:
    from bactrian.models import materialize

    model_args = f"pretrained={materialize('gemma-3-270m')},dtype=float32"
    if adapter:
        model_args += f",peft={adapter}"
    cmd = [str(BIN / "lm_eval"), "run", "--model", "hf", "--model_args", model_args,
           "--include_path", str(ROOT / "pipelines" / "bench" / "tasks"), "--tasks", ",".join(task_names),
           "--metadata", json.dumps({"data_root": str(Path(args.data_root).resolve())}),
           "--limit", str(args.limit), "--batch_size", str(args.batch_size), "--device", "cpu", "--output_path", str(out_dir)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = sorted(out_dir.rglob("results_*.json"))[-1]
    data = json.loads(results.read_text("utf-8"))["results"]
    return {t: data[t]["acc,none"] for t in task_names}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="xcopa,xwinograd")
    ap.add_argument("--languages", default="et,zh,en,ru")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--data-root", default=str(SHARED))
    ap.add_argument("--adapter", help="adapter folder (default: demo-multi, else a random LoRA)")
    args = ap.parse_args()
    if not Path(args.data_root).is_dir():
        print(f"error: benchmark data not found at {args.data_root}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    demo = ROOT / "bactrian" / "data" / "adapters" / "gemma-3-270m" / "demo-multi"
    work = Path(tempfile.mkdtemp(prefix="p7-"))
    adapter = Path(args.adapter) if args.adapter else demo if demo.is_dir() else random_adapter(work / "random-lora")

    rows, ok = [], True
    for label, ad in (("gemma-3-270m", None), (f"gemma-3-270m + {ad_name(adapter)}", adapter)):
        tag = "adapter" if ad else "base"
        ours = run_bactrian(args, ad, work / f"bench-{tag}.json")
        theirs = run_lm_eval(args, ad, list(ours), work / f"lm_eval-{tag}")
        for task, value in ours.items():
            same = value == theirs[task]
            ok &= same
            rows.append((label, task, value, theirs[task], same))
    print(f"P7 lm-eval parity (limit {args.limit} per language, batch size {args.batch_size})")
    print("| model | lm-eval task | bactrian bench acc | lm_eval CLI acc | identical |")
    print("|---|---|---|---|---|")
    for label, task, a, b, same in rows:
        print(f"| {label} | {task} | {a:.4f} | {b:.4f} | {'yes' if same else 'NO'} |")
    print(f"adapter: {adapter}")
    return 0 if ok else 1


def ad_name(path: Path) -> str:
    manifest = path / "bactrian_adapter.json"
    return json.loads(manifest.read_text("utf-8")).get("name", path.name) if manifest.is_file() else path.name


if __name__ == "__main__":
    sys.exit(main())
