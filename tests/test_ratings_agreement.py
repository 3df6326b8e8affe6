"""Agreement functions against scikit-learn / statsmodels, MT-bench's agreement rules and hand-made tables."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from eval_studio.analysis import agreement as ag

LABELS = ["a", "b", "tie", "both_bad"]


def _same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) < 1e-12


def _sk_kappa(x, y) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sklearn divides 0/0 in the degenerate case
        return float(cohen_kappa_score(x, y))


@pytest.mark.parametrize("seed", range(6))
def test_cohen_matches_sklearn_random(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    x = rng.choice(LABELS[: int(rng.integers(2, 5))], n)
    y = np.where(rng.random(n) < 0.6, x, rng.choice(LABELS, n))
    assert _same(ag.cohen_kappa(list(x), list(y)), _sk_kappa(x, y))


def test_cohen_degenerate_cases():
    same = ["tie"] * 10
    assert _same(ag.cohen_kappa(same, same), _sk_kappa(same, same))  # both NaN: chance agreement is 1
    one_sided = ["a"] * 10
    other = ["a"] * 9 + ["b"]
    assert _same(ag.cohen_kappa(one_sided, other), _sk_kappa(one_sided, other))  # 0.0
    # missing labels: those items are left out, exactly like scoring only the complete pairs
    x = ["a", None, "b", "tie", float("nan"), "a", "b"]
    y = ["a", "b", None, "tie", "a", "b", "b"]
    kept = [(p, q) for p, q in zip(x, y) if isinstance(p, str) and isinstance(q, str)]
    assert _same(ag.cohen_kappa(x, y), _sk_kappa(*zip(*kept)))
    assert math.isnan(ag.cohen_kappa([None], ["a"]))
    with pytest.raises(ValueError, match="length"):
        ag.cohen_kappa(["a"], ["a", "b"])


def _sm(items) -> float:
    table, _ = aggregate_raters(np.array(items, dtype=object))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(sm_fleiss(table, method="fleiss"))


@pytest.mark.parametrize("seed", range(6))
def test_fleiss_matches_statsmodels_random(seed):
    rng = np.random.default_rng(100 + seed)
    k, n = int(rng.integers(2, 6)), int(rng.integers(5, 40))
    truth = rng.choice(LABELS, n)
    items = [[t if rng.random() < 0.7 else rng.choice(LABELS) for _ in range(k)] for t in truth]
    kappa, raters, used = ag.fleiss_kappa(items)
    assert (raters, used) == (k, n)
    assert _same(kappa, _sm(items))


def test_fleiss_degenerate_and_missing():
    all_same = [["a", "a", "a"]] * 5
    assert _same(ag.fleiss_kappa(all_same)[0], _sm(all_same))  # NaN
    one_rater = [["a"], ["b"], ["tie"]]
    k, raters, _ = ag.fleiss_kappa(one_rater)
    assert raters == 1 and math.isnan(k) and math.isnan(_sm(one_rater))
    # missing labels drop out; only items with the common number of labels (3 here) count
    items = [["a", "a", None], ["a", "b", "b"], ["tie", "tie", "tie"], ["b", "a", "a"], ["a", None, None]]
    full = [["a", "b", "b"], ["tie", "tie", "tie"], ["b", "a", "a"]]
    kappa, raters, used = ag.fleiss_kappa(items)
    assert (raters, used) == (3, 3) and _same(kappa, _sm(full))
    two = [["a", "a"], ["a", "b"], ["b", "b"]]
    # n_raters=2: the item left with two labels after dropping a missing one joins the two-label items
    kappa, raters, used = ag.fleiss_kappa(items + two, n_raters=2)
    assert (raters, used) == (2, 4) and _same(kappa, _sm([["a", "a"], *two]))
    assert math.isnan(ag.fleiss_kappa([])[0])


def _row(i, a, b, w, source="human", annotator=None, q="q1", **extra):
    return {"battle_id": f"r{i}", "question_id": q, "model_a": a, "model_b": b, "winner": w, "source": source,
            "annotator": annotator, "language": "zh", "tstamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(i, "s"),
            **extra}


def test_votes_in_either_order_compare():
    df = pd.DataFrame([_row(0, "x", "y", "a", annotator="ann1"), _row(1, "y", "x", "b", annotator="ann2"),
                       _row(2, "x", "y", "both_bad", annotator="ann1", q="q2"), _row(3, "y", "x", "tie", annotator="ann2", q="q2")])
    votes = ag.canonical_votes(df)
    assert votes["label"].tolist() == ["a", "a", "tie", "tie"]
    assert ag.pairwise_cohen(votes)["ann1|ann2"]["n_items"] == 2
    kept = ag.canonical_votes(df, both_bad="keep")
    assert kept["label"].tolist() == ["a", "a", "both_bad", "tie"]


def _mt_bench_agreement(judge_votes: dict, human_votes: dict, ban: list[str]) -> tuple[int, int]:
    """MT-bench's ``get_mt_bench_agreement`` (FastChat fastchat/llm_judge/compute_agreement.py), judge vs human."""
    stats = [0, 0]
    for key, hv in human_votes.items():
        if key not in judge_votes:
            continue
        jv = judge_votes[key]
        if ("tie" if "tie" in jv else jv) in ban:
            continue
        for v in hv:
            if ("tie" if "tie" in v else v) in ban:
                continue
            stats[1] += 1
            stats[0] += ("tie" in jv and "tie" in v) or jv == v
    return stats[0], stats[1]


def test_human_judge_agreement_matches_mt_bench_rules():
    rng = np.random.default_rng(7)
    rows, judge, human = [], {}, {}
    i = 0
    for q in range(40):
        verdict = rng.choice(["a", "b", "tie"])
        judge[q] = {"a": "model_a", "b": "model_b", "tie": "tie"}[verdict]
        # the judge in both orders, consistent here; the second call shows the models swapped
        rows += [_row(i, "m1", "m2", verdict, "judge", "gpt-4", q=f"q{q}"),
                 _row(i + 1, "m2", "m1", {"a": "b", "b": "a"}.get(verdict, verdict), "judge", "gpt-4", q=f"q{q}")]
        i += 2
        human[q] = []
        for h in range(int(rng.integers(1, 4))):
            v = rng.choice(["a", "b", "tie", "both_bad"])
            human[q].append({"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}[v])
            rows.append(_row(i, "m1", "m2", v, "human", f"h{h}", q=f"q{q}"))
            i += 1
    res = ag.human_judge_agreement(ag.canonical_votes(pd.DataFrame(rows)))
    agree, total = _mt_bench_agreement(judge, human, [])
    assert res["n_with_ties"] == total and res["with_ties"] == pytest.approx(agree / total)
    agree, total = _mt_bench_agreement(judge, human, ["tie"])
    assert res["n_without_ties"] == total and res["without_ties"] == pytest.approx(agree / total)


def test_inconsistent_judge_counts_as_tie():
    df = pd.DataFrame([_row(0, "x", "y", "a", "judge", "j"), _row(1, "y", "x", "a", "judge", "j"),
                       _row(2, "x", "y", "tie", "human", "h")])
    votes = ag.canonical_votes(df)
    assert ag.judge_verdicts(votes)["label"].tolist() == ["tie"]
    assert ag.human_judge_agreement(votes)["with_ties"] == 1.0


def test_position_consistency_by_order_and_by_pair_key():
    rows = [  # q1 consistent; q2 first-position bias; q3 second-position bias; q4 only one order (no pair)
        _row(0, "x", "y", "a", "judge", "j", q="q1"), _row(1, "y", "x", "b", "judge", "j", q="q1"),
        _row(2, "x", "y", "a", "judge", "j", q="q2"), _row(3, "y", "x", "a", "judge", "j", q="q2"),
        _row(4, "x", "y", "b", "judge", "j", q="q3"), _row(5, "y", "x", "b", "judge", "j", q="q3"),
        _row(6, "x", "y", "a", "judge", "j", q="q4"),
    ]
    res = ag.position_consistency(ag.canonical_votes(pd.DataFrame(rows)))
    assert res["n_pairs"] == 3
    assert res["consistency"] == pytest.approx(1 / 3)
    assert res["biased_to_first"] == pytest.approx(1 / 3) and res["biased_to_second"] == pytest.approx(1 / 3)
    # the store's per-call rows: both rows in the pair's a/b terms, linked by pair_key, order in `ordering`
    keyed = pd.DataFrame([
        _row(0, "x", "y", "a", "judge", "j", q="q1", pair_key="p1", ordering="ab"),
        _row(1, "x", "y", "a", "judge", "j", q="q1", pair_key="p1", ordering="ba"),
        _row(2, "x", "y", "a", "judge", "j", q="q2", pair_key="p2", ordering="ab"),
        _row(3, "x", "y", "b", "judge", "j", q="q2", pair_key="p2", ordering="ba"),  # shown first both times
        _row(4, "x", "y", "a", "judge", "j", q="q3", pair_key="p3", ordering="ab"),
    ])
    res = ag.position_consistency(ag.canonical_votes(keyed))
    assert res["n_pairs"] == 2 and res["consistency"] == 0.5 and res["biased_to_first"] == 0.5
    assert res["by_judge"]["j"]["n_pairs"] == 2
    none = ag.position_consistency(ag.canonical_votes(keyed.assign(source="human")))
    assert none["n_pairs"] == 0 and math.isnan(none["consistency"])


def test_summary_keys_and_matrix():
    from tests.synthetic import synthetic_battles

    df = synthetic_battles({"x": 900.0, "y": 1000.0, "z": 1100.0}, 800, seed=1, judge_share=0.4, questions=20)
    out = ag.agreement_summary(df)
    assert {"cohen_kappa", "fleiss_kappa", "human_judge_agreement", "position_consistency"} <= set(out)
    assert set(out["cohen_kappa"]) == {"ann1|ann2", "ann1|ann3", "ann2|ann3"}
    assert {"with_ties", "without_ties"} <= set(out["human_judge_agreement"])
    m = ag.agreement_matrix(ag.canonical_votes(df))
    assert list(m.index) == ["ann1", "ann2", "ann3", "judge:gpt-4"] and (np.diag(m) == 1).all()
    assert m.loc["ann1", "ann2"] == pytest.approx(out["cohen_kappa"]["ann1|ann2"]["kappa"])
