"""Style control (Chatbot Arena's method): Bradley-Terry with answer-style covariates, beside the raw fit.

``logit P(a wins) = ln(10)/400 * (r_a - r_b) + sum_k beta_k * x_k``, where each style feature ``x_k`` of a battle
is the normalised difference of the two answers' counts, ``(count_a - count_b) / (count_a + count_b)`` (0 when
both are 0), standardised over the battles (mean 0, population standard deviation 1), as Arena's
``compute_style_control``. The features: answer length (characters, the battle table's ``len_a``/``len_b``) and
the markdown counts ``headers``, ``lists`` and ``bold`` (``battle_table.markdown_counts``; the store fills
``headers_a``/``headers_b``, ... from the answer texts). A feature whose columns are absent, or that never
varies, is left out. Ties count as half a win for each side. The fit is plain maximum likelihood (no prior), so it
is the logistic regression of the outcome on model indicators (+1 for A, -1 for B) and the features, without an
intercept; ratings are centred on ``init``. The style-controlled rating says how a model would fare if its
answers had the same style as its opponents'; ``coefficients`` say how much each style feature sways the votes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from eval_studio.battle_table import outcomes, validate_battles

ALPHA = math.log(10.0) / 400.0
FEATURES = {"length": ("len_a", "len_b"), "headers": ("headers_a", "headers_b"), "lists": ("lists_a", "lists_b"),
            "bold": ("bold_a", "bold_b")}
RESULT_COLUMNS = ["model", "rating", "lower", "upper", "rank", "raw_rating", "delta", "battles"]


def _loss(params: np.ndarray, a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray,
          n_models: int) -> tuple[float, np.ndarray]:
    r, beta = params[:n_models], params[n_models:]
    z = ALPHA * (r[a] - r[b]) + x @ beta
    total = w.sum()
    loss = float(np.sum(w * (y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z))) / total)
    g = w * (0.5 * (1.0 + np.tanh(0.5 * z)) - y) / total
    grad = np.empty_like(params)
    grad[:n_models] = ALPHA * (np.bincount(a, g, n_models) - np.bincount(b, g, n_models))
    grad[n_models:] = x.T @ g
    return loss, grad


def fit_contextual_bt(a: np.ndarray, b: np.ndarray, y: np.ndarray, x: np.ndarray, n_models: int,
                      weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood ``(ratings relative to their mean, on the Elo scale; beta)`` of
    ``logit P(a) = ALPHA (r_a - r_b) + x @ beta`` for outcomes ``y`` in [0, 1] (``x``: battles x features)."""
    x = np.asarray(x, dtype=float).reshape(len(a), -1)
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=float)
    res = minimize(_loss, np.zeros(n_models + x.shape[1]), args=(a, b, x, y, w, n_models), jac=True,
                   method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-10, "ftol": 1e-15})
    r = res.x[:n_models]
    return r - r.mean(), res.x[n_models:]


def style_features(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The standardised style features of each battle (NaN where a count is missing) and their names."""
    cols = {}
    for name, (ca, cb) in FEATURES.items():
        if ca not in df.columns or cb not in df.columns:
            continue
        xa, xb = pd.to_numeric(df[ca], errors="coerce"), pd.to_numeric(df[cb], errors="coerce")
        if xa.isna().all() or xb.isna().all():
            continue
        total = xa + xb
        cols[name] = ((xa - xb) / total.where(total != 0)).where(total != 0, 0.0).where(total.notna())
    feats = pd.DataFrame(cols, index=df.index)
    ok = feats.notna().all(axis=1)
    kept = []
    for name in feats.columns:
        sd = feats.loc[ok, name].std(ddof=0)
        if ok.any() and sd > 0:
            feats[name] = (feats[name] - feats.loc[ok, name].mean()) / sd
            kept.append(name)
    return feats[kept], kept


def style_control(df: pd.DataFrame, *, rounds: int = 0, seed: int = 0, ci: float = 0.95, ties: str = "half",
                  both_bad: str = "tie", init: float = 1000.0) -> pd.DataFrame:
    """Per model: style-controlled rating (with bootstrap CI and CI rank when ``rounds`` > 0), the raw
    Bradley-Terry rating of the same battles, their difference and battles used; ``attrs["coefficients"]``:
    feature -> beta, ``attrs["features"]``: the features used. Battles missing a used style count are left out."""
    kept, y = outcomes(validate_battles(df), ties, both_bad)
    feats, names = style_features(kept)
    ok = feats.notna().all(axis=1).to_numpy() if names else np.ones(len(kept), dtype=bool)
    kept, y, x = kept[ok].reset_index(drop=True), y[ok], feats[ok].to_numpy(dtype=float)
    out = pd.DataFrame(columns=RESULT_COLUMNS)
    out.attrs.update(coefficients={}, features=names)
    if kept.empty:
        return out
    n = len(kept)
    ids, models = pd.factorize(pd.concat([kept["model_a"], kept["model_b"]], ignore_index=True))
    a, b, m = ids[:n], ids[n:], len(models)
    rating, beta = fit_contextual_bt(a, b, y, x, m)
    raw, _ = fit_contextual_bt(a, b, y, np.zeros((n, 0)), m)
    lower = upper = rating
    if rounds > 0:
        rng = np.random.default_rng(seed)
        boot = np.array([fit_contextual_bt(a, b, y, x, m, rng.multinomial(n, np.full(n, 1.0 / n)))[0]
                         for _ in range(rounds)])
        lower, upper = np.quantile(boot, (1 - ci) / 2, axis=0), np.quantile(boot, 1 - (1 - ci) / 2, axis=0)
    counts = np.bincount(np.concatenate([a, b]), minlength=m)
    lo, hi = lower + init, upper + init
    rank = [1 + int(np.sum(lo > u)) for u in hi]
    out = pd.DataFrame({"model": [str(s) for s in models], "rating": rating + init, "lower": lo, "upper": hi,
                        "rank": rank, "raw_rating": raw + init, "delta": rating - raw, "battles": counts})
    out = out.sort_values(["rank", "rating"], ascending=[True, False]).reset_index(drop=True)
    out.attrs.update(coefficients={k: float(v) for k, v in zip(names, beta)}, features=names)
    return out
