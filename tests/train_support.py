"""Helpers for the training tests: small instruction files, recipes, and `bactrian train` as a real process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LANGS = ("en", "zh", "es")
WORDS = {"en": "the river runs north", "zh": "河水向北流去", "es": "el río corre al norte"}


def write_instructions(path: Path, n: int = 48, seed: int = 0) -> Path:
    """``n`` records of varied length in three languages (so length grouping has something to group)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            lang = LANGS[i % len(LANGS)]
            row = {
                "id": f"t{i}",
                "language": lang,
                "instruction": f"{WORDS[lang]} {i}?",
                "input": "" if i % 2 else WORDS[lang] * rng.randint(0, 3),
                "output": " ".join([WORDS[lang]] * rng.randint(1, 12)),
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_recipe(path: Path, base: Path, data: Path, run: Path, **sections: dict) -> Path:
    recipe = {
        "name": path.stem,
        "base": str(base),
        "data": {"source": "jsonl", "path": str(data), "eval_fraction": 0.1},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "attention"},
        "train": {"batch_size": 8, "micro_batch_size": 2, "max_length": 96, "epochs": 1, "warmup_steps": 1,
                  "lr": 0.01, "log_every": 1, "save_every": 2},
        "output": {"dir": str(run / "adapter"), "run_dir": str(run)},
    }
    for key, values in sections.items():
        recipe.setdefault(key, {}).update(values)
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), "utf-8")
    return path


def env() -> dict[str, str]:
    # One thread per process: on small CPUs OpenMP's hand-offs cost more than tiny matmuls gain.
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def train_cmd(*args: str, processes: int = 1) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "bactrian.cli", "train", *args, "--no-progress"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                "--master_port", str(_free_port())]
    return [*torchrun, "-m", "bactrian.cli", "train", *args, "--no-progress"]


def run_train(*args: str, processes: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(train_cmd(*args, processes=processes), cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def lora_weights(folder: Path) -> dict:
    """The adapter loaded with plain transformers + peft (nothing of ours) as name -> tensor."""
    from peft import PeftModel, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    cfg = json.loads((folder / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"])
    model = PeftModel.from_pretrained(base, str(folder))
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
