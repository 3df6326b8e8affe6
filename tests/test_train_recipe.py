"""Recipes and bad input: every problem is a clear error before any training starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipelines.train.recipe import RecipeError, load_recipe, presets
from tests.train_support import write_instructions, write_recipe


def test_presets_are_the_papers_settings(tmp_path: Path) -> None:
    p = presets()
    assert p["multilingual"]["lora"]["r"] == 64 and p["monolingual"]["lora"]["r"] == 16
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump({"preset": "multilingual", "data": {"path": "x.jsonl"}}))
    r = load_recipe(f)
    assert r.name == "m"
    assert (r.lora.r, r.lora.alpha, r.lora.dropout) == (64, 16, 0.05)
    assert (r.train.lr, r.train.batch_size, r.train.max_length) == (3e-4, 128, 768)
    mono = load_recipe(f, ["preset=monolingual", "lora.r=8"])
    assert (mono.lora.r, mono.train.max_length) == (8, 1024)


def test_paper_recipes_in_repo_load() -> None:
    root = Path(__file__).resolve().parents[1] / "recipes" / "train"
    files = sorted(root.rglob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        load_recipe(f)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"trian": {"lr": 1e-4}}, "bad.yaml: unknown key(s) trian"),
        ({"train": {"learning_rate": 1e-4}}, "bad.yaml: train: unknown key(s) learning_rate"),
        ({"lora": {"r": 0}}, "lora.r must be positive"),
        ({"lora": {"dropout": 1.5}}, "lora.dropout must be in [0, 1)"),
        ({"train": {"lr": -1}}, "train.lr must be in (0, 1)"),
        ({"train": {"batch_size": 10, "micro_batch_size": 4}}, "must be a multiple of train.micro_batch_size"),
        ({"train": {"max_length": "long"}}, "train.max_length: expected int, got 'long'"),
        ({"train": {"batching": "magic"}}, "train.batching must be one of"),
        ({"data": {"languages": ["zz"]}}, "data.languages: unknown language 'zz'"),
        ({"data": {"source": "ftp"}}, "data.source must be one of"),
    ],
)
def test_bad_recipe_is_a_clear_error(tmp_path: Path, tiny_base: Path, patch: dict, message: str, capsys) -> None:
    from bactrian.cli import main

    run = tmp_path / "run"
    data = write_instructions(tmp_path / "d.jsonl", 12)
    f = write_recipe(tmp_path / "bad.yaml", tiny_base, data, run)
    raw = yaml.safe_load(f.read_text())
    for k, v in patch.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(raw.get(k), dict) else v
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(RecipeError, match=None) as e:
        load_recipe(f)
    assert message in str(e.value)
    assert main(["train", str(f), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not run.exists()  # nothing was started


def test_set_override_is_checked(tmp_path: Path, tiny_base: Path) -> None:
    f = write_recipe(tmp_path / "r.yaml", tiny_base, tmp_path / "d.jsonl", tmp_path / "run")
    assert load_recipe(f, ["train.max_steps=7"]).train.max_steps == 7
    with pytest.raises(RecipeError, match="unknown key"):
        load_recipe(f, ["train.max_step=7"])
    with pytest.raises(RecipeError, match="key=value"):
        load_recipe(f, ["train.max_steps"])


def test_missing_fields_fail_before_training(tmp_path: Path, tiny_base: Path, capsys) -> None:
    from bactrian.cli import main

    data = write_instructions(tmp_path / "d.jsonl", 12)
    lines = data.read_text().splitlines()
    row = json.loads(lines[5])
    del row["output"]
    lines[5] = json.dumps(row)
    data.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    f = write_recipe(tmp_path / "r.yaml", tiny_base, data, run)
    assert main(["train", str(f), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "d.jsonl:6: missing or empty field(s) output" in err
    assert not run.exists()


def test_absent_target_module_fails_before_training(tmp_path: Path, tiny_base: Path, capsys) -> None:
    from bactrian.cli import main

    data = write_instructions(tmp_path / "d.jsonl", 12)
    run = tmp_path / "run"
    f = write_recipe(tmp_path / "r.yaml", tiny_base, data, run, lora={"target_modules": ["query_key_value"]})
    assert main(["train", str(f), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "query_key_value not found in 'llama' model" in err and "q_proj" in err
    assert not (run / "checkpoints").exists()
    # the paper's BLOOM choice on a LLaMA-type model is the same mistake, named by keyword
    f2 = write_recipe(tmp_path / "r2.yaml", tiny_base, data, run, lora={"target_modules": "paper"})
    assert main(["train", str(f2), "--no-progress", "--set", "train.max_steps=1"]) == 0  # llama: q_proj, v_proj
