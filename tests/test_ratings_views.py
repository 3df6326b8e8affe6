"""Length-controlled win rate and the paper's views (Fig. 4, 5, 6) on hand-made and synthetic tables."""

from __future__ import annotations

import pandas as pd
import pytest

from eval_studio.analysis.length_control import length_controlled
from eval_studio.analysis.paper_views import pivot, scores_by, win_rates_by, win_tie_loss
from tests.synthetic import synthetic_battles

EQUAL = {"short-a": 1000.0, "short-b": 1000.0, "verbose": 1000.0, "strong": 1150.0}


def test_length_control_removes_a_length_bias():
    """Equal-quality 'verbose' wins on length alone: raw rate high, length-controlled back near 0.5 of its peers."""
    df = synthetic_battles(EQUAL, 6000, seed=5, tie_rate=0.0, both_bad_rate=0.0, length_bias=1.2,
                           long_models=("verbose",))
    lc = length_controlled(df).set_index("model")
    assert lc.attrs["length_coef"] > 0.8
    assert lc.loc["verbose", "raw_win_rate"] > 0.6
    assert lc.loc["verbose", "lc_win_rate"] < lc.loc["verbose", "raw_win_rate"] - 0.1
    assert abs(lc.loc["verbose", "lc_win_rate"] - lc.loc["short-a", "lc_win_rate"]) < 0.06
    assert lc.index[0] == "strong"


def test_no_length_bias_leaves_rates_alone():
    df = synthetic_battles(EQUAL, 6000, seed=6, tie_rate=0.0, both_bad_rate=0.0, long_models=("verbose",))
    lc = length_controlled(df).set_index("model")
    # beta is only weakly identified when one model is always the long one (it is collinear with that model's
    # rating), so allow sampling noise; the rates themselves must barely move
    assert abs(lc.attrs["length_coef"]) < 0.25
    assert (lc["raw_win_rate"] - lc["lc_win_rate"]).abs().max() < 0.04


def test_length_control_with_baseline_and_missing_lengths():
    df = synthetic_battles(EQUAL, 2000, seed=7)
    df.loc[:99, "len_a"] = None
    lc = length_controlled(df, baseline="short-a")
    assert "short-a" not in set(lc["model"])
    assert lc["battles"].sum() == ((df.iloc[100:]["model_a"] == "short-a") | (df.iloc[100:]["model_b"] == "short-a")).sum()
    with pytest.raises(ValueError, match="baseline"):
        length_controlled(df, baseline="nobody")
    assert length_controlled(df.iloc[:0]).empty


def _t(rows):
    cols = ["battle_id", "model_a", "model_b", "winner", "language", "category", "score_a", "score_b"]
    return pd.DataFrame([dict(zip(cols, [str(i), *r])) for i, r in enumerate(rows)])


def test_scores_by_language_and_category_by_hand():
    df = _t([("x", "y", "a", "zh", "math", 8.0, 4.0), ("y", "x", "b", "zh", "coding", 6.0, 9.0),
             ("x", "y", "tie", "es", "math", 5.0, 5.0), ("x", "y", "a", "es", "math", None, None)])
    lang = scores_by(df, "language").set_index(["language", "model"])
    assert lang.loc[("zh", "x"), "mean_score"] == pytest.approx(8.5) and lang.loc[("zh", "x"), "n"] == 2
    assert lang.loc[("zh", "y"), "mean_score"] == pytest.approx(5.0)
    assert lang.loc[("es", "x"), "n"] == 1  # the unscored row does not count
    cat = pivot(scores_by(df, "category"), "category", "mean_score")
    assert cat.loc["coding", "x"] == 9.0 and cat.loc["math", "y"] == pytest.approx(4.5)
    wr = win_rates_by(df, "language").set_index(["language", "model"])
    assert wr.loc[("es", "x"), "win_rate"] == pytest.approx(0.75)  # a tie (0.5) and a win (1)


def test_win_tie_loss_by_hand():
    df = _t([("x", "y", "a", "zh", None, None, None), ("y", "x", "a", "zh", None, None, None),
             ("y", "x", "tie", "zh", None, None, None), ("x", "z", "both_bad", "zh", None, None, None)])
    wtl = win_tie_loss(df).set_index(["model", "opponent"])
    assert wtl.loc[("x", "y")].to_dict() == {"win": 1, "tie": 1, "loss": 1, "n": 3}
    assert wtl.loc[("x", "z")].to_dict() == {"win": 0, "tie": 1, "loss": 0, "n": 1}
    focus = win_tie_loss(df, model="y").set_index("opponent")
    assert focus.loc["x"].to_dict()["win"] == 1 and focus.loc["x", "loss"] == 1
    assert win_tie_loss(df, both_bad="loss").set_index(["model", "opponent"]).loc[("x", "z"), "loss"] == 1
