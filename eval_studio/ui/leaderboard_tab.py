"""The Leaderboard tab: filters, a refresh button, the ratings table and every chart, live from the store.

It only wires the pure functions (``battle_table.filter_battles``, ``plots.dashboard``); ``leaderboard_view`` is
the whole computation behind the button and is testable without a browser. Evidence is filtered by kind (blind
battles, named battles, annotation votes, judge verdicts); the default is blind battles + annotation votes, as the
Arena counts only anonymous votes. Judge verdicts count under one judge prompt per judge model at a time. With ``load_bench`` (rows of the
``benchmark_runs`` table) a Benchmarks section follows: the Table-4-like summary and a per-language chart for the
chosen benchmark (``bench_views.bench_view``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from eval_studio.battle_table import DEFAULT_KINDS, blended_judge_prompts, filter_battles
from eval_studio.bench_views import bench_view
from eval_studio.plots import FIGURE_IDS, dashboard

GROUPS = ["all", "G1", "G2", "G3", "G4"]
KIND_CHOICES = [("Blind battles", "blind"), ("Named battles", "named"), ("Annotation votes", "annotation"),
                ("Judge verdicts", "judge")]
_TITLES = {"ratings": "Ratings", "win_fraction": "Win fraction", "battle_count": "Battle count",
           "language_model": "Language x model", "category_model": "Category x model",
           "win_tie_loss": "Win / tie / loss", "length_control": "Length-controlled win rate",
           "agreement": "Agreement"}


def _choices(df: pd.DataFrame, col: str) -> list[str]:
    return sorted(str(v) for v in df[col].dropna().unique()) if col in df.columns else []


def leaderboard_view(df: pd.DataFrame, *, languages: list[str] | None = None, group: str = "all",
                     categories: list[str] | None = None, source: str = "both", annotators: list[str] | None = None,
                     since: str = "", until: str = "", method: str = "bt", rounds: int = 100,
                     ties: str = "half", kinds: list[str] | tuple[str, ...] | None = DEFAULT_KINDS,
                     judge_prompts: list[str] | None = None, calls: pd.DataFrame | None = None,
                     min_battles: int | None = None) -> tuple[str, pd.DataFrame, dict[str, Any]]:
    """(status line, ratings table, figures by id) for the battles matching the filters.

    ``kinds``: kinds of evidence counted (default blind battles + annotation votes; None: all); ``calls``: the
    judges' per-call rows (``load_battles(..., source="judge", merge_orders=False)``) for position consistency.
    """
    filters = dict(language=languages or None, group=None if group in ("", "all") else group,
                   category=categories or None, annotator=annotators or None, since=since.strip() or None,
                   until=until.strip() or None, kind=list(kinds) if kinds is not None else None,
                   judge_prompt=judge_prompts or None)
    rows = filter_battles(df, source=source, **filters)
    blended = blended_judge_prompts(rows)
    if blended:
        which = "; ".join(f"{j}: {', '.join(p)}" for j, p in sorted(blended.items()))
        raise ValueError(f"judge verdicts from several judge prompts ({which}): choose one judge prompt")
    per_call = None if calls is None else filter_battles(calls, source=source, **filters)
    rating = {} if min_battles is None else {"min_battles": int(min_battles)}
    dash = dashboard(rows, method=method, rounds=int(rounds), ties=ties, calls=per_call, **rating)
    table = dash.table.round({"rating": 1, "lower": 1, "upper": 1})
    status = f"{len(rows)} of {len(df)} battles match; {len(table)} models."
    if len(table) and table["provisional"].any():
        status += f" {int(table['provisional'].sum())} provisional (few battles; shrunk towards 1000 by the prior)."
    pc = dash.agreement.get("position_consistency", {})
    if pc.get("n_pairs"):
        status += (f" Judge position consistency {pc['consistency']:.3f} over {pc['n_pairs']} both-order pairs"
                   f" (biased to first {pc['biased_to_first']:.3f}, to second {pc['biased_to_second']:.3f}).")
    for warning in dash.agreement.get("warnings", []):
        status += f" Warning: {warning}."
    return status, table, dash.figures


def build_leaderboard_tab(load_battles: Callable[..., pd.DataFrame],
                          load_bench: Callable[[], list[dict[str, Any]]] | None = None,
                          load_calls: Callable[[], pd.DataFrame] | None = None) -> None:
    """Add the Leaderboard UI to the enclosing ``gr.Blocks`` / ``gr.Tab``; ``load_battles()`` reads the table,
    ``load_bench()`` (optional) the stored benchmark results, ``load_calls()`` (optional) the judges' per-call
    rows for position consistency."""
    with gr.Row():
        languages = gr.Dropdown(label="Languages", multiselect=True, choices=[], value=[])
        group = gr.Dropdown(label="Language group (paper)", choices=GROUPS, value="all")
        categories = gr.Dropdown(label="Categories", multiselect=True, choices=[], value=[])
        annotators = gr.Dropdown(label="Annotators / judges", multiselect=True, choices=[], value=[])
    with gr.Row():
        kinds = gr.CheckboxGroup(KIND_CHOICES, value=list(DEFAULT_KINDS), label="Evidence",
                                 elem_id="leaderboard-kinds")
        prompts = gr.Dropdown(label="Judge prompt (one per judge)", multiselect=True, choices=[], value=[])
        min_battles = gr.Number(value=10, precision=0, minimum=0, label="Provisional below (battles)")
    with gr.Row():
        since = gr.Textbox(label="Since (UTC date)", placeholder="2024-05-01")
        until = gr.Textbox(label="Until (UTC date, inclusive)", placeholder="2024-06-30")
        method = gr.Radio([("Bradley-Terry", "bt"), ("Online Elo", "elo")], value="bt", label="Rating")
        ties = gr.Radio([("half a win", "half"), ("dropped", "drop")], value="half", label="Ties")
        rounds = gr.Number(value=100, precision=0, minimum=0, maximum=1000, label="Bootstrap rounds")
    refresh = gr.Button("Refresh", variant="primary", elem_id="leaderboard-refresh")
    status = gr.Markdown(elem_id="leaderboard-status")
    table = gr.Dataframe(label="Leaderboard", interactive=False, elem_id="leaderboard-table")
    plots = [gr.Plot(label=_TITLES[name], elem_id=f"leaderboard-{name}") for name in FIGURE_IDS]

    def update(langs, grp, cats, anns, kinds_, prompts_, min_, since_, until_, meth, ties_, rounds_):
        try:
            df = load_battles()
            text, tab, figs = leaderboard_view(df, languages=langs, group=grp, categories=cats, kinds=kinds_ or [],
                                               judge_prompts=prompts_, annotators=anns, since=since_ or "",
                                               until=until_ or "", method=meth, rounds=int(rounds_ or 0), ties=ties_,
                                               calls=load_calls() if load_calls is not None else None,
                                               min_battles=int(min_ or 0))
        except (ValueError, TypeError, KeyError, OSError) as e:  # bad filter values: say so, keep the old view
            raise gr.Error(str(e)) from e
        pick = [gr.update(choices=_choices(df, c)) for c in ("language", "category", "annotator", "judge_prompt")]
        return [*pick, text, tab, *(figs[name] for name in FIGURE_IDS)]

    inputs = [languages, group, categories, annotators, kinds, prompts, min_battles, since, until, method, ties, rounds]
    outputs = [languages, categories, annotators, prompts, status, table, *plots]
    refresh.click(update, inputs=inputs, outputs=outputs)
    # also fill the tab when the page opens (no inputs: fires on load only, with the default filters)
    gr.on(triggers=None, fn=lambda: update([], "all", [], [], list(DEFAULT_KINDS), [], 10, "", "", "bt", "half", 100),
          inputs=[], outputs=outputs)
    if load_bench is not None:
        _bench_section(load_bench, refresh)


def _bench_section(load_bench: Callable[[], list[dict[str, Any]]], refresh: Any) -> None:
    """Benchmarks (zero-shot, ``bactrian bench`` + ``bactrian studio import-bench``): Table 4 and a chart."""
    gr.Markdown("### Benchmarks (zero-shot; averages over languages, %)")
    status = gr.Markdown(elem_id="leaderboard-bench-status")
    task = gr.Dropdown(label="Benchmark", choices=[], value=None, elem_id="leaderboard-bench-task")
    table = gr.Dataframe(label="Benchmarks (paper Table 4)", interactive=False, elem_id="leaderboard-bench-table")
    plot = gr.Plot(label="Per language", elem_id="leaderboard-bench-chart")

    def update(chosen):
        try:
            text, tab, fig, tasks = bench_view(load_bench(), chosen)
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise gr.Error(str(e)) from e
        return text, gr.update(choices=tasks, value=chosen if chosen in tasks else (tasks[0] if tasks else None)), tab, fig

    outputs = [status, task, table, plot]
    refresh.click(update, inputs=[task], outputs=outputs)
    task.input(update, inputs=[task], outputs=outputs)
    gr.on(triggers=None, fn=lambda: update(None), inputs=[], outputs=outputs)
