"""What a new visitor meets, without a browser: the default model, example prompts, the demo note, Stop (the
service's row really stops), the question's language detected, right-to-left languages, and start-up pairs that
match each question's language."""

from __future__ import annotations

import random
import time

import pytest

from bactrian.generation import GenerationParams
from bactrian.languages import detect_language, is_rtl
from eval_studio.settings import DEFAULT_QUESTIONS

from tests.ui_support import make_random_adapter, studio_settings

DEMO_QUESTIONS = DEFAULT_QUESTIONS


@pytest.fixture(scope="module")
def demo_like(tiny_base, tmp_path_factory):
    """The tiny base with adapters named and tagged like the shipped demo ones (random weights: names matter)."""
    root = tmp_path_factory.mktemp("demo-like")
    for seed, (name, langs) in enumerate({"demo-multi": ["ar", "en", "zh"], "demo-ar": ["ar"], "demo-zh": ["zh"]}.items()):
        make_random_adapter(tiny_base, root / name, name, langs, seed)
    return {"root": root}


@pytest.fixture
def ctx(tiny_base, demo_like, tmp_path):
    from eval_studio.ui.context import create_context

    c = create_context(studio_settings(tiny_base, demo_like, tmp_path / "studio.db", external_models=()))
    yield c
    c.service.close()


def test_language_detection_and_direction():
    import json

    questions = [json.loads(line) for line in DEMO_QUESTIONS.read_text("utf-8").splitlines()]
    assert all(detect_language(q["question"]) == q["language"] for q in questions)  # 60 questions, 6 languages
    assert detect_language("Hi") is None and detect_language("  ") is None  # unsure: the field keeps its value
    assert detect_language("اردو ایک خوبصورت زبان ہے۔") == "ur"
    assert [c for c in ("ar", "fa", "he", "ur", "ps", "en", "zh", "xx") if is_rtl(c)] == ["ar", "fa", "he", "ur", "ps"]


def test_arena_question_language_is_detected_unless_the_visitor_chose_one():
    from eval_studio.ui.arena_tab import question_language

    assert question_language("为什么天空是蓝色的？", "en", pinned=False) == "zh"
    assert question_language("为什么天空是蓝色的？", "en", pinned=True) == "en"  # the visitor's choice wins
    assert question_language("ok", "es", pinned=False) == "es"  # unsure: keep what the field says


def test_examples_per_ui_language():
    from eval_studio.ui.text import UI_LANGS, examples

    for lang in UI_LANGS:
        assert len(examples(lang)) == 3 and all(e.strip() for e in examples(lang))
    assert examples("zh") != examples("en")


def test_default_variant_and_pairs_by_language(ctx):
    cat = ctx.catalog
    base = cat.base_name
    assert cat.default_variant() == "demo-multi"  # not the bare base
    assert cat.pairs_for_language("zh") == [("demo-zh", base), ("demo-zh", "demo-multi")]
    assert cat.pairs_for_language("en") == [("demo-multi", base)]  # no English adapter: multi against the base
    assert ctx.demo_note is False  # a test base is not an embedded one


def test_default_variant_falls_back(tiny_base, tiny_adapters, tmp_path):
    from eval_studio.ui.context import create_context

    c = create_context(studio_settings(tiny_base, tiny_adapters, tmp_path / "a.db", external_models=()))
    assert c.catalog.default_variant() == "alpha"  # no multilingual adapter: the first adapter
    c.service.close()
    c = create_context(studio_settings(tiny_base, {"root": ""}, tmp_path / "b.db", adapters_dirs=(), external_models=()))
    assert c.catalog.default_variant() == c.catalog.base_name  # nothing else
    c.service.close()


def test_start_up_pairs_match_the_questions_language(ctx):
    from eval_studio.io import import_question_file
    from eval_studio.store.tasks import list_pairs
    from eval_studio.ui.pairgen import generate_pairs

    import_question_file(ctx.db, DEMO_QUESTIONS, name="demo")
    added = generate_pairs(ctx.catalog, ctx.db, set_name="demo", task="demo", count=12,
                           params=GenerationParams(max_new_tokens=4, min_tokens=2, temperature=0.7))
    pairs = list_pairs(ctx.db, task="demo")
    assert added == len(pairs) == 12
    base = ctx.catalog.base_name
    for p in pairs:
        expected = {"zh": {("demo-zh", base), ("demo-zh", "demo-multi")}, "ar": {("demo-ar", base), ("demo-ar", "demo-multi")}}
        assert (p.model_a, p.model_b) in expected.get(p.language, {("demo-multi", base)}), p
    assert {p.language for p in pairs} == {"ar", "en", "es", "id", "ja", "zh"}
    zh = {(p.model_a, p.model_b) for p in pairs if p.language == "zh"}
    assert zh == {("demo-zh", base), ("demo-zh", "demo-multi")}  # opponents alternate within a language


def _steps_settle(service, quiet: float = 0.4, timeout: float = 10.0) -> int:
    """The service's decode-step count once it stopped moving (no row left decoding)."""
    deadline = time.time() + timeout
    last = service.stats["steps"]
    while time.time() < deadline:
        time.sleep(quiet)
        now = service.stats["steps"]
        if now == last:
            return now
        last = now
    raise AssertionError("the service kept decoding")


def test_stop_in_chat_cancels_the_row_and_stores_nothing(ctx):
    from eval_studio.ui.chat_tab import ChatState, chat_turn

    long = GenerationParams(max_new_tokens=400, min_tokens=400, temperature=0.7)
    turns = chat_turn(ctx, ChatState(), "Tell me a long story.", "demo-multi", long, None)
    for _, _, col in turns:
        if col.text:
            break
    turns.close()  # what Gradio does to the handler when Stop cancels the event
    steps = _steps_settle(ctx.service)
    assert steps < 400  # it stopped well before its 400 tokens
    assert ctx.service.stats["steps"] == steps
    assert ctx.db.connect().exec_driver_sql("SELECT count(*) FROM turns").scalar() == 0  # a stopped reply is not stored


def test_stop_in_arena_cancels_both_columns(ctx):
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, pick_models

    long = GenerationParams(max_new_tokens=400, min_tokens=400, temperature=0.7)
    st = pick_models(ctx, ArenaState(), "named", ("demo-multi", "demo-zh"), "zh", random.Random(0))
    rounds = arena_turn(ctx, st, "讲一个很长的故事。", long, None)
    for cols, _ in rounds:
        if all(c.text for c in cols):
            break
    assert ctx.service.stats["largest_batch"] == 2  # both columns decode together
    rounds.close()
    steps = _steps_settle(ctx.service)
    assert steps < 400
    assert ctx.db.connect().exec_driver_sql("SELECT count(*) FROM battles").scalar() == 0


def test_leaderboard_says_once_that_there_are_no_votes_and_speaks_chinese(ctx):
    import gradio as gr

    from eval_studio.store.battles import load_battles
    from eval_studio.ui.common import Translator
    from eval_studio.ui.leaderboard_tab import build_leaderboard_tab

    tr = Translator()
    with gr.Blocks() as demo:
        lang = gr.Radio(["en", "zh"], value="en")
        build_leaderboard_tab(lambda: load_battles(ctx.db), tr=tr, ui_lang=lang)  # a new store: no battles
    (update,) = {d.fn for d in demo.fns.values() if getattr(d.fn, "__name__", "") == "update" and len(d.outputs) > 4}
    out = update([], "all", [], [], ["blind"], [], 10, None, None, "bt", "half", 20, "zh")
    status, empty, results = out[4:7]
    assert status == "" and empty["visible"] and "还没有投票" in empty["value"] and results["visible"] is False
    labels = {u.get("label") for u in tr.updates("zh")}
    assert {"筛选与评分选项", "起始日期（UTC）", "证据类型", "评分"} <= labels
    assert "Filters and rating options" in {u.get("label") for u in tr.updates("en")}


def test_judge_endpoint_unreachable_reads_clearly(ctx, tmp_path):
    from eval_studio.io import import_pairs_file
    from eval_studio.ui.judge_tab import failure_rows, start_judge, status_text
    from tests.ui_support import DEAD_URL, demo_pairs, write_pairs

    import_pairs_file(ctx.db, write_pairs(tmp_path / "pairs.jsonl", demo_pairs(1)), task="demo", overlap=1)
    admin = next(u for u in ctx.users.values() if u.is_admin)
    run = start_judge(ctx, admin, "bactrian-x", DEAD_URL, "judge", "", None, 1)
    deadline = time.time() + 120
    while (text := status_text(ctx, run, "en"))[1]:
        assert time.time() < deadline
        time.sleep(0.2)
    assert "The judge endpoint could not be reached** at http://127.0.0.1:9/v1" in text[0]
    assert "无法连接评审接口" in status_text(ctx, run, "zh")[0]
    assert failure_rows(ctx, admin, run) == []  # nothing was asked, so no call failed
