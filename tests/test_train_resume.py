"""kill -9 in the middle of training, then --resume: same final step count, same weights as an unbroken run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import torch

from tests.train_support import REPO, env, lora_weights, run_train, train_cmd, write_instructions, write_recipe


def test_kill_and_resume(tmp_path: Path, tiny_base: Path) -> None:
    data = write_instructions(tmp_path / "d.jsonl", 64)
    train = {"max_steps": 120, "save_every": 3, "micro_batch_size": 2, "batch_size": 4}
    lora = {"dropout": 0.1}  # dropout draws random numbers: resuming must restore the RNG too
    broken = write_recipe(tmp_path / "broken.yaml", tiny_base, data, tmp_path / "broken", train=train, lora=lora)
    whole = write_recipe(tmp_path / "whole.yaml", tiny_base, data, tmp_path / "whole", train=train, lora=lora)

    proc = subprocess.Popen(train_cmd(str(broken)), cwd=REPO, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    ckpts = tmp_path / "broken" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if any(ckpts.glob("step-*/trainer_state.json")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (tmp_path / "broken" / "adapter").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in ckpts.glob("step-*") if (p / "trainer_state.json").is_file())
    assert 0 < killed_at < 120

    resumed = run_train(str(broken), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {ckpts / f'step-{killed_at}'}" in resumed.stderr or "resumed from" in resumed.stderr
    step_line = [line for line in resumed.stderr.splitlines() if "resumed from" in line][0]
    assert f"(step {killed_at} of 120)" in step_line or "of 120)" in step_line
    manifest = json.loads((tmp_path / "broken" / "adapter" / "bactrian_adapter.json").read_text())
    assert manifest["training"]["steps"] == 120
    assert [p.name for p in sorted(ckpts.glob(".tmp-*"))] == []  # no half-written checkpoint left behind

    full = run_train(str(whole))
    assert full.returncode == 0, full.stderr[-3000:]
    a, b = lora_weights(tmp_path / "broken" / "adapter"), lora_weights(tmp_path / "whole" / "adapter")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
