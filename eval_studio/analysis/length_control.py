"""Length-controlled win rate (AlpacaEval 2 style), shown beside the raw one.

A Bradley-Terry model with one extra term for the length difference is fitted to the battles:
``logit P(a wins) = ln(10)/400 * (r_a - r_b) + beta * tanh((len_a - len_b) / sd)``, the tanh of the standardised
difference as AlpacaEval's GLM. The length-controlled win rate of a model is its predicted win rate against the
opponents it actually met, with the length term set to zero (as if both answers had had the same length); with
a ``baseline`` it is the predicted rate against that one model, AlpacaEval's definition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval_studio.battle_table import outcomes, validate_battles
from eval_studio.analysis.style_control import ALPHA, fit_contextual_bt


def length_controlled(df: pd.DataFrame, *, baseline: str | None = None, ties: str = "half",
                      both_bad: str = "tie") -> pd.DataFrame:
    """Per model: raw and length-controlled win rates (ties as half), battles used; ``attrs["length_coef"]``.

    Rows without both answer lengths are left out of the fit (and of the raw rate, so the two compare).
    """
    kept, y = outcomes(validate_battles(df), ties, both_bad)
    ok = (kept["len_a"].notna() & kept["len_b"].notna()).to_numpy()
    kept, y = kept[ok].reset_index(drop=True), y[ok]
    columns = ["model", "raw_win_rate", "lc_win_rate", "battles"]
    if kept.empty:
        out = pd.DataFrame(columns=columns)
        out.attrs["length_coef"] = float("nan")
        return out
    n = len(kept)
    ids, models = pd.factorize(pd.concat([kept["model_a"], kept["model_b"]], ignore_index=True))
    a, b, m = ids[:n], ids[n:], len(models)
    diff = (kept["len_a"] - kept["len_b"]).to_numpy(dtype=float)
    sd = diff.std()
    x = np.tanh(diff / sd) if sd > 0 else np.zeros(n)
    r, coef = fit_contextual_bt(a, b, y, x[:, None], m)  # the style-control fit with one covariate
    beta = float(coef[0])
    # each battle seen from both sides: (model, opponent, model's score)
    me, opp = np.concatenate([a, b]), np.concatenate([b, a])
    score = np.concatenate([y, 1 - y])
    if baseline is not None:
        if baseline not in set(models):
            raise ValueError(f"baseline model {baseline!r} is not in the battles")
        base_id = list(models).index(baseline)
        sel = opp == base_id
        me, opp, score = me[sel], opp[sel], score[sel]
    p_lc = 1.0 / (1.0 + np.exp(-ALPHA * (r[me] - r[opp])))
    count = np.bincount(me, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = np.bincount(me, score, m) / count
        lc = np.bincount(me, p_lc, m) / count if baseline is None else 1.0 / (1.0 + np.exp(-ALPHA * (r - r[base_id])))
    out = pd.DataFrame({"model": [str(s) for s in models], "raw_win_rate": raw, "lc_win_rate": lc, "battles": count})
    if baseline is not None:
        out = out[out["model"] != baseline]
    out = out.sort_values("lc_win_rate", ascending=False).reset_index(drop=True)
    out.attrs["length_coef"] = beta
    return out
