"""``bactrian studio judge --source battles``: the arena battles people voted on are judged (both orders), and
human-judge agreement on those very battles shows per language (``agreement --by language``)."""

from __future__ import annotations

import json

import pytest

from bactrian.cli import main
from eval_studio.store.db import open_store
from eval_studio.store.repo import record_battle, record_vote
from tests.trust_support import ScriptedJudge

# (language, which answer is GOOD, the person's vote): the scripted judge prefers the GOOD answer
BATTLES = [("es", "a", "a"), ("es", "b", "b"), ("es", "a", "b"), ("zh", "a", "a"), ("zh", "b", "a"), ("zh", "b", "tie")]


def test_judge_arena_battles_and_agreement_per_language(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    db = open_store(url)
    for i, (lang, good, vote) in enumerate(BATTLES):
        bid = record_battle(db, question=f"question {i}?", answer_a=("GOOD " if good == "a" else "") + f"answer a{i}",
                            answer_b=("GOOD " if good == "b" else "") + f"answer b{i}", model_a="alpha", model_b="beta",
                            mode="battle", language=lang, category="generic")
        record_vote(db, bid, vote, f"person{i % 2}")
    record_battle(db, question="nobody voted?", answer_a="x", answer_b="GOOD y", model_a="alpha", model_b="beta",
                  mode="battle", language="es")  # not judged: no vote
    db.dispose()
    with ScriptedJudge() as judge:
        args = ["studio", "judge", "--source", "battles", "--base-url", judge.base_url, "--model", "fair",
                "--prompt", "pair-v2", "--db", url]
        assert main(args) == 0
        assert len(judge.requests) == 2 * len(BATTLES)  # both orders of every voted battle
        assert main(args) == 0 and len(judge.requests) == 2 * len(BATTLES)  # copied once, judged once
    capsys.readouterr()
    assert main(["studio", "agreement", "--db", url, "--by", "language", "--json"]) == 0
    rows = {r["language"]: r for r in json.loads(capsys.readouterr().out)["human_judge_by_language"]}
    # independent count: the judge picks the GOOD side; agreement = votes equal to it (ties count as disagreement)
    for lang in ("es", "zh"):
        mine = [(good, vote) for lg, good, vote in BATTLES if lg == lang]
        no_tie = [(g, v) for g, v in mine if v != "tie"]
        assert rows[lang]["judge"] == "fair" and rows[lang]["items"] == 3
        assert rows[lang]["with_ties"] == pytest.approx(sum(g == v for g, v in mine) / len(mine))
        assert rows[lang]["n_without_ties"] == len(no_tie)
        assert rows[lang]["without_ties"] == pytest.approx(sum(g == v for g, v in no_tie) / len(no_tie))
    assert main(["studio", "agreement", "--db", url, "--by", "language"]) == 0
    assert "human-judge agreement per language" in capsys.readouterr().out
