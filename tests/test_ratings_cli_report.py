"""`studio ratings | agreement | report` on a JSONL file and a real SQLite store; the HTML report; the tab."""

from __future__ import annotations

import argparse
import json
import re

import pandas as pd
import pytest

from eval_studio.analysis.plots import EXTRA_FIGURE_IDS, FIGURE_IDS
from eval_studio.cli.ratings import register
from tests.synthetic import synthetic_battles

STRENGTHS = {"bx-zh": 1100.0, "bx-es": 1000.0, "base": 900.0}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bactrian studio")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def battles() -> pd.DataFrame:
    return synthetic_battles(STRENGTHS, 1500, seed=9, judge_share=0.4, questions=24)


@pytest.fixture
def jsonl(tmp_path, battles):
    path = tmp_path / "battles.jsonl"
    battles.assign(tstamp=battles["tstamp"].astype(str)).to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def test_ratings_json_overall_and_by_language(jsonl, capsys):
    assert run(["ratings", "--battles", str(jsonl), "--json", "--rounds", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["battles"] == 1500 and out["by"] is None
    assert [r["model"] for r in out["ratings"]] == ["bx-zh", "bx-es", "base"]
    assert {"rating", "lower", "upper", "rank", "battles"} <= set(out["ratings"][0])
    assert run(["ratings", "--battles", str(jsonl), "--by", "language", "--json", "--rounds", "5", "--group", "G2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["ratings"]) == {"ar", "id", "zh"}
    assert run(["ratings", "--battles", str(jsonl), "--by", "category", "--method", "elo", "--rounds", "3"]) == 0
    assert "bx-zh" in capsys.readouterr().out


def test_agreement_json_keys(jsonl, capsys):
    assert run(["agreement", "--battles", str(jsonl), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # strict JSON: NaN became null
    assert set(out["cohen_kappa"]) == {"ann1|ann2", "ann1|ann3", "ann2|ann3"}
    assert {"kappa", "raters_per_item", "n_items"} <= set(out["fleiss_kappa"])
    assert {"with_ties", "without_ties"} <= set(out["human_judge_agreement"])
    assert out["position_consistency"]["n_pairs"] > 0
    assert run(["agreement", "--battles", str(jsonl)]) == 0
    assert "Fleiss' kappa" in capsys.readouterr().out


def test_bad_input_errors(tmp_path, jsonl, capsys):
    missing = tmp_path / "nope.jsonl"
    assert run(["ratings", "--battles", str(missing)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert run(["ratings", "--battles", str(jsonl), "--since", "not a date"]) == 2
    assert "error:" in capsys.readouterr().err
    assert run(["ratings", "--battles", str(jsonl), "--rounds", "-1"]) == 2


def test_report_has_every_chart_offline(tmp_path, jsonl, capsys):
    out = tmp_path / "sub" / "report.html"
    assert run(["report", "--battles", str(jsonl), "--out", str(out), "--rounds", "10", "--language", "zh,es"]) == 0
    text = out.read_text(encoding="utf-8")
    for name in FIGURE_IDS:
        assert f'id="fig-{name}"' in text
        assert re.search(rf'Plotly\.newPlot\(\s*"fig-{name}"', text), name
    assert 'id="ratings-table"' in text and "language=zh,es" in text
    assert "<script src=" not in text  # plotly.js inlined: opens offline
    assert len(text) > 3_000_000


def test_report_on_no_battles(tmp_path):
    from eval_studio.analysis.report import write_report

    empty = synthetic_battles(STRENGTHS, 10, seed=1).iloc[:0]
    text = write_report(empty, tmp_path / "r.html").read_text(encoding="utf-8")
    assert all(f'id="fig-{n}"' in text for n in FIGURE_IDS) and "No battles match" in text


def test_ratings_from_a_real_sqlite_store(tmp_path, capsys):
    pytest.importorskip("eval_studio.store.battles")
    from eval_studio.store.db import open_store
    from eval_studio.store.repo import record_battle, record_vote

    url = f"sqlite:///{tmp_path / 'studio.db'}"
    engine = open_store(url)
    table = synthetic_battles(STRENGTHS, 120, seed=3, tie_rate=0.1)
    for r in table.itertuples():
        bid = record_battle(engine, question=f"question {r.question_id}", answer_a="x" * int(r.len_a),
                            answer_b="y" * int(r.len_b), model_a=r.model_a, model_b=r.model_b, mode="battle",
                            language=r.language, category=r.category, question_id=r.question_id)
        record_vote(engine, bid, r.winner, r.annotator)
    engine.dispose()
    assert run(["ratings", "--db", url, "--json", "--rounds", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["battles"] == 120
    assert sum(r["battles"] for r in out["ratings"]) == 2 * int((table["model_a"] != table["model_b"]).sum())
    assert run(["agreement", "--db", url, "--json"]) == 0
    assert "cohen_kappa" in json.loads(capsys.readouterr().out)
    assert run(["ratings", "--db", f"sqlite:///{tmp_path / 'missing' / 'x.db'}"]) == 2  # no schema there
    assert capsys.readouterr().err.startswith("error:")


def test_leaderboard_tab_builds_and_view_filters(battles):
    import gradio as gr

    from eval_studio.ui.leaderboard_tab import build_leaderboard_tab, leaderboard_view

    with gr.Blocks() as demo, gr.Tab("Leaderboard"):
        build_leaderboard_tab(lambda: battles)
    plots = [b for b in demo.blocks.values() if isinstance(b, gr.Plot)]
    assert sorted(p.elem_id for p in plots) == sorted(f"leaderboard-{n}" for n in FIGURE_IDS)
    status, table, figs = leaderboard_view(battles, group="G1", source="human", rounds=10)
    assert status.startswith(f"{int(((battles['source'] == 'human') & battles['language'].isin(['es', 'fr', 'pt'])).sum())} of 1500")
    assert set(figs) == set(FIGURE_IDS + EXTRA_FIGURE_IDS) and len(table) == 3
    with pytest.raises(ValueError):
        leaderboard_view(battles, since="yesterday-ish")
