"""Plotly figures from the ratings / agreement / paper-view results, and ``dashboard`` which builds them all from
one battle table (the Leaderboard tab and the HTML report share it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from eval_studio.analysis import agreement, length_control, paper_views, ratings, style_control
from eval_studio.battle_table import validate_battles

FIGURE_IDS = ("ratings", "win_fraction", "battle_count", "language_model", "category_model", "win_tie_loss",
              "length_control", "style_control", "agreement")
# figures the dashboard builds beyond FIGURE_IDS: none now that the Leaderboard shows style control too (kept, empty,
# for callers that show ``FIGURE_IDS + EXTRA_FIGURE_IDS``)
EXTRA_FIGURE_IDS: tuple[str, ...] = ()


def _empty(title: str, why: str = "no battles match the filters") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False,
                      annotations=[{"text": why, "showarrow": False, "font": {"size": 16}, "xref": "paper",
                                       "yref": "paper", "x": 0.5, "y": 0.5}])
    return fig


def ratings_figure(table: pd.DataFrame, title: str = "Ratings with 95% confidence intervals") -> go.Figure:
    if table.empty:
        return _empty(title)
    t = table.sort_values("rating", ascending=False)
    fig = go.Figure(go.Scatter(
        x=t["model"], y=t["rating"], mode="markers", marker={"size": 10},
        error_y={"type": "data", "symmetric": False, "array": t["upper"] - t["rating"],
                 "arrayminus": t["rating"] - t["lower"]},
        customdata=t[["rank", "battles"]], hovertemplate="%{x}<br>rating %{y:.0f}<br>rank %{customdata[0]}"
                                                          "<br>battles %{customdata[1]}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="model", yaxis_title="rating")
    return fig


def _heatmap(matrix: pd.DataFrame, title: str, fmt: str, colorscale: str, hover: str, zmid: float | None = None) -> go.Figure:
    if matrix.empty:
        return _empty(title)
    fig = go.Figure(go.Heatmap(z=matrix.to_numpy(dtype=float), x=[str(c) for c in matrix.columns],
                               y=[str(i) for i in matrix.index], colorscale=colorscale, zmid=zmid,
                               texttemplate=fmt, hovertemplate=hover + "<extra></extra>"))
    fig.update_layout(title=title, yaxis_autorange="reversed", xaxis_side="top")
    return fig


def win_fraction_figure(matrix: pd.DataFrame) -> go.Figure:
    fig = _heatmap(matrix, "Fraction of battles the row model won against the column model", "%{z:.2f}", "RdBu",
                   "row %{y}<br>column %{x}<br>row wins %{z:.2f}", zmid=0.5)
    return fig.update_layout(xaxis_title="model B", yaxis_title="model A")


def battle_count_figure(matrix: pd.DataFrame) -> go.Figure:
    return _heatmap(matrix, "Battles per model pair", "%{z}", "Blues", "%{y} vs %{x}: %{z} battles")


def language_model_figure(matrix: pd.DataFrame, value: str = "mean judge score") -> go.Figure:
    return _heatmap(matrix, f"Language x model: {value} (paper Fig. 5)", "%{z:.2f}", "Viridis",
                    "language %{y}<br>model %{x}<br>" + value + " %{z:.2f}")


def category_model_figure(long: pd.DataFrame, by: str = "category", value: str = "mean_score",
                          label: str = "mean judge score") -> go.Figure:
    title = f"Category x model: {label} (paper Fig. 6)"
    if long.empty:
        return _empty(title)
    fig = go.Figure([go.Bar(name=str(m), x=g[by], y=g[value]) for m, g in long.groupby("model", sort=True)])
    return fig.update_layout(title=title, barmode="group", xaxis_title=by, yaxis_title=label)


def win_tie_loss_figure(wtl: pd.DataFrame) -> go.Figure:
    title = "Win / tie / loss per model pair (paper Fig. 4)"
    if wtl.empty:
        return _empty(title)
    y = wtl["model"] + " vs " + wtl["opponent"]
    colours = {"win": "#2ca02c", "tie": "#bbbbbb", "loss": "#d62728"}
    fig = go.Figure([go.Bar(name=k, y=y, x=wtl[k], orientation="h", marker_color=c) for k, c in colours.items()])
    return fig.update_layout(title=title, barmode="stack", xaxis_title="battles", yaxis_autorange="reversed")


def length_control_figure(lc: pd.DataFrame) -> go.Figure:
    title = "Raw vs length-controlled win rate"
    if lc.empty:
        return _empty(title)
    coef = lc.attrs.get("length_coef", float("nan"))
    fig = go.Figure([go.Bar(name="raw", x=lc["model"], y=lc["raw_win_rate"]),
                     go.Bar(name="length-controlled", x=lc["model"], y=lc["lc_win_rate"])])
    return fig.update_layout(title=f"{title} (length coefficient {coef:.2f})", barmode="group",
                             yaxis_title="win rate", yaxis_range=[0, 1])


def style_control_figure(sc: pd.DataFrame) -> go.Figure:
    title = "Raw vs style-controlled Bradley-Terry rating"
    if sc.empty:
        return _empty(title)
    coefs = ", ".join(f"{k} {v:+.2f}" for k, v in sc.attrs.get("coefficients", {}).items()) or "no style feature varies"
    fig = go.Figure([go.Bar(name="raw", x=sc["model"], y=sc["raw_rating"]),
                     go.Bar(name="style-controlled", x=sc["model"], y=sc["rating"])])
    return fig.update_layout(title=f"{title} (coefficients: {coefs})", barmode="group", yaxis_title="rating")


def agreement_figure(matrix: pd.DataFrame) -> go.Figure:
    return _heatmap(matrix, "Agreement between raters (Cohen's kappa)", "%{z:.2f}", "RdBu",
                    "%{y} vs %{x}: kappa %{z:.2f}", zmid=0.0)


@dataclass
class Dashboard:
    """All results for one filtered battle table, and their figures keyed by ``FIGURE_IDS``."""

    table: pd.DataFrame
    agreement: dict
    length: pd.DataFrame
    figures: dict[str, go.Figure] = field(default_factory=dict)
    style: pd.DataFrame = field(default_factory=pd.DataFrame)  # style_control.style_control (point estimates)
    paper: dict[str, pd.DataFrame] = field(default_factory=dict)  # paper_views.paper_tables
    agreement_by_language: pd.DataFrame = field(default_factory=pd.DataFrame)  # agreement.human_judge_by


# the paper views and human-judge agreement as display tables (``paper_view_tables``), with the digits they show
PAPER_VIEW_DIGITS = {"score_averages": 2, "scores_by_language": 2, "scores_by_category": 2, "wins_by_language": 0,
                     "wins_by_category": 0, "agreement_by_language": 3}


def paper_view_tables(dash: Dashboard) -> dict[str, pd.DataFrame]:
    """The paper views of ``dash`` as tables, keyed and ordered as ``PAPER_VIEW_DIGITS`` (the HTML report and the
    Leaderboard both show these): average judge score overall; per language and per category (one row per
    language or category, one column per model); win / tie / loss per language and per category; human-judge
    agreement per language. Empty (``{}``) when no battle is between two different models."""
    p = dash.paper
    if not p or p["win_tie_loss"].empty:
        return {}
    out = {"score_averages": p["score_averages"]}
    for by in ("language", "category"):
        wide = paper_views.pivot(p[f"scores_by_{by}"], by, "mean_score")
        out[f"scores_by_{by}"] = wide.rename_axis(columns=None).reset_index() if not wide.empty else wide
    out.update({f"wins_by_{by}": p[f"wins_by_{by}"] for by in ("language", "category")})
    out["agreement_by_language"] = dash.agreement_by_language
    return out


def dashboard(df: pd.DataFrame, *, method: str = "bt", rounds: int = 100, seed: int = 0, ties: str = "half",
              both_bad: str = "tie", calls: pd.DataFrame | None = None, **rating: float) -> Dashboard:
    """Compute every leaderboard result for ``df`` (already filtered) and build the figures.

    ``calls``: the judges' per-call rows (the store's ``load_battles(..., merge_orders=False)``, filtered alike),
    from which position consistency is computed when ``df`` holds order-merged verdicts; ``rating``: ``prior`` /
    ``min_battles`` for ``ratings.compute_ratings``.
    """
    df = validate_battles(df)
    table = ratings.compute_ratings(df, method=method, rounds=rounds, seed=seed, ties=ties, both_bad=both_bad,
                                    **rating)
    order = table["model"].tolist() or None
    scored = bool(df["score_a"].notna().any() or df["score_b"].notna().any())
    if scored:
        lang = paper_views.scores_by(df, "language")
        cat, value, label = paper_views.scores_by(df, "category"), "mean_score", "mean judge score"
    else:  # human-only data has no scores: show win rates instead
        lang = paper_views.win_rates_by(df, "language")
        cat, value, label = paper_views.win_rates_by(df, "category"), "win_rate", "win rate"
    lang_matrix = paper_views.pivot(lang, "language", value)
    if order is not None and not lang_matrix.empty:
        lang_matrix = lang_matrix.reindex(columns=[m for m in order if m in lang_matrix.columns])
    agree = agreement.agreement_summary(df, calls=calls) if len(df) or (calls is not None and len(calls)) else {}
    lc = length_control.length_controlled(df, ties=ties, both_bad=both_bad)
    sc = style_control.style_control(df, ties=ties, both_bad=both_bad)
    figs = {
        "ratings": ratings_figure(table, f"{'Bradley-Terry' if method == 'bt' else 'Online Elo'} ratings with 95% CIs"),
        "win_fraction": win_fraction_figure(ratings.win_fraction(df, order)) if len(df) else _empty("Win fraction"),
        "battle_count": battle_count_figure(ratings.battle_counts(df, order)) if len(df) else _empty("Battle count"),
        "language_model": language_model_figure(lang_matrix, label),
        "category_model": category_model_figure(cat, "category", value, label),
        "win_tie_loss": win_tie_loss_figure(paper_views.win_tie_loss(df, both_bad="tie")),
        "length_control": length_control_figure(lc),
        "agreement": agreement_figure(agreement.agreement_matrix(agreement.canonical_votes(df)) if len(df)
                                      else pd.DataFrame()),
        "style_control": style_control_figure(sc),
    }
    by_language = agreement.human_judge_by(df) if len(df) else pd.DataFrame(columns=["language", *agreement.AGREEMENT_BY_COLUMNS])
    return Dashboard(table=table, agreement=agree, length=lc, figures=figs, style=sc,
                     paper=paper_views.paper_tables(df), agreement_by_language=by_language)
