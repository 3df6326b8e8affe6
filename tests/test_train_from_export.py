"""Export feeds training: `bactrian data run` (a tiny served model translates and answers, over real HTTP) writes
its export, and `bactrian train` reads that folder for one language, a list, or every language present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.cli import main
from tests.run_support import data_overrides, served_tiny_model, write_alpaca
from tests.train_support import REPO, write_recipe


@pytest.fixture(scope="module")
def exported(tiny_base, tmp_path_factory) -> Path:
    """The output folder of the shipped offline data recipe, run on 6 rows x (zh, es) against the tiny model."""
    tmp = tmp_path_factory.mktemp("export")
    out = tmp / "data"
    with served_tiny_model(tiny_base) as (server, _counter, model):
        sets = {**data_overrides(server.base_url, model, tiny_base, write_alpaca(tmp / "alpaca.jsonl"), 6),
                "languages": "[zh, es]"}
        argv = ["data", "run", str(REPO / "recipes/data/offline-small.yaml"), "--output", str(out), "--no-progress", "--yes"]
        for k, v in sets.items():
            argv += ["--set", f"{k}={v}"]
        assert main(argv) == 0
    return out


def _seen(records) -> list[tuple]:
    return sorted((r.language, r.instruction, r.input, r.output) for r in records)


def test_train_reads_the_export_for_one_a_list_or_all_languages(exported, tiny_base, tmp_path):
    from pipelines.train.data import DataError, fingerprint, load_records
    from pipelines.train.recipe import DataSettings

    counts = json.loads((exported / "export" / "counts.json").read_text())
    assert set(counts) == {"zh", "es"} and all(n >= 4 for n in counts.values())

    def load(path: Path, languages, source: str = "pipeline"):
        return load_records(DataSettings(source=source, path=str(path), languages=languages))

    everything = load(exported, "all")
    assert sorted({r.language for r in everything}) == ["es", "zh"] and len(everything) == sum(counts.values())
    # the data run's folder, its export folder and export/disk are the same dataset
    for path in (exported / "export", exported / "export" / "disk"):
        assert _seen(load(path, "all")) == _seen(everything)
    # the Hub-layout copy (parquet per config): `all` is the configs present, not all 52 languages ("config 'af'")
    assert _seen(load(exported / "export" / "hub", "all", source="hub")) == _seen(everything)
    one = load(exported, "es")
    assert {r.language for r in one} == {"es"} and len(one) == counts["es"]
    assert _seen(load(exported, ["zh", "es"])) == _seen(everything)
    with pytest.raises(DataError, match=r"language\(s\) fr not in the export .*present: es, zh"):
        load(exported, ["zh", "fr"])
    with pytest.raises(DataError, match=r"fr not in the dataset folder"):
        load(exported / "export" / "hub", ["fr"], source="hub")

    # a multilingual adapter trained on every language of the export, through the `bactrian train` command
    run = tmp_path / "run"
    recipe = write_recipe(tmp_path / "from-export.yaml", tiny_base, exported, run,
                          train={"max_steps": 2, "batch_size": 4, "micro_batch_size": 2, "save_every": 10})
    assert main(["train", str(recipe), "--no-progress", "--set", "data.source=pipeline", "--set", "data.languages=all"]) == 0
    manifest = json.loads((run / "adapter" / "bactrian_adapter.json").read_text())
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert manifest["languages"] == ["es", "zh"]
    tr = manifest["training"]
    assert tr["steps"] == 2 and tr["train_examples"] + tr["eval_examples"] == sum(counts.values())
    assert tr["data_fingerprint"] == fingerprint(everything)
    assert tr["recipe"]["data"]["source"] == "pipeline"
