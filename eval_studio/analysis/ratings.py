"""Ratings over the battle table: online Elo, Bradley-Terry MLE, bootstrap CIs, CI ranks, pairwise matrices.

Conventions follow Chatbot Arena (FastChat ``elo_analysis.py`` / ``rating_systems.py``) so numbers are comparable:
Elo k=4, base 10, scale 400, start 1000; Bradley-Terry is the maximum-likelihood fit with a tie as half a win for
each side, on the same scale. ``bradley_terry`` / ``bootstrap_bt`` with ``prior=0`` (their default) are exactly
FastChat's unregularised fit, centred so the mean rating is ``init``.

The leaderboard (``compute_ratings``) adds a weak prior, because the unregularised fit is unbounded for a model
that won (or lost) all its few games (one vote gave 2886.9 with a 95% CI of [2886.9, 2886.9]): every model plays
``PRIOR_GAMES`` (2) virtual games against an anchor fixed at ``init`` (1000), each game a tie. That is the same
as fitting the battle table plus those tie rows and reading ratings relative to the anchor; it shrinks models
with little evidence towards 1000 and is negligible after a few dozen battles. Models with fewer than
``MIN_BATTLES`` (10) battles are marked ``provisional``, and their interval is at least the normal approximation
of the penalised fit (a bootstrap of one battle has no spread at all).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from eval_studio.battle_table import outcomes, validate_battles

RESULT_COLUMNS = ["model", "rating", "lower", "upper", "rank", "battles", "provisional"]
PRIOR_GAMES = 2.0  # virtual tie games of every model against an anchor rated ``init`` (leaderboard default)
MIN_BATTLES = 10  # fewer battles than this: the model's rating is marked provisional


@dataclass(frozen=True)
class Matchups:
    """Battles encoded as integer model ids, the unique (a, b, outcome) rows and how often each occurs."""

    models: list[str]
    rows: np.ndarray  # (U, 3) int: model_a id, model_b id, outcome id (0 = b wins, 1 = tie, 2 = a wins)
    counts: np.ndarray  # (U,) float
    n_battles: int


def encode(df: pd.DataFrame, ties: str = "half", both_bad: str = "tie") -> Matchups:
    """Encode a battle table the way FastChat's ``preprocess_for_bt`` does (same model order, same unique rows),
    so a seeded bootstrap draws the same samples as FastChat's ``compute_bootstrap_bt``."""
    kept, score = outcomes(validate_battles(df), ties, both_bad)
    n = len(kept)
    ids, models = pd.factorize(pd.concat([kept["model_a"], kept["model_b"]], ignore_index=True))
    schedule = np.empty((n, 3), dtype=np.int32)
    schedule[:, 0], schedule[:, 1] = ids[:n], ids[n:]
    schedule[:, 2] = np.rint(score * 2).astype(np.int32)
    if n == 0:
        return Matchups([], np.zeros((0, 3), np.int32), np.zeros(0), 0)
    rows, counts = np.unique(schedule, return_counts=True, axis=0)
    return Matchups([str(m) for m in models], rows, counts.astype(np.float64), n)


class _PairLoss:
    """BT negative log-likelihood on pair totals: many battles collapse to one term per unordered model pair."""

    def __init__(self, m: Matchups, alpha: float):
        a, b, o = m.rows[:, 0], m.rows[:, 1], m.rows[:, 2] / 2.0
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pairs, self.pair_of = np.unique(lo * len(m.models) + hi, return_inverse=True)
        self.lo, self.hi = pairs // len(m.models), pairs % len(m.models)
        self.share = np.where(a == lo, o, 1.0 - o)  # the lower id's score in each unique row
        self.n_models, self.alpha = len(m.models), alpha
        # indicator (U x P): pair totals for any weight vector(s) are one matrix product
        self.onehot = np.zeros((len(a), len(pairs)))
        self.onehot[np.arange(len(a)), self.pair_of] = 1.0

    def totals(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Battles and wins of the lower id per pair, for weights of shape (U,) or (R, U)."""
        return weights @ self.onehot, (weights * self.share) @ self.onehot

    def __call__(self, r: np.ndarray, n: np.ndarray, w: np.ndarray, prior: float = 0.0) -> tuple[float, np.ndarray]:
        z = self.alpha * (r[self.lo] - r[self.hi])
        # -[w log s(z) + (n - w) log s(-z)], written stably with logaddexp
        loss = float(np.sum(w * np.logaddexp(0.0, -z) + (n - w) * np.logaddexp(0.0, z)))
        gz = self.alpha * (n * _expit(z) - w)
        grad = np.bincount(self.lo, gz, self.n_models) - np.bincount(self.hi, gz, self.n_models)
        if prior:  # ``prior`` tie games of every model against an anchor fixed at 0
            za = self.alpha * r
            loss += float(prior * np.sum(0.5 * np.logaddexp(0.0, -za) + 0.5 * np.logaddexp(0.0, za)))
            grad = grad + prior * self.alpha * (_expit(za) - 0.5)
        return loss, grad

    def hessian(self, r: np.ndarray, n: np.ndarray, prior: float) -> np.ndarray:
        """Second derivatives of the (unnormalised) loss at ``r``: pair totals ``n`` plus the prior games."""
        z = self.alpha * (r[self.lo] - r[self.hi])
        v = self.alpha**2 * n * _expit(z) * _expit(-z)
        h = np.zeros((self.n_models, self.n_models))
        np.add.at(h, (self.lo, self.lo), v)
        np.add.at(h, (self.hi, self.hi), v)
        np.add.at(h, (self.lo, self.hi), -v)
        np.add.at(h, (self.hi, self.lo), -v)
        za = self.alpha * r
        h[np.diag_indices(self.n_models)] += prior * self.alpha**2 * _expit(za) * _expit(-za)
        return h


def _one_blas_thread() -> AbstractContextManager:
    """L-BFGS on a handful of ratings is latency-bound: multi-threaded BLAS only adds spin-wait (10x slower on a
    busy 2-core box), so fits run with one BLAS thread when threadpoolctl (a scikit-learn dependency) is there."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def _expit(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _fit(loss: _PairLoss, n: np.ndarray, w: np.ndarray, x0: np.ndarray, tol: float, prior: float = 0.0) -> np.ndarray:
    total = n.sum()
    if total == 0:
        return x0.copy()
    # normalised to a mean loss so one tolerance fits any number of battles
    res = minimize(loss, x0, args=(n / total, w / total, prior / total), jac=True, method="L-BFGS-B",
                   options={"maxiter": 500, "gtol": tol, "ftol": 1e-15})
    return res.x


def bradley_terry(df: pd.DataFrame, *, base: float = 10.0, scale: float = 400.0, init: float = 1000.0,
                  ties: str = "half", both_bad: str = "tie", tol: float = 1e-9, prior: float = 0.0) -> pd.Series:
    """Maximum-likelihood Bradley-Terry ratings (Elo scale), best first.

    ``prior``: virtual tie games of every model against an anchor fixed at ``init`` (0: unregularised, FastChat's).
    """
    m = encode(df, ties, both_bad)
    if not m.models:
        return pd.Series(dtype=float)
    loss = _PairLoss(m, math.log(base))
    n, w = loss.totals(m.counts)
    with _one_blas_thread():
        r = _fit(loss, n, w, np.zeros(len(m.models)), tol, prior)
    return pd.Series(r * scale + init, index=m.models).sort_values(ascending=False)


def laplace_se(df: pd.DataFrame, ratings: pd.Series, *, prior: float, base: float = 10.0, scale: float = 400.0,
               init: float = 1000.0, ties: str = "half", both_bad: str = "tie") -> pd.Series:
    """Standard errors (rating points) of the prior-penalised BT fit from its curvature (normal approximation)."""
    m = encode(df, ties, both_bad)
    if not m.models or prior <= 0:
        return pd.Series(np.nan, index=ratings.index)
    loss = _PairLoss(m, math.log(base))
    n, _ = loss.totals(m.counts)
    r = (ratings.reindex(m.models).to_numpy(dtype=float) - init) / scale
    cov = np.linalg.inv(loss.hessian(r, n, prior))
    return pd.Series(np.sqrt(np.clip(np.diag(cov), 0.0, None)) * scale, index=m.models).reindex(ratings.index)


def bootstrap_bt(df: pd.DataFrame, rounds: int = 100, *, seed: int = 0, base: float = 10.0, scale: float = 400.0,
                 init: float = 1000.0, ties: str = "half", both_bad: str = "tie", tol: float = 1e-9,
                 prior: float = 0.0) -> pd.DataFrame:
    """Bradley-Terry on ``rounds`` resamples of the battles (with replacement): one row per round.

    Resampling battles is drawn as multinomial counts over the unique (a, b, outcome) rows, exactly as FastChat's
    ``compute_bootstrap_bt`` (same seed -> same samples); each round warm-starts from the full-data fit. The
    ``prior`` games are part of every round's fit, never resampled.
    """
    m = encode(df, ties, both_bad)
    if not m.models or rounds <= 0:
        return pd.DataFrame(columns=m.models, dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n=m.n_battles, pvals=m.counts / m.counts.sum(), size=rounds).astype(np.float64)
    loss = _PairLoss(m, math.log(base))
    n_all, w_all = loss.totals(m.counts)
    ns, ws = loss.totals(draws)
    with _one_blas_thread():
        x0 = _fit(loss, n_all, w_all, np.zeros(len(m.models)), tol, prior)
        out = np.array([_fit(loss, ns[i], ws[i], x0, tol, prior) for i in range(rounds)])
    return pd.DataFrame(out * scale + init, columns=m.models)


def online_elo(df: pd.DataFrame, *, k: float = 4.0, base: float = 10.0, scale: float = 400.0, init: float = 1000.0,
               ties: str = "half", both_bad: str = "tie") -> pd.Series:
    """Online Elo in row order, the same arithmetic as FastChat's ``compute_elo`` (so identical numbers)."""
    kept, score = outcomes(validate_battles(df), ties, both_bad)
    rating: dict[str, float] = {}
    for a, b, sa in zip(kept["model_a"].tolist(), kept["model_b"].tolist(), score.tolist()):
        ra, rb = rating.get(a, init), rating.get(b, init)
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        rating[a] = ra + k * (sa - ea)
        rating[b] = rb + k * (1 - sa - eb)
    return pd.Series(rating, dtype=float).sort_values(ascending=False)


def bootstrap_elo(df: pd.DataFrame, rounds: int = 100, *, seed: int = 0, k: float = 4.0, base: float = 10.0,
                  scale: float = 400.0, init: float = 1000.0, ties: str = "half", both_bad: str = "tie") -> pd.DataFrame:
    """Online Elo on ``rounds`` resampled battle sequences, all rounds stepped together (vectorised)."""
    kept, score = outcomes(validate_battles(df), ties, both_bad)
    n = len(kept)
    ids, models = pd.factorize(pd.concat([kept["model_a"], kept["model_b"]], ignore_index=True))
    if n == 0 or rounds <= 0:
        return pd.DataFrame(columns=[str(x) for x in models], dtype=float)
    a_ids, b_ids = ids[:n], ids[n:]
    sample = np.random.default_rng(seed).integers(0, n, size=(n, rounds))
    r = np.full((rounds, len(models)), init, dtype=np.float64)
    cols = np.arange(rounds)
    for idx in sample:  # one step of every round at once
        ia, ib = a_ids[idx], b_ids[idx]
        ra, rb = r[cols, ia], r[cols, ib]
        upd = k * (score[idx] - 1.0 / (1.0 + base ** ((rb - ra) / scale)))
        r[cols, ia] += upd
        r[cols, ib] -= upd
    return pd.DataFrame(r, columns=[str(x) for x in models])


def ci_ranks(lower: pd.Series, upper: pd.Series) -> pd.Series:
    """Rank = 1 + number of models whose lower bound is above this model's upper bound (Arena's CI rule)."""
    lo = lower.to_numpy()
    return pd.Series([1 + int(np.sum(lo > u)) for u in upper.to_numpy()], index=upper.index, dtype=int)


def battle_counts(df: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Symmetric matrix of how many battles each pair of models fought."""
    df = validate_battles(df)
    df = df[df["model_a"] != df["model_b"]]
    models = order or sorted(set(df["model_a"]) | set(df["model_b"]))
    t = pd.crosstab(df["model_a"], df["model_b"]).reindex(index=models, columns=models, fill_value=0)
    return (t + t.T).astype(int)


def win_fraction(df: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Share of battles the row model won against the column model (ties count as not won, as FastChat)."""
    df = validate_battles(df)
    df = df[df["model_a"] != df["model_b"]]
    models = order or sorted(set(df["model_a"]) | set(df["model_b"]))

    def table(rows: pd.DataFrame) -> pd.DataFrame:
        return pd.crosstab(rows["model_a"], rows["model_b"]).reindex(index=models, columns=models, fill_value=0)

    a_wins, b_wins, n = table(df[df["winner"] == "a"]), table(df[df["winner"] == "b"]), table(df)
    total = (n + n.T).astype(float)
    return (a_wins + b_wins.T) / total.where(total > 0)


def predicted_win_rate(ratings: pd.Series, base: float = 10.0, scale: float = 400.0) -> pd.DataFrame:
    """P(row beats column) implied by ratings on the Elo scale."""
    r = ratings.to_numpy(dtype=float)
    p = 1.0 / (1.0 + base ** ((r[None, :] - r[:, None]) / scale))
    np.fill_diagonal(p, np.nan)
    return pd.DataFrame(p, index=ratings.index, columns=ratings.index)


def compute_ratings(df: pd.DataFrame, *, method: str = "bt", rounds: int = 100, seed: int = 0, ci: float = 0.95,
                    ties: str = "half", both_bad: str = "tie", k: float = 4.0, base: float = 10.0,
                    scale: float = 400.0, init: float = 1000.0, prior: float = PRIOR_GAMES,
                    min_battles: int = MIN_BATTLES) -> pd.DataFrame:
    """The leaderboard: point rating, CI, CI rank, battle count and provisional flag per model, best first.

    Bradley-Terry uses the weak prior (``prior`` virtual tie games against an anchor at ``init``; 0 turns it off)
    and bootstrap CIs; a model with fewer than ``min_battles`` battles is ``provisional`` and its interval is at
    least the prior-penalised fit's normal approximation. Online Elo takes no prior (its start value is one).
    """
    if method not in ("bt", "elo"):
        raise ValueError(f"method must be 'bt' or 'elo', not {method!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), not {ci}")
    if prior < 0 or min_battles < 0:
        raise ValueError("prior and min_battles must be 0 or more")
    common = {"base": base, "scale": scale, "init": init, "ties": ties, "both_bad": both_bad}
    if method == "bt":
        point = bradley_terry(df, prior=prior, **common)
        boot = bootstrap_bt(df, rounds, seed=seed, prior=prior, **common)
    else:
        point, boot = online_elo(df, k=k, **common), bootstrap_elo(df, rounds, seed=seed, k=k, **common)
    if point.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    if len(boot):
        lower = boot.quantile((1 - ci) / 2).reindex(point.index)
        upper = boot.quantile(1 - (1 - ci) / 2).reindex(point.index)
    else:
        lower, upper = point.copy(), point.copy()
    kept, _ = outcomes(validate_battles(df), ties, both_bad)
    counts = pd.concat([kept["model_a"], kept["model_b"]]).value_counts().reindex(point.index, fill_value=0)
    provisional = counts < min_battles
    if method == "bt" and prior > 0 and provisional.any():
        from scipy.stats import norm

        half = norm.ppf(1 - (1 - ci) / 2) * laplace_se(df, point, prior=prior, **common)
        lower = lower.where(~provisional, np.minimum(lower, point - half))
        upper = upper.where(~provisional, np.maximum(upper, point + half))
    out = pd.DataFrame({"model": point.index, "rating": point.to_numpy(), "lower": lower.to_numpy(),
                        "upper": upper.to_numpy(), "rank": ci_ranks(lower, upper).to_numpy(),
                        "battles": counts.to_numpy().astype(int), "provisional": provisional.to_numpy()})
    return out.sort_values(["rank", "rating"], ascending=[True, False]).reset_index(drop=True)


def ratings_by(df: pd.DataFrame, by: str, **kwargs) -> pd.DataFrame:
    """``compute_ratings`` for each value of ``by`` (``language`` or ``category``), stacked with a ``by`` column."""
    if by not in ("language", "category"):
        raise ValueError(f"--by must be language or category, not {by!r}")
    df = validate_battles(df)
    parts = []
    for value, rows in df.groupby(df[by].fillna("(none)"), sort=True):
        part = compute_ratings(rows, **kwargs)
        part.insert(0, by, value)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[by, *RESULT_COLUMNS])
    return pd.concat(parts, ignore_index=True)
