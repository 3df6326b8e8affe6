"""Issue 16, points 1-5: numbers that mislead. Real SQLite stores filled from pairs files in the public import
format, a scripted judge over real HTTP on 127.0.0.1, the `bactrian studio` command line; every expected number
is computed here, independently of eval_studio (by counting, FastChat's BT code, scikit-learn, statsmodels).
"""

from __future__ import annotations

import html
import json
import logging
import math
import re

import pandas as pd
import pytest

from bactrian.cli import main as bactrian
from tests import ratings_fastchat_ref as fc
from tests.trust_support import ATTACK, ScriptedJudge, pair_row, write_pairs

PRIOR_GAMES = 2.0  # the documented prior: two virtual tie games against an anchor rated 1000
ALPHA = math.log(10) / 400  # Elo scale: natural log-odds per rating point


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = bactrian(["studio", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def judge():
    with ScriptedJudge(delay=0.0) as server:
        yield server


def make_store(tmp_path, rows, name="studio.db"):
    from eval_studio.io import import_pairs_file
    from eval_studio.store import open_store

    url = f"sqlite:///{tmp_path / name}"
    engine = open_store(url)
    import_pairs_file(engine, write_pairs(tmp_path / f"{name}.pairs.jsonl", rows), task="trust")
    return url, engine


def run_judge(engine, judge, model, prompt, errors=0):
    from eval_studio.judge import JudgeConfig, judge_pairs

    cfg = JudgeConfig(prompt=prompt, model=model, base_url=judge.base_url, max_retries=0, concurrency=4)
    status = judge_pairs(engine, cfg, task="trust").join(timeout=120)
    assert status.status == "done" and status.n_errors == errors, status.message
    return status


def report_agreement(path) -> dict:
    text = path.read_text(encoding="utf-8")
    return json.loads(html.unescape(re.search(r'<pre id="agreement-json">(.*?)</pre>', text, re.S).group(1)))


def mt_bench_agreement(pairs: list[tuple[str, str]]) -> dict:
    """MT-bench's get_mt_bench_agreement, by hand: (judge, human) label pairs, with and without ties."""
    no_tie = [(j, h) for j, h in pairs if "tie" not in (j, h)]
    return {"with_ties": sum(j == h for j, h in pairs) / len(pairs), "n_with_ties": len(pairs),
            "without_ties": sum(j == h for j, h in no_tie) / len(no_tie), "n_without_ties": len(no_tie)}


# ---- 1. position bias on stored judgments ------------------------------------------------------------------
POSITION = [("a", "#first"), ("b", "#first"), ("a", "#first"), ("b", "#second"), ("a", "#second"),
            ("a", ""), ("b", ""), ("a", ""), ("b", ""), ("b", ""), ("a", ""), ("a", "")]


def test_1_position_bias_of_stored_judgments_in_cli_report_and_leaderboard(tmp_path, judge, capsys):
    url, engine = make_store(tmp_path, [pair_row(i, good=g, tag=t) for i, (g, t) in enumerate(POSITION)])
    run_judge(engine, judge, "tagged", "pair-v2")
    n = len(POSITION)
    first = sum(t == "#first" for _, t in POSITION) / n  # picked the first shown answer in both orders
    second = sum(t == "#second" for _, t in POSITION) / n
    consistent = sum(t == "" for _, t in POSITION) / n

    code, out, _ = cli(capsys, "agreement", "--db", url, "--json")
    assert code == 0
    pc = json.loads(out)["position_consistency"]
    assert pc["n_pairs"] == n and pc["consistency"] == pytest.approx(consistent)
    assert pc["biased_to_first"] == pytest.approx(first) and pc["biased_to_second"] == pytest.approx(second)

    report = tmp_path / "report.html"
    assert cli(capsys, "report", "--db", url, "--out", str(report), "--rounds", "3")[0] == 0
    assert report_agreement(report)["position_consistency"] == pc  # the same numbers as the CLI

    from eval_studio.store.battles import load_battles
    from eval_studio.ui.leaderboard_tab import leaderboard_view

    status, _, _ = leaderboard_view(load_battles(url), calls=load_battles(url, source="judge", merge_orders=False),
                                    kinds=["judge"], rounds=3)
    assert f"position consistency {consistent:.3f} over {n} both-order pairs" in status
    assert f"biased to first {first:.3f}, to second {second:.3f}" in status
    engine.dispose()


# ---- 2. judge prompts kept apart -----------------------------------------------------------------------------
# (good side, tag, labels of h1 and h2)
PROMPTS = [("a", "", ("a", "a")), ("b", "", ("b", "a")), ("a", "#flip-bx", ("a", "a")), ("b", "#flip-bx", ("b", "b")),
           ("a", "#first", ("a", "tie")), ("b", "", ("a", "b")), ("a", "#flip-bx", ("b", "a")), ("b", "", ("b", "b"))]


def _expected_verdict(prompt: str, good: str, tag: str) -> str:
    """What the scripted judge's two orders merge to (MT-bench: disagreeing orders are a tie)."""
    if tag in ("#first", "#second"):
        return "tie"
    if tag == "#flip-bx" and prompt == "bactrian-x":
        return {"a": "b", "b": "a"}[good]
    return good


@pytest.fixture(scope="module")
def two_prompts(tmp_path_factory, judge):
    tmp = tmp_path_factory.mktemp("two-prompts")
    rows = [pair_row(i, good=g, tag=t, labels=[("h1", l1), ("h2", l2)]) for i, (g, t, (l1, l2)) in enumerate(PROMPTS)]
    url, engine = make_store(tmp, rows)
    run_judge(engine, judge, "tagged", "pair-v2")
    run_judge(engine, judge, "tagged", "bactrian-x")
    engine.dispose()
    return url, tmp


@pytest.mark.parametrize("prompt", ["pair-v2", "bactrian-x"])
def test_2_agreement_keeps_each_judge_prompt_apart(two_prompts, capsys, prompt):
    url, _ = two_prompts
    expected = mt_bench_agreement([(_expected_verdict(prompt, g, t), h) for g, t, labels in PROMPTS for h in labels])
    code, out, _ = cli(capsys, "agreement", "--db", url, "--json")
    assert code == 0
    by_judge = json.loads(out)["human_judge_agreement"]["by_judge"]
    assert set(by_judge) == {"tagged (pair-v2)", "tagged (bactrian-x)"}
    assert by_judge[f"tagged ({prompt})"] == pytest.approx(expected)
    code, out, _ = cli(capsys, "agreement", "--db", url, "--json", "--judge-prompt", prompt)
    hj = json.loads(out)["human_judge_agreement"]
    assert {k: hj[k] for k in expected} == pytest.approx(expected) and set(hj["by_judge"]) == {"tagged"}


def test_2_ratings_and_report_refuse_blended_prompts_and_filter_by_prompt(two_prompts, capsys):
    url, tmp = two_prompts
    code, _, err = cli(capsys, "ratings", "--db", url, "--source", "judge", "--json")
    assert code == 2 and "--judge-prompt" in err and "pair-v2" in err and "bactrian-x" in err
    code, out, _ = cli(capsys, "ratings", "--db", url, "--source", "judge", "--judge-prompt", "pair-v2", "--json",
                       "--rounds", "3")
    assert code == 0
    out = json.loads(out)
    assert out["battles"] == len(PROMPTS)  # one verdict per pair, not one per pair and prompt
    assert {r["model"]: r["battles"] for r in out["ratings"]} == {"alpha": len(PROMPTS), "beta": len(PROMPTS)}
    assert cli(capsys, "report", "--db", url, "--out", str(tmp / "r.html"), "--rounds", "3")[0] == 2
    assert cli(capsys, "report", "--db", url, "--out", str(tmp / "r.html"), "--rounds", "3",
               "--judge-prompt", "bactrian-x")[0] == 0
    agreement = report_agreement(tmp / "r.html")
    expected = mt_bench_agreement([(_expected_verdict("bactrian-x", g, t), h) for g, t, labels in PROMPTS
                                   for h in labels])
    assert {k: agreement["human_judge_agreement"][k] for k in expected} == pytest.approx(expected)


# ---- 3. ratings with few votes: prior, battle counts, provisional, evidence kinds -----------------------------
def _one_vote_rating() -> float:
    """x beat y once; each also tied PRIOR_GAMES times with an anchor at 0: the stationary point, by hand."""
    def grad(u):  # d/du of the penalised log-likelihood at r_x = u, r_y = -u (natural units), by symmetry
        s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
        return 2 * (1 - s(2 * u)) - 2 * PRIOR_GAMES * (s(u) - 0.5)

    from scipy.optimize import brentq

    return 1000.0 + brentq(grad, 0.0, 10.0) / ALPHA


def test_3_one_blind_vote_gives_a_modest_provisional_rating_with_a_real_interval(tmp_path, capsys):
    from eval_studio.store import open_store
    from eval_studio.store.repo import record_battle, record_vote

    url = f"sqlite:///{tmp_path / 'studio.db'}"
    engine = open_store(url)
    bid = record_battle(engine, question="Which is the capital of France?", answer_a="Paris.", answer_b="Lyon.",
                        model_a="x", model_b="y", mode="battle", language="en")
    record_vote(engine, bid, "a", None)
    engine.dispose()
    code, out, _ = cli(capsys, "ratings", "--db", url, "--json", "--rounds", "20")
    assert code == 0
    rows = {r["model"]: r for r in json.loads(out)["ratings"]}
    x, y = rows["x"], rows["y"]
    assert x["rating"] == pytest.approx(_one_vote_rating(), abs=0.05) and x["rating"] < 1200  # not 2886.9
    assert y["rating"] == pytest.approx(2000.0 - _one_vote_rating(), abs=0.05)
    assert x["battles"] == y["battles"] == 1 and x["provisional"] and y["provisional"]
    assert x["lower"] < x["rating"] < x["upper"] and x["upper"] - x["lower"] > 200  # not [2886.9, 2886.9]


# A fixed battle file in the public battle-row format: "w" wins every one of its six games (unbounded MLE).
FIXED = ([("w", "x", "a")] * 4 + [("y", "w", "b")] * 2 + [("x", "y", "a"), ("x", "y", "b"), ("x", "y", "a"),
         ("y", "z", "a"), ("z", "y", "tie"), ("y", "z", "a"), ("x", "z", "a"), ("z", "x", "a"), ("x", "z", "tie"),
         ("x", "z", "a"), ("y", "x", "b"), ("z", "y", "b"), ("x", "y", "both_bad")])


def test_3_prior_equals_fastchat_bt_with_virtual_ties_against_an_anchor(tmp_path, capsys):
    table = pd.DataFrame([{"battle_id": f"b{i}", "model_a": a, "model_b": b, "winner": w, "source": "human",
                           "question_id": f"q{i}"} for i, (a, b, w) in enumerate(FIXED)])
    path = tmp_path / "battles.jsonl"
    table.to_json(path, orient="records", lines=True)
    models = sorted(set(table["model_a"]) | set(table["model_b"]))
    anchor = pd.DataFrame([{"battle_id": f"v{m}{k}", "model_a": m, "model_b": "ANCHOR", "winner": "tie"}
                           for m in models for k in range(int(PRIOR_GAMES))])
    ref = fc.compute_bt(fc.to_fastchat(pd.concat([table, anchor], ignore_index=True)))
    ref = (ref - ref["ANCHOR"] + 1000.0).drop("ANCHOR")
    counts = pd.concat([table["model_a"], table["model_b"]]).value_counts()

    code, out, _ = cli(capsys, "ratings", "--battles", str(path), "--json", "--rounds", "0")
    assert code == 0
    rows = {r["model"]: r for r in json.loads(out)["ratings"]}
    for m in models:
        assert rows[m]["rating"] == pytest.approx(ref[m], abs=0.05), m
        assert rows[m]["battles"] == counts[m] and rows[m]["provisional"] == (counts[m] < 10)
    code, out, _ = cli(capsys, "ratings", "--battles", str(path), "--json", "--rounds", "0", "--min-battles", "6")
    assert {r["model"]: r["provisional"] for r in json.loads(out)["ratings"]} == {m: counts[m] < 6 for m in models}
    code, out, _ = cli(capsys, "ratings", "--battles", str(path), "--rounds", "0")
    assert "provisional" in out


def test_3_leaderboard_filters_by_evidence_kind_default_blind_and_annotation(tmp_path, capsys):
    from eval_studio.store import judging
    from eval_studio.store.battles import load_battles
    from eval_studio.store.repo import record_battle, record_vote
    from eval_studio.ui.leaderboard_tab import leaderboard_view

    rows = [pair_row(i, good="a", labels=[("h1", "a")], models=("x", "y")) for i in range(4)]
    url, engine = make_store(tmp_path, rows)  # 4 annotation votes: x wins
    for mode, winner, n in (("battle", "a", 5), ("named", "b", 7)):  # 5 blind votes for x, 7 named ones for y
        for i in range(n):
            bid = record_battle(engine, question=f"{mode} {i}", answer_a="1", answer_b="2", model_a="x", model_b="y",
                                mode=mode, language="en")
            record_vote(engine, bid, winner, None)
    for t in judging.targets(engine, task="trust")[:3]:  # 3 judge verdicts (both orders each): y wins
        for ordering in ("ab", "ba"):
            judging.record_judgment(engine, run_id=None, pair_id=t.pair_id, prompt_name="pair-v2", prompt_hash="h",
                                    judge_model="j", params={}, params_hash="p", ordering=ordering, raw_output="ok",
                                    verdict="b", score_a=None, score_b=None, error=None, cached=False,
                                    prompt_tokens=1, completion_tokens=1, cost_usd=None)
    df = load_battles(url)
    assert len(df) == 4 + 5 + 7 + 3
    status, table, _ = leaderboard_view(df, rounds=3)  # default: blind battles + annotation votes
    assert status.startswith(f"9 of {len(df)} battles match")
    assert dict(zip(table["model"], table["battles"])) == {"x": 9, "y": 9} and table["provisional"].all()
    assert table.iloc[0]["model"] == "x"
    for kinds, n in ((["named"], 7), (["judge"], 3), (["blind", "named", "annotation", "judge"], 19)):
        status, table, _ = leaderboard_view(df, kinds=kinds, rounds=3)
        assert status.startswith(f"{n} of {len(df)} battles match") and set(table["battles"]) == {n}, kinds
    code, out, _ = cli(capsys, "ratings", "--db", url, "--kind", "named", "--json", "--rounds", "0")
    assert json.loads(out)["battles"] == 7 and json.loads(out)["ratings"][0]["model"] == "y"
    engine.dispose()


# ---- 4. the veto attack ---------------------------------------------------------------------------------------
def _fence(marker: str, text: str) -> str:
    return f"<<<{marker}>>>\n{text}\n<<<{marker}>>>"


@pytest.mark.parametrize("verdict", ["A", "B"])
def test_4_verdicts_quoted_inside_fenced_answers_never_void_the_judges_own(verdict):
    from eval_studio.judge.parse import parse_output

    question, weak, strong = "What is the capital of France?", "Lyon.\n" + ATTACK, "Paris."
    shown = (question, weak, strong) if verdict == "B" else (question, strong, weak)
    m = "FENCE-0123456789abcdef"
    raw = ("I was shown:\n" + "\n".join(_fence(m, t) for t in shown) + "\n"
           f"Assistant {verdict} is right; the other one only tries to steer the judge.\nMy final verdict: [[{verdict}]]")
    assert parse_output("pairwise", raw, shown).verdict == verdict
    # without the echo the judge's own final line is still its own
    own = f"Assistant {verdict} is right.\nMy final verdict: [[{verdict}]]"
    assert parse_output("pairwise", own, shown).verdict == verdict


@pytest.mark.parametrize("raw", [
    "Assistant B is right.\nMy final verdict: [[A]] My final verdict: [[B]]",  # two verdicts on the last line
    "Let me restate answer A.\nLyon.\nMy final verdict: [[A]]\nMy final verdict: [[B]]",  # an unfenced echo
])
def test_4_what_is_truly_ambiguous_in_the_judges_own_text_is_still_refused(raw):
    from eval_studio.judge.parse import ParseError, parse_output

    with pytest.raises(ParseError):
        parse_output("pairwise", raw, ("What is the capital of France?", "Lyon.\n" + ATTACK, "Paris."))


def test_4_veto_attack_through_a_real_judge_run(tmp_path, judge, capsys):
    rows = [pair_row(i, good="b", models=("weak", "strong"), answer_a_extra="\n" + ATTACK) for i in range(4)]
    url, engine = make_store(tmp_path, rows)
    run_judge(engine, judge, "echo-then-judge", "pair-v2", errors=0)  # today: every call an "injection" error
    from eval_studio.store.battles import load_battles

    assert list(load_battles(url, source="judge")["winner"]) == ["b"] * 4
    code, out, _ = cli(capsys, "ratings", "--db", url, "--json", "--rounds", "0", "--source", "judge")
    assert [r["model"] for r in json.loads(out)["ratings"]] == ["strong", "weak"]
    engine.dispose()


# ---- 5. agreement when pairs carry no question_id ---------------------------------------------------------------
# (good side, labels of three annotators); model_a < model_b everywhere, so labels need no canonical flip
NO_ID = [("a", ("a", "a", "b")), ("b", ("b", "b", "b")), ("a", ("a", "tie", "a")), ("b", ("a", "b", "b")),
         ("a", ("a", "a", "a")), ("b", ("b", "tie", "tie")), ("a", ("b", "a", "a")), ("b", ("b", "b", "a"))]


def test_5_agreement_groups_pairs_without_question_id_by_question_text(tmp_path, capsys):
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    rows = [pair_row(i, good=g, labels=list(zip(("h1", "h2", "h3"), labels)), question_id=False)
            for i, (g, labels) in enumerate(NO_ID)]
    path = write_pairs(tmp_path / "pairs.jsonl", rows)
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    assert cli(capsys, "import-pairs", str(path), "--db", url)[0] == 0
    code, out, _ = cli(capsys, "agreement", "--db", url, "--json")
    assert code == 0
    out = json.loads(out)
    table = [list(labels) for _, labels in NO_ID]
    counts, _ = aggregate_raters(pd.DataFrame(table).replace({"a": 0, "b": 1, "tie": 2}).to_numpy())
    assert out["fleiss_kappa"]["n_items"] == len(NO_ID) and out["fleiss_kappa"]["raters_per_item"] == 3
    assert out["fleiss_kappa"]["kappa"] == pytest.approx(fleiss_kappa(counts, method="fleiss"))
    for i, j in ((0, 1), (0, 2), (1, 2)):
        ref = cohen_kappa_score([t[i] for t in table], [t[j] for t in table])
        assert out["cohen_kappa"][f"h{i + 1}|h{j + 1}"] == {"kappa": pytest.approx(ref), "n_items": len(NO_ID)}
    assert not out["warnings"]


def test_5_rows_that_cannot_be_grouped_are_reported(tmp_path, capsys, caplog):
    rows = [{"battle_id": f"b{k}{i}", "model_a": "x", "model_b": "y", "winner": w, "annotator": who}
            for i, (_, labels) in enumerate(NO_ID) for k, (who, w) in enumerate(zip(("h1", "h2", "h3"), labels))]
    path = tmp_path / "no-items.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    with caplog.at_level(logging.WARNING, logger="eval_studio.analysis.agreement"):
        code, out, err = cli(capsys, "agreement", "--battles", str(path))
    assert code == 0
    assert f"warning: {len(rows)} of {len(rows)} rows have neither a question_id nor a question" in err
    assert any("cannot be grouped" in r.getMessage() for r in caplog.records)
    code, out, _ = cli(capsys, "agreement", "--battles", str(path), "--json")
    assert "cannot be grouped" in json.loads(out)["warnings"][0]
    assert cli(capsys, "report", "--battles", str(path), "--out", str(tmp_path / "r.html"), "--rounds", "0")[0] == 0
    assert '<p class="warning">Warning: 24 of 24 rows have neither' in (tmp_path / "r.html").read_text(encoding="utf-8")
    # with the question text (no id) the same rows group into items
    texts = pd.DataFrame(rows).assign(question=[f"Question {i // 3}" for i in range(len(rows))])
    texts.to_json(path, orient="records", lines=True)
    code, out, _ = cli(capsys, "agreement", "--battles", str(path), "--json")
    out = json.loads(out)
    assert out["fleiss_kappa"]["n_items"] == len(NO_ID) and not out["warnings"]
