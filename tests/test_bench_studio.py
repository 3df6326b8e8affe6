"""`bactrian bench` JSON in the studio: ingested into a real SQLite store, Table 4, per-language charts, the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bactrian.cli import main
from eval_studio.analysis.bench_views import bench_frame, bench_view, benchmark_of, language_figure, table4
from eval_studio.store.bench import list_bench
from pipelines.bench.results import SCHEMA, BenchRun, Record, average_records

VALUES = {  # (adapter, task) -> {language: accuracy}
    (None, "xcopa"): {"et": 0.50, "zh": 0.60},
    (None, "xwinograd"): {"en": 0.70, "zh": 0.40},
    ("demo-multi", "xcopa"): {"et": 0.54, "zh": 0.66},
    ("demo-multi", "xwinograd"): {"en": 0.72, "zh": 0.50},
}


def _bench_file(path: Path, adapter: str | None, run_id: str, scale: float = 1.0,
                created: str = "2026-12-01T10:00:00+00:00") -> Path:
    """A results file in the exact shape `bactrian bench --out` writes (built from pipelines.bench.results)."""
    records = [Record(run_id=run_id, created=created, model="gemma-3-270m", adapter=adapter, task=task, language=lang,
                      metric="acc", value=v * scale, stderr=0.05, n=20, lm_eval_task=f"bactrian_{task}_{lang}")
               for (ad, task), langs in VALUES.items() if ad == adapter for lang, v in langs.items()]
    run = BenchRun(schema=SCHEMA, run_id=run_id, created=created, model="gemma-3-270m", adapter=adapter,
                   adapter_path=None, source="local", limit=20, batch_size=8, lm_eval_version="0.4.x", seconds=1.0,
                   cache=None, records=records, averages=average_records(records))
    return run.write(path)


@pytest.fixture
def studio_db(tmp_path, capsys) -> str:
    db = f"sqlite:///{tmp_path / 'studio.db'}"
    base = _bench_file(tmp_path / "base.json", None, "run-base")
    multi = _bench_file(tmp_path / "multi.json", "demo-multi", "run-multi")
    assert main(["studio", "import-bench", str(base), str(multi), "--db", db]) == 0
    assert main(["studio", "import-bench", str(base), "--db", db]) == 0  # idempotent
    out = capsys.readouterr().out
    assert "4 metrics added" in out and "0 metrics added, 4 already present" in out
    return db


def test_ingested_bench_json_gives_table4_and_language_chart(studio_db):
    rows = list_bench(studio_db)
    assert len(rows) == 8 and {r["language"] for r in rows} == {"et", "zh", "en"}  # averages are not stored
    frame = bench_frame(rows)
    t4 = table4(frame)
    assert list(t4.columns) == ["model", "xcopa", "xwinograd", "languages", "items"]
    assert t4["items"].tolist() == [80, 80]  # 4 language rows x n=20: a --limit run shows as such
    assert t4["model"].tolist() == ["gemma-3-270m", "gemma-3-270m + demo-multi"]
    assert t4.set_index("model").loc["gemma-3-270m", "xcopa"] == pytest.approx(55.0)
    assert t4.set_index("model").loc["gemma-3-270m + demo-multi", "xwinograd"] == pytest.approx(61.0)

    fig = language_figure(frame, "xwinograd")
    assert [bar.name for bar in fig.data] == ["gemma-3-270m", "gemma-3-270m + demo-multi"]
    assert [list(bar.x) for bar in fig.data] == [["en", "zh"], ["en", "zh"]]
    assert [list(bar.y) for bar in fig.data] == [pytest.approx([70.0, 40.0]), pytest.approx([72.0, 50.0])]
    assert len(fig.layout.shapes) == 2  # one dashed average line per variant
    with pytest.raises(ValueError, match="no results for task 'xstorycloze'"):
        language_figure(frame, "xstorycloze")

    status, table, chart, tasks = bench_view(rows, "xwinograd")
    assert tasks == ["xcopa", "xwinograd"] and "2 model variants" in status
    assert chart.layout.title.text.startswith("xwinograd") and table.equals(t4)
    status, table, chart, tasks = bench_view([])
    assert tasks == [] and table.empty and "No benchmark results" in status


def test_newest_run_wins_and_lm_eval_files_line_up(tmp_path, studio_db):
    # a later full run of the base replaces the earlier one in the views; both stay stored
    later = _bench_file(tmp_path / "base-full.json", None, "run-base-full", scale=0.5)
    assert main(["studio", "import-bench", str(later), "--db", studio_db]) == 0
    rows = list_bench(studio_db)
    assert len(rows) == 12
    t4 = table4(bench_frame(rows)).set_index("model")
    assert t4.loc["gemma-3-270m", "xcopa"] == pytest.approx(27.5)

    # lm-eval's own results file (task bactrian_xcopa_et etc.) counts as the same benchmark
    lm = tmp_path / "results_2026.json"
    lm.write_text(json.dumps({"results": {
        "bactrian_xcopa_et": {"alias": "bactrian_xcopa_et", "acc,none": 0.8, "acc_stderr,none": 0.1},
        "bactrian_xcopa_zh": {"alias": "bactrian_xcopa_zh", "acc,none": 0.6, "acc_stderr,none": 0.1},
        "bactrian_xcopa": {"alias": "bactrian_xcopa", "acc,none": 0.7}},
        "config": {"model_args": "pretrained=other-model"}}), "utf-8")
    assert main(["studio", "import-bench", str(lm), "--db", studio_db]) == 0
    t4 = table4(bench_frame(list_bench(studio_db))).set_index("model")
    assert t4.loc["other-model", "xcopa"] == pytest.approx(70.0) and math.isnan(t4.loc["other-model", "xwinograd"])
    assert benchmark_of("bactrian_xstorycloze_hub_zh", "zh") == "xstorycloze" and benchmark_of("xcopa", "et") == "xcopa"


def test_the_newest_run_is_the_one_that_ran_last_not_the_one_ingested_last(tmp_path, studio_db):
    newer = _bench_file(tmp_path / "newer.json", None, "run-b-newer", scale=0.5, created="2026-12-02T09:00:00+00:00")
    older = _bench_file(tmp_path / "older.json", None, "run-z-older", scale=0.9, created="2026-11-30T09:00:00+00:00")
    assert main(["studio", "import-bench", str(newer), str(older), "--db", studio_db]) == 0
    rows = list_bench(studio_db)
    assert {r["created"][:10] for r in rows if r["run_id"] == "run-z-older"} == {"2026-11-30"}
    assert table4(bench_frame(rows)).set_index("model").loc["gemma-3-270m", "xcopa"] == pytest.approx(27.5)


def test_a_database_from_before_item_counts_migrates_and_keeps_its_results(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from eval_studio.store.db import make_engine, open_store
    from eval_studio.store.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO benchmark_runs (run_id, model, adapter, task, language, metric, value, created) "
                          "VALUES ('old', 'gemma-3-270m', '', 'xcopa', 'et', 'acc', 0.5, '2026-11-01 00:00:00')"))
    engine.dispose()
    store = open_store(url)  # migrates to head on open
    try:
        rows = list_bench(store)
    finally:
        store.dispose()
    assert [(r["run_id"], r["value"], r["n"]) for r in rows] == [("old", 0.5, None)]
    t4 = table4(bench_frame(rows))
    assert t4["xcopa"].tolist() == [50.0] and t4["items"].isna().all()  # unknown count, not 0


def test_report_has_the_benchmark_section(tmp_path, studio_db, capsys):
    out = tmp_path / "report.html"
    assert main(["studio", "report", "--db", studio_db, "--out", str(out), "--rounds", "0"]) == 0
    assert "8 benchmark metrics" in capsys.readouterr().out
    text = out.read_text("utf-8")
    assert '<section id="benchmarks">' in text and 'id="bench-table"' in text
    assert 'id="fig-bench-xcopa"' in text and 'id="fig-bench-xwinograd"' in text
    assert "<td>gemma-3-270m + demo-multi</td>" in text and '<td class="num">60.00</td>' in text
    # the paper's Table 4 beside the project's rows, labelled as the paper's numbers
    assert "<td>Bactrian-X-bloom-7B (paper)</td>" in text and '<td class="num">54.78</td>' in text
    assert "<td>paper (arXiv 2305.15011, Table 4)</td>" in text and "<td>this project</td>" in text

    # from files, without a database; and no section at all when there are no results
    battles = tmp_path / "battles.jsonl"
    battles.write_text("", "utf-8")
    assert main(["studio", "report", "--battles", str(battles), "--bench", str(tmp_path / "multi.json"),
                 "--out", str(out), "--rounds", "0"]) == 0
    text = out.read_text("utf-8")
    assert 'id="fig-bench-xcopa"' in text and "<td>gemma-3-270m + demo-multi</td>" in text
    assert "<td>gemma-3-270m</td>" not in text
    assert main(["studio", "report", "--battles", str(battles), "--out", str(out), "--rounds", "0"]) == 0
    assert 'id="benchmarks"' not in out.read_text("utf-8")


def test_leaderboard_tab_builds_with_the_benchmark_section(studio_db):
    import gradio as gr
    import pandas as pd

    from eval_studio.ui.leaderboard_tab import build_leaderboard_tab

    with gr.Blocks() as demo:
        build_leaderboard_tab(pd.DataFrame, load_bench=lambda: list_bench(studio_db))
    ids = {getattr(c, "elem_id", None) for c in demo.blocks.values()}
    assert {"leaderboard-bench-table", "leaderboard-bench-chart", "leaderboard-bench-task"} <= ids


@pytest.mark.browser
def test_leaderboard_shows_ingested_benchmarks_in_the_browser(tmp_path, tiny_base, tiny_adapters):
    from tests.ui_support import RunningStudio, have_chromium, launch_browser, studio_settings

    if not have_chromium():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    from eval_studio.store.bench import ingest_bench_file

    with RunningStudio(studio_settings(tiny_base, tiny_adapters, tmp_path / "studio.db")) as app:
        for path in (_bench_file(tmp_path / "base.json", None, "b"), _bench_file(tmp_path / "multi.json", "demo-multi", "m")):
            ingest_bench_file(app.ctx.db, path)
        with sync_playwright() as p:
            browser = launch_browser(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(app.url)
            page.get_by_role("tab", name="Leaderboard").click()
            page.locator("#leaderboard-refresh").click()
            page.locator("#leaderboard-bench-status").get_by_text("2 model variants on 2 benchmarks").wait_for()
            page.locator("#leaderboard-bench-chart .main-svg").first.wait_for()
            assert "xcopa" in page.locator("#leaderboard-bench-chart").inner_text()
            table = page.locator("#leaderboard-bench-table").inner_text()  # gradio keeps hidden copies of cells
            assert "gemma-3-270m + demo-multi" in table and "xwinograd" in table and "61" in table
            browser.close()


def test_the_app_ingests_configured_results_at_start_and_survives_bad_files(tmp_path, caplog):
    import logging
    from types import SimpleNamespace

    from eval_studio.settings import DEFAULT_BENCH_RESULTS, Settings
    from eval_studio.store.db import open_store
    from eval_studio.ui.context import seed_bench_results

    assert Settings.from_env({}).bench_results == (str(DEFAULT_BENCH_RESULTS),)
    assert Settings.from_env({"BACTRIAN_BENCH_RESULTS": ""}).bench_results == ()
    folder = tmp_path / "results"
    folder.mkdir()
    _bench_file(folder / "base.json", None, "run-base")
    (folder / "broken.json").write_text("{not json", "utf-8")
    single = _bench_file(tmp_path / "multi.json", "demo-multi", "run-multi")
    settings = Settings(bench_results=(str(folder), str(single), str(tmp_path / "missing")))
    store = open_store(f"sqlite:///{tmp_path / 'studio.db'}")
    try:
        with caplog.at_level(logging.WARNING, logger="eval_studio.ui.context"):
            for _ in range(2):  # every start ingests again: a no-op the second time
                seed_bench_results(SimpleNamespace(settings=settings, db=store))
        rows = list_bench(store)
    finally:
        store.dispose()
    assert len(rows) == 8 and {r["run_id"] for r in rows} == {"run-base", "run-multi"}
    assert "broken.json" in caplog.text and "missing" in caplog.text


def test_the_recorded_results_in_the_repo_load_into_the_leaderboard(tmp_path):
    from eval_studio.settings import DEFAULT_BENCH_RESULTS
    from eval_studio.store.bench import ingest_bench_file
    from eval_studio.store.db import open_store

    files = sorted(DEFAULT_BENCH_RESULTS.glob("*.json"))
    assert files, f"no recorded results in {DEFAULT_BENCH_RESULTS}"
    store = open_store(f"sqlite:///{tmp_path / 'studio.db'}")
    try:
        for path in files:
            ingest_bench_file(store, path)
        t4 = table4(bench_frame(list_bench(store))).set_index("model")
    finally:
        store.dispose()
    assert "gemma-3-270m" in t4.index and "gemma-3-270m + demo-multi" in t4.index
    assert (t4["items"] > 0).all() and t4[["xcopa", "xwinograd"]].notna().all().all()
    assert t4["items"].notna().all()  # every recorded file carries its item counts
    # the full test sets, not an older --limit run, are what the Leaderboard shows for these two
    assert t4.loc["gemma-3-270m", "items"] == t4.loc["gemma-3-270m + demo-multi", "items"] == 24571


def test_table4_reference_rows_are_the_papers_and_labelled(studio_db):
    frame = bench_frame(list_bench(studio_db))
    t4 = table4(frame, reference=True).set_index("model")
    own = table4(frame).set_index("model")
    assert (t4.loc[own.index, "source"] == "this project").all()
    assert t4.loc[own.index, "xcopa"].tolist() == own["xcopa"].tolist()
    paper = t4[t4["source"] != "this project"]
    assert len(paper) == 6 and set(paper["source"]) == {"paper (arXiv 2305.15011, Table 4)"}
    assert paper.loc["Bactrian-X-bloom-7B (paper)", ["xcopa", "xstorycloze", "xwinograd", "sentimentx"]].tolist() == \
        [54.78, 58.56, 60.83, 33.28]
    assert paper["languages"].isna().all()  # not measured here
    status, table, _, tasks = bench_view([], reference=True)  # even with no results of our own
    assert tasks == [] and len(table) == 6
