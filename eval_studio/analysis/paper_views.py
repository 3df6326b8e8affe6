"""The paper's evaluation views over the battle table.

- Fig. 5: average judge score per model in each language (``scores_by(df, "language")``)
- Fig. 6: average judge score per model in each question category (``scores_by(df, "category")``)
- Fig. 4: win / tie / loss counts for each pair of models (``win_tie_loss``), and per language or category
  (``win_tie_loss_by``)
- ``paper_tables``: all of them as plain tables (the report's "Paper views" section, ``bactrian studio eval``)
Every row with judge scores contributes ``score_a`` to model A and ``score_b`` to model B.
"""

from __future__ import annotations

import pandas as pd

from eval_studio.battle_table import validate_battles


def _sides(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Each battle as two rows (one per model) with that model's score and battle score (1 / 0.5 / 0)."""
    won = {"a": (1.0, 0.0), "b": (0.0, 1.0)}
    sa = df["winner"].map(lambda w: won.get(w, (0.5, 0.5))[0]).astype(float)
    key = df[by].fillna("(none)")
    a = pd.DataFrame({by: key, "model": df["model_a"], "score": df["score_a"], "win": sa})
    b = pd.DataFrame({by: key, "model": df["model_b"], "score": df["score_b"], "win": 1.0 - sa})
    return pd.concat([a, b], ignore_index=True)


def scores_by(df: pd.DataFrame, by: str = "language") -> pd.DataFrame:
    """Long table ``[by, model, mean_score, n]``: average judge score per model per language or category."""
    if by not in ("language", "category"):
        raise ValueError(f"by must be language or category, not {by!r}")
    sides = _sides(validate_battles(df), by).dropna(subset=["score"])
    out = sides.groupby([by, "model"], sort=True)["score"].agg(mean_score="mean", n="size").reset_index()
    return out


def win_rates_by(df: pd.DataFrame, by: str = "language") -> pd.DataFrame:
    """Long table ``[by, model, win_rate, n]`` (ties as half): the fallback view when no judge gave scores."""
    df = validate_battles(df)
    df = df[df["model_a"] != df["model_b"]]
    sides = _sides(df, by)
    return sides.groupby([by, "model"], sort=True)["win"].agg(win_rate="mean", n="size").reset_index()


def pivot(long: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """``by`` x model matrix of one value column (NaN where a model has no data)."""
    if long.empty:
        return pd.DataFrame(dtype=float)
    return long.pivot(index=by, columns="model", values=value)


def win_tie_loss(df: pd.DataFrame, model: str | None = None, both_bad: str = "tie") -> pd.DataFrame:
    """``[model, opponent, win, tie, loss, n]`` per pair of models (each pair once, names in sorted order, or
    ``model`` always on the left when given). ``both_bad="tie"`` counts "both bad" as a tie, ``"loss"`` as a
    loss for both (so it is in neither side's wins)."""
    if both_bad not in ("tie", "loss"):
        raise ValueError(f"both_bad must be 'tie' or 'loss', not {both_bad!r}")
    df = validate_battles(df)
    df = df[df["model_a"] != df["model_b"]]
    if model is not None:
        df = df[(df["model_a"] == model) | (df["model_b"] == model)]
        swap = (df["model_b"] == model).to_numpy()
    else:
        swap = (df["model_a"] > df["model_b"]).to_numpy()
    left = df["model_a"].where(~swap, df["model_b"])
    right = df["model_b"].where(~swap, df["model_a"])
    w = df["winner"].astype(str)
    flipped = w.map({"a": "b", "b": "a"}).fillna(w).where(swap, w)
    out = pd.DataFrame({"model": left, "opponent": right,
                        "win": flipped == "a", "loss": (flipped == "b") | ((flipped == "both_bad") & (both_bad == "loss")),
                        "tie": (flipped == "tie") | ((flipped == "both_bad") & (both_bad == "tie"))})
    if out.empty:
        return pd.DataFrame(columns=["model", "opponent", "win", "tie", "loss", "n"])
    agg = out.groupby(["model", "opponent"], sort=True)[["win", "tie", "loss"]].sum().astype(int)
    agg["n"] = agg.sum(axis=1)
    return agg.reset_index()


def _by_key(df: pd.DataFrame, by: str) -> pd.Series:
    if by not in ("language", "category"):
        raise ValueError(f"by must be language or category, not {by!r}")
    return df[by].fillna("(none)").astype(str)


def win_tie_loss_by(df: pd.DataFrame, by: str = "language", model: str | None = None,
                    both_bad: str = "tie") -> pd.DataFrame:
    """``[by, model, opponent, win, tie, loss, n]``: ``win_tie_loss`` within each language or category."""
    df = validate_battles(df)
    parts = []
    for value, rows in df.groupby(_by_key(df, by), sort=True):
        part = win_tie_loss(rows, model=model, both_bad=both_bad)
        part.insert(0, by, value)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[by, "model", "opponent", "win", "tie", "loss", "n"])
    return pd.concat(parts, ignore_index=True)


def score_averages(df: pd.DataFrame) -> pd.DataFrame:
    """``[model, mean_score, n]``: every judge score a model got, averaged (the paper's overall score)."""
    sides = _sides(validate_battles(df), "language").dropna(subset=["score"])
    out = sides.groupby("model", sort=True)["score"].agg(mean_score="mean", n="size").reset_index()
    return out.sort_values("mean_score", ascending=False, kind="stable").reset_index(drop=True)


PAPER_TABLES = ("score_averages", "scores_by_language", "scores_by_category", "win_tie_loss",
                "wins_by_language", "wins_by_category")


def paper_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The paper's views of one battle table (normally one judge's verdicts under one prompt), by name
    (``PAPER_TABLES``): score averages overall, per language and per category (Figs. 5, 6), and win / tie / loss
    counts overall, per language and per category (Fig. 4)."""
    df = validate_battles(df)
    return {"score_averages": score_averages(df), "scores_by_language": scores_by(df, "language"),
            "scores_by_category": scores_by(df, "category"), "win_tie_loss": win_tie_loss(df),
            "wins_by_language": win_tie_loss_by(df, "language"), "wins_by_category": win_tie_loss_by(df, "category")}
