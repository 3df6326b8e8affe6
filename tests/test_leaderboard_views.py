"""The Leaderboard's analysis views (issue 17, points 4, 6, 7), built as the tab builds them, from a real SQLite
store: arena battles voted on by people and judged in both orders (``bactrian studio judge --source battles``,
Bactrian-X 0-10 prompt, scripted judge over HTTP) give the paper's tables, human-judge agreement per language and
style control; stored benchmark results give Table 4 with the paper's own rows labelled as the paper's."""

from __future__ import annotations

from collections import Counter, defaultdict

import pandas as pd
import pytest

from bactrian.cli import main
from eval_studio.analysis.bench_views import OWN_SOURCE, paper_reference
from eval_studio.analysis.plots import FIGURE_IDS, PAPER_VIEW_DIGITS
from eval_studio.store.battles import load_battles
from eval_studio.store.bench import list_bench
from eval_studio.store.db import open_store
from eval_studio.store.repo import record_battle, record_vote
from eval_studio.ui.leaderboard_tab import bench_updates, build_leaderboard_tab, leaderboard_data
from tests.test_bench_studio import _bench_file
from tests.trust_support import ScriptedJudge

# (language, category, which answer is GOOD, the person's vote): the scripted judge scores GOOD 8, the other 3
BATTLES = [("es", "generic", "a", "a"), ("es", "knowledge", "b", "b"), ("es", "generic", "a", "b"),
           ("zh", "generic", "a", "a"), ("zh", "knowledge", "b", "a"), ("zh", "generic", "b", "tie")]
GOOD = "GOOD answer {i}, in detail:\n- first point\n- second point\n\n**In short:** yes."  # longer, with markdown


def _answer(i: int, side: str, good: str) -> str:
    return GOOD.format(i=i) if side == good else f"answer {side}{i}"


@pytest.fixture
def judged_store(tmp_path, capsys) -> str:
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    db = open_store(url)
    for i, (lang, cat, good, vote) in enumerate(BATTLES):
        bid = record_battle(db, question=f"question {i}?", answer_a=_answer(i, "a", good),
                            answer_b=_answer(i, "b", good), model_a="alpha", model_b="beta", mode="battle",
                            language=lang, category=cat)
        record_vote(db, bid, vote, f"person{i % 2}")
    db.dispose()
    with ScriptedJudge() as judge:
        assert main(["studio", "judge", "--source", "battles", "--base-url", judge.base_url, "--model", "fair",
                     "--prompt", "bactrian-x", "--db", url]) == 0
        assert len(judge.requests) == 2 * len(BATTLES)  # both orders of every voted battle
    capsys.readouterr()
    return url


def _expected() -> tuple[dict, Counter]:
    """The independent count: judge scores per (language, model) and win / tie / loss of alpha per language, over
    the people's votes and the judge's verdicts (the judge picks the GOOD side)."""
    scores: dict[tuple[str, str], list[int]] = defaultdict(list)
    wins: Counter = Counter()
    for lang, _cat, good, vote in BATTLES:
        scores[(lang, "alpha")].append(8 if good == "a" else 3)
        scores[(lang, "beta")].append(8 if good == "b" else 3)
        for outcome in (vote, good):
            wins[(lang, {"a": "win", "b": "loss", "tie": "tie"}[outcome])] += 1
    return {k: sum(v) / len(v) for k, v in scores.items()}, wins


def test_leaderboard_data_has_the_paper_views_agreement_and_style_control(judged_store):
    df = load_battles(judged_store)
    data = leaderboard_data(df, kinds=None, rounds=0, calls=load_battles(judged_store, source="judge",
                                                                          merge_orders=False))
    assert list(data.paper) == list(PAPER_VIEW_DIGITS)
    assert set(data.figures) == set(FIGURE_IDS) and "style_control" in FIGURE_IDS
    mean, wins = _expected()

    by_lang = data.paper["scores_by_language"].set_index("language")
    assert set(by_lang.index) == {"es", "zh"} and {"alpha", "beta"} <= set(by_lang.columns)
    for (lang, model), value in mean.items():
        assert by_lang.loc[lang, model] == pytest.approx(value, abs=0.005)  # shown to 2 digits
    assert set(data.paper["scores_by_category"]["category"]) == {"generic", "knowledge"}
    averages = data.paper["score_averages"].set_index("model")
    assert averages.loc["alpha", "n"] == averages.loc["beta", "n"] == len(BATTLES)

    got = data.paper["wins_by_language"]
    assert set(got["language"]) == {"es", "zh"} and got["n"].sum() == 2 * len(BATTLES)
    for r in got[got["model"] == "alpha"].itertuples(index=False):
        assert (r.win, r.tie, r.loss) == tuple(wins[(r.language, k)] for k in ("win", "tie", "loss"))

    agree = data.paper["agreement_by_language"].set_index("language")
    assert set(agree.index) == {"es", "zh"} and set(agree["judge"]) == {"fair"}
    for lang in ("es", "zh"):  # agreement = the person's vote equals the judge's pick (a tie disagrees)
        mine = [(good, vote) for lg, _c, good, vote in BATTLES if lg == lang]
        assert agree.loc[lang, "items"] == len(mine)
        assert agree.loc[lang, "with_ties"] == pytest.approx(sum(g == v for g, v in mine) / len(mine), abs=5e-4)

    style = data.style
    assert set(style["model"]) == {"alpha", "beta"} and {"rating", "raw_rating", "delta"} <= set(style.columns)
    assert style["battles"].tolist() == [2 * len(BATTLES)] * 2

    from eval_studio.analysis.report import render_report  # the report shows the very same tables

    page = render_report(df, rounds=0)
    for table_id in ("paper-score_averages", "paper-scores-by-language", "paper-wins-by-language",
                     "agreement-by-language", "style-control-table"):
        assert f'id="{table_id}"' in page


def test_human_votes_only_hide_the_score_and_agreement_tables_with_one_note(judged_store):
    data = leaderboard_data(load_battles(judged_store), rounds=0)  # default evidence: people's votes only
    assert data.paper["score_averages"].empty and data.paper["agreement_by_language"].empty
    assert not data.paper["wins_by_language"].empty


def _by_id(fn, values) -> dict[str, object]:
    assert len(values) == len(fn.outputs)  # every output of the event gets a value
    return {getattr(c, "elem_id", None) or f"#{i}": v for i, (c, v) in enumerate(zip(fn.outputs, values))}


def _tab(load_battles_, load_bench):
    import gradio as gr

    with gr.Blocks() as demo:
        build_leaderboard_tab(load_battles_, load_bench=load_bench)
    loads = [f for f in demo.fns.values() if f.targets and f.targets[0][1] == "load"]
    main_load = next(f for f in loads if any(getattr(c, "elem_id", None) == "leaderboard-table" for c in f.outputs))
    bench_load = next(f for f in loads if any(getattr(c, "elem_id", None) == "leaderboard-bench-table"
                                              for c in f.outputs))
    return demo, main_load, bench_load


def test_the_tab_wires_every_view_on_load(judged_store, tmp_path, capsys):
    ids = [f"leaderboard-paper-{name.replace('_', '-')}" for name in PAPER_VIEW_DIGITS]
    bench = _bench_file(tmp_path / "base.json", None, "run-base")
    assert main(["studio", "import-bench", str(bench), "--db", judged_store]) == 0
    capsys.readouterr()
    # judge verdicts are not default evidence: the page opens on the people's votes, with the note
    demo, main_load, bench_load = _tab(lambda: load_battles(judged_store), lambda: list_bench(judged_store))
    shown = {getattr(c, "elem_id", None) for c in demo.blocks.values()}
    assert {"leaderboard-style_control", "leaderboard-style-table", "leaderboard-paper-note",
            "leaderboard-bench-reference", *ids} <= shown
    out = _by_id(main_load, main_load.fn())
    assert "6 of 12 battles match" in out["leaderboard-status"]
    assert out["leaderboard-style_control"] is not None and not out["leaderboard-style-table"].empty
    note = out["leaderboard-paper-note"]
    assert note["visible"] and "No judge scores" in note["value"] and "human vote and a judge verdict" in note["value"]
    assert out["leaderboard-paper-wins-by-language"]["visible"]
    assert out["leaderboard-paper-agreement-by-language"] == {"__type__": "update", "visible": False}

    status, task, table, chart = (_by_id(bench_load, bench_load.fn())[k] for k in (
        "leaderboard-bench-status", "leaderboard-bench-task", "leaderboard-bench-table", "leaderboard-bench-chart"))
    assert status == "1 model variant on 2 benchmarks." and task["value"] == "xcopa" and chart["visible"]
    _check_reference(table["value"], own=1)


def _check_reference(table: pd.DataFrame, own: int) -> None:
    """Table 4 as shown: the project's rows first, then the paper's, each labelled by its source."""
    ref = paper_reference()
    assert table["source"].tolist() == [OWN_SOURCE] * own + [ref["source_label"]] * len(ref["rows"])
    paper = table[table["source"] != OWN_SOURCE]
    assert all(m.endswith(" (paper)") for m in paper["model"])
    assert "languages" not in paper or paper["languages"].isna().all()  # not measured here
    bloom = paper.set_index("model").loc["Bactrian-X-bloom-7B (paper)"]
    assert bloom[["xcopa", "xstorycloze", "xwinograd", "sentimentx"]].tolist() == [54.78, 58.56, 60.83, 33.28]


def test_benchmark_section_labels_the_papers_rows_in_every_ui_language(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'studio.db'}"
    files = [_bench_file(tmp_path / "base.json", None, "b"), _bench_file(tmp_path / "multi.json", "demo-multi", "m")]
    assert main(["studio", "import-bench", *map(str, files), "--db", db]) == 0
    capsys.readouterr()
    rows = list_bench(db)
    status, task, table, chart = bench_updates(rows, "xwinograd", "en")
    assert status == "2 model variants on 2 benchmarks." and task["value"] == "xwinograd"
    _check_reference(table["value"], own=2)
    status, *_ = bench_updates(rows, None, "zh")
    assert status == "2 个模型变体，2 个基准。"  # the project's variants, not the paper's rows
    # no results of our own: one line, no chart, and still the paper's rows
    status, task, table, chart = bench_updates([], None, "en")
    assert status.startswith("No benchmark results yet") and not task["visible"] and not chart["visible"]
    _check_reference(table["value"], own=0)


def test_an_empty_store_opens_on_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    open_store(url).dispose()
    _, main_load, bench_load = _tab(lambda: load_battles(url), lambda: list_bench(url))
    out = _by_id(main_load, main_load.fn())
    assert out["leaderboard-empty"]["visible"] and "No votes yet" in out["leaderboard-empty"]["value"]
    assert out["leaderboard-results"] == {"__type__": "update", "visible": False}
    _check_reference(_by_id(bench_load, bench_load.fn())["leaderboard-bench-table"]["value"], own=0)


@pytest.mark.browser
def test_the_views_show_in_the_browser_in_both_ui_languages(judged_store, tmp_path, tiny_base, tiny_adapters,
                                                            capsys):
    from tests.ui_support import RunningStudio, have_chromium, launch_browser, studio_settings

    if not have_chromium():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    bench = _bench_file(tmp_path / "multi.json", "demo-multi", "run-multi")
    assert main(["studio", "import-bench", str(bench), "--db", judged_store]) == 0
    capsys.readouterr()
    from playwright.sync_api import expect, sync_playwright

    with RunningStudio(studio_settings(tiny_base, tiny_adapters, tmp_path / "studio.db")) as app, \
            sync_playwright() as p:
        browser = launch_browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(app.url)
        page.get_by_role("tab", name="Leaderboard").click()
        page.locator("#leaderboard-status").get_by_text("6 of 12 battles match").wait_for()
        page.locator("#leaderboard-style_control .main-svg").first.wait_for()
        assert "alpha" in page.locator("#leaderboard-style-table").inner_text()
        page.locator("#leaderboard-paper-note").get_by_text("No judge scores").wait_for()
        assert "es" in page.locator("#leaderboard-paper-wins-by-language").inner_text()
        assert page.locator("#leaderboard-paper-agreement-by-language").is_hidden()
        # the judge's verdicts counted too: scores and human-judge agreement per language appear
        page.locator("#leaderboard-filters").get_by_text("Filters and rating options").click()
        page.locator("#leaderboard-kinds").get_by_text("Judge verdicts").click()
        page.locator("#leaderboard-refresh").click()
        page.locator("#leaderboard-status").get_by_text("12 of 12 battles match").wait_for()
        agreement = page.locator("#leaderboard-paper-agreement-by-language")  # gradio keeps hidden copies of cells
        expect(agreement).to_contain_text("fair", timeout=60_000)
        assert "zh" in agreement.inner_text() and page.locator("#leaderboard-paper-note").is_hidden()
        assert "alpha" in page.locator("#leaderboard-paper-scores-by-language").inner_text()
        # Table 4: the project's row first, then the paper's rows, each labelled by its source
        page.locator("#leaderboard-bench-status").get_by_text("1 model variant on 2 benchmarks").wait_for()
        table = page.locator("#leaderboard-bench-table")
        expect(table).to_contain_text("Bactrian-X-bloom-7B (paper)", timeout=60_000)
        shown = table.inner_text()
        assert "gemma-3-270m + demo-multi" in shown and paper_reference()["source_label"] in shown
        assert shown.index("gemma-3-270m + demo-multi") < shown.index("Bactrian-X-bloom-7B (paper)")
        assert "not measured here" in page.locator("#leaderboard-bench-reference").inner_text()
        page.locator("#ui-lang").get_by_text("中文").click()
        page.locator("#leaderboard-paper-title").get_by_text("论文视图").wait_for()
        page.locator("#leaderboard-bench-reference").get_by_text("并非在此测得").wait_for()
        page.screenshot(path=str(tmp_path / "leaderboard-views.png"), full_page=True)
        browser.close()
