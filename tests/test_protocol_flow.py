"""The paper's protocol end to end on tiny parts (issue 17, acceptance 2): a 3-question set translated into 2
languages by the translate step (stub translator over HTTP), answered by two variants (one in-process, one over
HTTP as an external model), every pair judged in both orders by a scripted judge over HTTP, rated; the
per-language and per-category tables are checked against a count made here from the stored answers."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from bactrian.engine import Engine
from bactrian.server import create_app
from bactrian.service import LocalService
from bactrian.testing import make_tiny_base
from eval_studio.analysis.paper_views import paper_tables
from eval_studio.protocol import judged_battles, parse_protocol_recipe, read_answers_file, run_protocol
from eval_studio.analysis.ratings import compute_ratings
from eval_studio.store.db import open_store
from eval_studio.store.tasks import list_pairs
from tests import stubapi
from pipelines.data.questions import parse_question_recipe, translate_questions
from tests.helpers import LiveServer
from tests.trust_support import ScriptedJudge

QUESTIONS = [
    {"question_id": 1, "text": "How can I sleep better?", "category": "generic"},
    {"question_id": 2, "text": "Why is the sky blue?", "category": "knowledge"},
    {"question_id": 3, "text": "What is 17 times 3?", "category": "generic"},
    {"question_id": 4, "text": "Write a haiku about rain.", "category": "writing"},  # left out by the recipe
]


def score(answer: str) -> int:
    """The scripted judge's score of an answer: a fixed function of its text (so both orders agree)."""
    return sum(map(ord, answer)) % 11


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    return make_tiny_base(root / "tiny-a", seed=1), make_tiny_base(root / "tiny-b", seed=2)


def test_translate_answer_judge_rate(tmp_path, bases):
    src = tmp_path / "question.jsonl"
    src.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), "utf-8")
    translator, _ = stubapi.serve(stubapi.StubConfig())
    qrecipe = parse_question_recipe({
        "name": "mini", "source": str(src), "output": str(tmp_path / "questions"), "languages": ["es", "zh"],
        "categories": ["generic", "knowledge"], "include_english": False,
        "translate": {"backend": "llm", "model": "stub", "api_key_env": None,
                      "base_url": f"http://127.0.0.1:{translator.server_port}/v1"}})
    try:
        out = translate_questions(qrecipe, progress=False)
    finally:
        translator.shutdown()
    assert out["failed"] == 0 and out["languages"] == {"es": {"questions": 3, "missing": 0},
                                                       "zh": {"questions": 3, "missing": 0}}
    rows = [json.loads(line) for line in (tmp_path / "questions" / "questions.jsonl").read_text("utf-8").splitlines()]
    # ids and categories aligned across languages, the language a field of its own
    assert {(r["id"], r["language"], r["category"]) for r in rows} == {
        (q, lang, c) for q, c in (("1", "generic"), ("2", "knowledge"), ("3", "generic")) for lang in ("es", "zh")}
    assert next(r for r in rows if (r["id"], r["language"]) == ("2", "zh"))["question"] == "[Chinese] Why is the sky blue?"

    tiny_a, tiny_b = bases
    local = LocalService(Engine.load(str(tiny_a), include_default_dirs=False))
    remote_engine = LocalService(Engine.load(str(tiny_b), include_default_dirs=False))
    db = open_store(f"sqlite:///{tmp_path / 'studio.db'}")
    try:
        with LiveServer(create_app(remote_engine)) as other, ScriptedJudge(score=score) as judge:
            recipe = parse_protocol_recipe({
                "name": "mini-eval", "questions": out["output"], "output": str(tmp_path / "eval"),
                "engine": {"base": "unused: the test passes its own service"},
                "variants": [{"name": local.variants()[0].name},
                             {"name": "remote-b", "url": other.base_url, "model": remote_engine.variants()[0].name}],
                "generation": {"max_new_tokens": 12, "temperature": 0.0, "concurrency": 4},
                "judge": {"base_url": judge.base_url, "model": "fair", "prompt": "bactrian-x", "concurrency": 2}})
            results = run_protocol(recipe, db, engine_service=local)
            again = run_protocol(recipe, db, engine_service=local)  # resumable: nothing asked twice
    finally:
        local.close()
        remote_engine.close()
    assert results["answers"]["answered"] == 12 and results["answers"]["failed"] == 0
    assert results["pairs"] == {"pairs": 6, "added": 6, "unchanged": 0, "seconds": results["pairs"]["seconds"]}
    assert results["judge"]["status"] == "done" and results["judge"]["calls"] == 12 and results["judge"]["errors"] == 0
    assert again["answers"]["asked"] == 0 and again["pairs"]["added"] == 0 and again["judge"]["calls"] == 0
    assert len(judge.requests) == 12  # 6 pairs x both orders, once

    # the independent count, from the stored answers and the judge's scoring rule
    answers = read_answers_file(tmp_path / "eval" / "answers.jsonl")
    cat = {"1": "generic", "2": "knowledge", "3": "generic"}
    wins: Counter = Counter()
    scores: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for p in list_pairs(db, task="mini-eval"):
        sa = score(answers[(p.question_id, p.language, p.model_a)]["text"])
        sb = score(answers[(p.question_id, p.language, p.model_b)]["text"])
        outcome = "a" if sa > sb else "b" if sb > sa else "tie"
        for by in ("language", "category"):
            key = p.language if by == "language" else cat[p.question_id]
            wins[(by, key, p.model_a, {"a": "win", "b": "loss", "tie": "tie"}[outcome])] += 1
            scores[(by, key, p.model_a)].append(sa)
            scores[(by, key, p.model_b)].append(sb)
    assert any(n for (_, _, _, k), n in wins.items() if k != "tie")  # the two tiny models do not always tie
    tables = paper_tables(judged_battles(recipe, db))
    for by in ("language", "category"):
        got = tables[f"wins_by_{by}"]
        assert got["n"].sum() == 6
        for r in got.itertuples(index=False):
            assert (r.win, r.tie, r.loss) == tuple(wins[(by, getattr(r, by), r.model, k)] for k in ("win", "tie", "loss"))
        for r in tables[f"scores_by_{by}"].itertuples(index=False):
            expect = scores[(by, getattr(r, by), r.model)]
            assert r.n == len(expect) and r.mean_score == pytest.approx(sum(expect) / len(expect))
    assert set(tables["scores_by_category"]["category"]) == {"generic", "knowledge"}
    from eval_studio.analysis.report import render_report

    page = render_report(judged_battles(recipe, db), rounds=0)  # the report carries the same tables
    assert 'id="paper-wins-by-language"' in page and 'id="paper-scores-by-category"' in page
    ratings = compute_ratings(judged_battles(recipe, db), rounds=10)
    assert set(ratings["model"]) == {recipe.variants[0].name, "remote-b"} and set(ratings["battles"]) == {6}


@pytest.mark.shared
def test_paper_question_recipe_plans_16_questions_in_12_languages():
    from pathlib import Path

    from pipelines.data.questions import load_question_recipe, plan
    from tests.helpers import SHARED

    if not (SHARED / "questions" / "vicuna80" / "question.jsonl").is_file():
        pytest.skip(f"shared data absent: {SHARED}")
    repo = Path(__file__).resolve().parents[1]
    for name in ("vicuna-bx12.yaml", "vicuna-bx12-offline.yaml"):
        recipe = load_question_recipe(repo / "recipes" / "questions" / name,
                                      {"source": str(SHARED / "questions" / "vicuna80" / "question.jsonl")})
        p = plan(recipe)
        assert p["questions"] == 16 and len(p["by_category"]) == 8 and set(p["by_category"].values()) == {2}
        assert p["languages"] == ["es", "fr", "pt", "ar", "id", "zh", "de", "it", "ru", "ja", "ko", "tr"]
        assert p["translations"] == 192
