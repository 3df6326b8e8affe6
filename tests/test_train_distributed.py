"""Two CPU processes (torchrun -> accelerate MULTI_CPU over gloo) through the same entry point as on GPUs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.train_support import lora_weights, run_train, write_instructions, write_recipe


def test_two_processes_match_one_and_load_with_plain_peft(tmp_path: Path, tiny_base: Path) -> None:
    data = write_instructions(tmp_path / "d.jsonl", 48)
    common = dict(train={"max_steps": 4, "save_every": 100})
    two = write_recipe(tmp_path / "two.yaml", tiny_base, data, tmp_path / "run2", **common)
    one = write_recipe(tmp_path / "one.yaml", tiny_base, data, tmp_path / "run1", **common)

    p2 = run_train(str(two), processes=2)
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert "2 process(es) x 2 accumulation x 2 = batch 8" in p2.stderr
    manifest = json.loads((tmp_path / "run2" / "adapter" / "bactrian_adapter.json").read_text())
    tr = manifest["training"]
    assert tr["processes"] == 2 and tr["steps"] == 4
    digests = tr["process_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks hold identical adapter weights

    # the saved folder loads with transformers + peft alone, and is what the ranks held
    from peft import PeftModel, get_peft_model_state_dict  # noqa: F401  (plain peft)
    from transformers import AutoModelForCausalLM

    w2 = lora_weights(tmp_path / "run2" / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "run2" / "adapter"))
    from pipelines.train.trainer import adapter_digest

    assert adapter_digest(loaded) == digests[0]
    assert any(float(v.abs().sum()) > 0 for k, v in w2.items() if "lora_B" in k)  # it trained
    for f in [tmp_path / "run2" / "adapter", *(tmp_path / "run2" / "adapter").iterdir()]:
        assert f.stat().st_mode & 0o044 == 0o044 & ~_umask(), f  # readable by others, as the umask allows

    # One process with 4 accumulation steps optimises the same token-mean loss on the same batches.
    p1 = run_train(str(one))
    assert p1.returncode == 0, p1.stderr[-3000:]
    w1 = lora_weights(tmp_path / "run1" / "adapter")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], atol=2e-4, rtol=1e-3)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
