"""The run recipe (`bactrian run`): sections resolved from the data and training recipes, the run's own paths,
overrides and refusals; and the paper-scale dry run, whose numbers follow from the data recipe's own estimate."""

from __future__ import annotations

import pytest

from tests.run_support import REPO

OFFLINE = REPO / "recipes/run/offline-tiny.yaml"
PAPER = REPO / "recipes/run/paper-full.yaml"


def test_offline_recipe_resolves_into_the_run_folder(tmp_path):
    from pipelines.data.recipe import RecipeError
    from pipelines.run.recipe import load_run

    run = load_run(OFFLINE, {"workdir": str(tmp_path / "w"), "data.respond.model": "m1", "train.train.max_steps": 3,
                             "bench.limit": 5})
    assert run.data.out == tmp_path / "w" / "data" and run.data.respond.model == "m1"
    assert run.data.sources[0].limit == 8 and run.data.languages == ("zh", "es")  # the recipe's own `set`
    t = run.train
    assert (t.data.source, t.data.path, t.data.languages) == ("pipeline", str(tmp_path / "w/data/export"), "all")
    assert t.adapter_dir == tmp_path / "w/train/adapter" and t.run_dir == tmp_path / "w/train"
    assert t.train.max_steps == 3 and t.lora.r == 8 and t.lora.alpha == 16  # preset + recipe + override
    assert run.bench.limit == 5 and run.bench.compare_base and run.studio.db is None and run.push is None

    paper = load_run(PAPER, {"workdir": str(tmp_path / "p")})
    assert paper.train.name == "bactrian-x-bloom-7b1-lora" and paper.train.base == "bigscience/bloom-7b1"
    assert paper.train.data.source == "pipeline" and paper.train.output.dir == str(tmp_path / "p/train/adapter")
    assert paper.estimate.params == pytest.approx(7.07e9)

    for overrides, message in [
        ({"datum.x": 1}, "unknown section 'datum'"),
        ({"data.export.push_to_hub": "org/x"}, "use push.dataset"),
        ({"bench": None}, "studio: importing results needs a bench section"),
        ({"train.train.lr": 2.0}, r"train: train.lr must be in \(0, 1\)"),
        ({"bench.colour": "red"}, "bench: unknown key"),
    ]:
        with pytest.raises(RecipeError, match=message):
            load_run(OFFLINE, {"workdir": str(tmp_path / "w"), **overrides})


@pytest.mark.shared
def test_paper_dry_run_prints_every_stage_with_its_cost(shared_data, tmp_path):
    from pipelines.data.ledger import estimate
    from pipelines.data.sources import load_sources
    from pipelines.run.recipe import load_run
    from pipelines.run.runner import plan

    alpaca = shared_data / "alpaca" / "alpaca_data_en_52k.jsonl"
    run = load_run(PAPER, {"workdir": str(tmp_path / "p"), "data.sources.0.path": str(alpaca)})
    text = plan(run)
    assert not (tmp_path / "p").exists()  # nothing written
    rows = load_sources(run.data.sources[:1]).rows
    e = estimate(rows, run.data.work_languages, "gpt-3.5-turbo", "google", 1024)
    assert len(rows) == 52_002 and f"{len(rows):,} rows x 51 languages: {len(rows) * 51:,} (row, language) pairs" in text
    assert f"{e.calls:,} chat calls to gpt-3.5-turbo" in text and f"${e.chat_usd:,.2f} online" in text
    assert f"{e.translate_chars:,} characters, ${e.translate_usd:,.2f}" in text
    assert f"total still to spend on paid APIs: ${e.translate_usd + e.chat_usd:,.2f}" in text
    # training: (examples - 2,000 held out) // 128 per epoch x 5 epochs
    steps = (e.calls - 2000) // 128 * 5
    assert f"batch 128 -> {steps:,} steps" in text and "A100 GPU-hours at 35% of 312 TFLOP/s" in text
    assert "xcopa,xstorycloze,xwinograd (full test sets) x 2 variant(s) (adapter, base)" in text
    assert "source dolly (databricks/databricks-dolly-15k) could not be loaded here and is NOT counted" in text
    for stage in ("translate", "respond", "filter", "report", "export", "train", "bench", "studio"):
        assert f"- {stage}: to run" in text
    assert "- push: off" in text
