"""`bactrian run` on the shipped offline recipe (a tiny served model, a 6-row slice, SentimentX from a small file):
from nothing to the studio's leaderboard, killed with SIGKILL during respond and again during training, resumed
each time without redoing finished stages or repeating a paid call; then the Hub push against a local stand-in."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bactrian.cli import main
from tests.helpers import LiveServer
from tests.run_support import REPO, data_overrides, served_tiny_model, stub_hub_app, write_alpaca, write_sentiment

RECIPE = str(REPO / "recipes/run/offline-tiny.yaml")
DATA_STAGES = ("translate", "respond", "filter", "report", "export")


def _argv(sets: dict) -> list[str]:
    out = []
    for k, v in sets.items():
        out += ["--set", f"{k}={json.dumps(v) if isinstance(v, (list, type(None))) else v}"]
    return out


def _cmd(sets: dict) -> list[str]:
    return [sys.executable, "-m", "bactrian.cli", "run", RECIPE, "--yes", "--no-progress", *_argv(sets)]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "BACTRIAN_HOME": str(tmp / "home"), **extra}


def _state(work: Path) -> dict:
    f = work / "run_state.json"
    return json.loads(f.read_text())["stages"] if f.is_file() else {}


def _stored_responses(work: Path) -> int:
    db = work / "data" / "work.db"
    if not db.is_file():
        return 0
    with sqlite3.connect(db, timeout=10) as c:
        return c.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


@pytest.mark.timeout(900)
def test_run_from_nothing_to_leaderboard_survives_kill_9(tiny_base, tmp_path, capsys):
    from eval_studio.analysis.bench_views import bench_frame
    from eval_studio.store.bench import list_bench

    work, db = tmp_path / "work", f"sqlite:///{tmp_path / 'studio.db'}"
    alpaca = write_alpaca(tmp_path / "alpaca.jsonl", 6)
    with served_tiny_model(tiny_base) as (server, counter, model):
        sets = {f"data.{k}": v for k, v in data_overrides(server.base_url, model, tiny_base, alpaca, 6).items()}
        sets.update({
            "workdir": str(work), "train.base": str(tiny_base), "train.train.max_steps": 12,
            "train.train.save_every": 2, "train.train.log_every": 1, "train.train.max_length": 96,
            "bench.tasks": "sentimentx", "bench.languages": None, "bench.data_root": None, "bench.limit": None,
            "bench.sentimentx_file": str(write_sentiment(tmp_path / "sentiment.jsonl")), "bench.batch_size": 4,
            "studio.db": db})

        # the plan before anything exists: every stage to run, 12 calls (6 rows x zh, es) to the served model
        assert main(["run", RECIPE, "--dry-run", *_argv(sets)]) == 0
        plan = capsys.readouterr().out
        assert "- translate: to run\n" in plan and "12 (row, language) pairs to translate" in plan
        assert "12 chat calls to" in plan and "- studio: to run" in plan and "- push: off" in plan
        assert not work.exists()  # a dry run writes nothing

        # 1. kill -9 during respond, at the 4th call, once the 3 answered ones are committed (the only calls a
        #    kill can make us pay twice are those answered but not yet committed: in flight at that instant)
        proc = subprocess.Popen(_cmd(sets), env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def kill_at_fourth(n: int) -> bool:
            if n != 4:
                return False
            deadline = time.time() + 30
            while _stored_responses(work) < 3 and time.time() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True

        counter.before_respond = kill_at_fourth
        log1, _ = proc.communicate(timeout=300)
        counter.before_respond = None
        assert proc.returncode == -signal.SIGKILL, log1[-3000:]
        assert set(_state(work)) == {"translate"} and _stored_responses(work) == 3
        translate_calls = list(counter.answered["translate"])
        assert len(translate_calls) == len(set(translate_calls)) == 18  # 6 instructions + 3 inputs, x 2 languages

        # 2. rerun; kill -9 during training, after the checkpoint of step 2
        proc = subprocess.Popen(_cmd(sets), env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log2 = []
        for line in proc.stdout:
            log2.append(line)
            if re.search(r"\] step 3/12 loss", line):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
        log2 = "".join(log2) + proc.stdout.read()
        assert proc.returncode == -signal.SIGKILL, log2[-3000:]
        assert "[run] translate: current, skipped" in log2 and "[run] respond: running" in log2
        assert set(_state(work)) == set(DATA_STAGES)
        assert (work / "train" / "checkpoints" / "step-2").is_dir() and not (work / "train" / "adapter").exists()
        assert counter.answered["translate"] == translate_calls  # nothing translated twice
        respond_calls = list(counter.answered["respond"])
        assert len(respond_calls) == len(set(respond_calls)) == 12  # every answer paid once, the refused 4th included

        # 3. rerun to the end: the data stages are skipped, training resumes from its checkpoint, no call is sent
        done = subprocess.run(_cmd(sets), env=_env(tmp_path), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["stages"] == {**dict.fromkeys(DATA_STAGES, "skipped"), "train": "ran", "bench": "ran",
                                    "studio": "ran", "push": "disabled"}
        assert "resumed from" in done.stderr and "step-2 (step 2 of 12)" in done.stderr
        assert counter.answered == {"translate": translate_calls, "respond": respond_calls}

    manifest = json.loads((work / "train" / "adapter" / "bactrian_adapter.json").read_text())
    assert manifest["name"] == "offline-tiny-multi" and manifest["training"]["steps"] == 12
    assert manifest["languages"] == ["es", "zh"]
    # the leaderboard: the adapter's benchmark rows and the bare base's, from the studio's database
    rows = list_bench(db)
    variants = {(r["adapter"], r["language"]) for r in rows if r["task"] == "sentimentx"}
    assert variants == {(a, lang) for a in ("offline-tiny-multi", "") for lang in ("es", "zh")}
    assert all(r["n"] == 3 and 0 <= r["value"] <= 1 for r in rows)
    frame = bench_frame(rows)  # what the Leaderboard tab shows: one variant for the adapter, one for the base
    assert sorted(set(frame["variant"])) == sorted({f"{Path(tiny_base).resolve()} + offline-tiny-multi",
                                                    str(Path(tiny_base).resolve())})

    # 4. the Hub push, added afterwards: only that stage runs, uploading to a local stand-in of the Hub's API
    uploads, calls = {}, []
    with LiveServer(stub_hub_app(uploads, calls)) as hub:
        endpoint = hub.base_url.removesuffix("/v1")
        pushed = subprocess.run(
            _cmd({**sets, "push.dataset": "org/tiny-data", "push.adapter": "org/tiny-adapter"}), capture_output=True,
            text=True, timeout=300, env=_env(tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint, HF_TOKEN="hf_test_secret"))
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    stages = json.loads(pushed.stdout.strip().splitlines()[-1])["stages"]
    assert stages == {**{s: "skipped" for s in (*DATA_STAGES, "train", "bench", "studio")}, "push": "ran"}
    assert calls and all(auth == "Bearer hf_test_secret" for _, _, auth in calls)
    hub_dir, adapter_dir = work / "data" / "export" / "hub", work / "train" / "adapter"
    assert uploads["dataset/org/tiny-data"] == {str(f.relative_to(hub_dir)): f.read_bytes()
                                                 for f in hub_dir.rglob("*") if f.is_file()}
    assert set(uploads["dataset/org/tiny-data"]) == {"README.md", "es/train.parquet", "zh/train.parquet"}
    assert uploads["model/org/tiny-adapter"]["adapter_model.safetensors"] == (adapter_dir / "adapter_model.safetensors").read_bytes()
    assert "bactrian_adapter.json" in uploads["model/org/tiny-adapter"]
    assert not [f for f in work.rglob("*") if f.is_file() and b"hf_test_secret" in f.read_bytes()]  # never written

    # a plan of the finished run: every configured stage is current
    assert main(["run", RECIPE, "--dry-run", *_argv(sets)]) == 0
    plan = capsys.readouterr().out
    assert all(f"- {s}: current, will be skipped" in plan for s in (*DATA_STAGES, "train", "bench", "studio"))
    assert "total still to spend on paid APIs: $0.00" in plan
