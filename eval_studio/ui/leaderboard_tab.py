"""The Leaderboard tab: filters, a refresh button, the ratings table and every chart, live from the store.

It only wires the pure functions (``battle_table.filter_battles``, ``plots.dashboard``); ``leaderboard_data`` is
the whole computation behind the button (``leaderboard_view``: its status, ratings and figures) and is testable
without a browser, as is ``bench_updates`` for the Benchmarks section. Evidence is filtered by kind (blind
battles, named battles, annotation votes, judge verdicts); the default is blind battles + annotation votes, as the
Arena counts only anonymous votes. Judge verdicts count under one judge prompt per judge model at a time. Below the
charts: style control (ratings with answer length and markdown counts as covariates, beside the raw fit), the
paper's views (average judge score overall / per language / per category, win / tie / loss per language and
category) and human-judge agreement per language, as tables, from ``plots.paper_view_tables`` as in the HTML
report. With ``load_bench`` (rows of the ``benchmark_runs`` table) a Benchmarks section follows: the Table-4-like
summary with the paper's own Table 4 rows after the project's (labelled in its ``source`` column) and a
per-language chart for the chosen benchmark (``bench_views.bench_view``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from eval_studio.battle_table import DEFAULT_KINDS, blended_judge_prompts, filter_battles
from eval_studio.analysis.bench_views import OWN_SOURCE, bench_view, paper_reference
from eval_studio.analysis.plots import FIGURE_IDS, PAPER_VIEW_DIGITS, dashboard, paper_view_tables
from eval_studio.ui.common import Translator
from eval_studio.ui.text import t

GROUPS = ["all", "G1", "G2", "G3", "G4"]
KINDS = ("blind", "named", "annotation", "judge")
SCORE_TABLES = ("score_averages", "scores_by_language", "scores_by_category")  # empty without judge scores


@dataclass
class LeaderboardData:
    """Everything the Leaderboard shows for one set of filters (``leaderboard_data``)."""

    status: str  # one line: battles matched, provisional models, judge position consistency, warnings
    table: pd.DataFrame  # the ratings
    figures: dict[str, Any]  # by id: ``FIGURE_IDS``
    style: pd.DataFrame = field(default_factory=pd.DataFrame)  # style-controlled ratings beside the raw fit
    paper: dict[str, pd.DataFrame] = field(default_factory=dict)  # ``plots.paper_view_tables``, rounded


def _choices(df: pd.DataFrame, col: str) -> list[str]:
    return sorted(str(v) for v in df[col].dropna().unique()) if col in df.columns else []


def leaderboard_view(df: pd.DataFrame, **filters: Any) -> tuple[str, pd.DataFrame, dict[str, Any]]:
    """(status line, ratings table, figures by id) for the battles matching the filters (``leaderboard_data``)."""
    data = leaderboard_data(df, **filters)
    return data.status, data.table, data.figures


def leaderboard_data(df: pd.DataFrame, *, languages: list[str] | None = None, group: str = "all",
                     categories: list[str] | None = None, source: str = "both", annotators: list[str] | None = None,
                     since: str = "", until: str = "", method: str = "bt", rounds: int = 100,
                     ties: str = "half", kinds: list[str] | tuple[str, ...] | None = DEFAULT_KINDS,
                     judge_prompts: list[str] | None = None, calls: pd.DataFrame | None = None,
                     min_battles: int | None = None, lang: str = "en") -> LeaderboardData:
    """Status line, ratings, figures, style control and the paper's tables for the battles matching the filters.

    ``kinds``: kinds of evidence counted (default blind battles + annotation votes; None: all); ``calls``: the
    judges' per-call rows (``load_battles(..., source="judge", merge_orders=False)``) for position consistency;
    ``lang``: the UI language of the status line.
    """
    filters = dict(language=languages or None, group=None if group in ("", "all") else group,
                   category=categories or None, annotator=annotators or None, since=(since or "").strip() or None,
                   until=(until or "").strip() or None, kind=list(kinds) if kinds is not None else None,
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
    status = [t("lb_status", lang, n=len(rows), total=len(df), models=len(table))]
    if len(table) and table["provisional"].any():
        status.append(t("lb_provisional", lang, n=int(table["provisional"].sum())))
    pc = dash.agreement.get("position_consistency", {})
    if pc.get("n_pairs"):
        status.append(t("lb_position", lang, consistency=pc["consistency"], pairs=pc["n_pairs"],
                        first=pc["biased_to_first"], second=pc["biased_to_second"]))
    status += [t("lb_warning", lang, warning=w) for w in dash.agreement.get("warnings", [])]
    style = dash.style.round({c: 1 for c in ("rating", "lower", "upper", "raw_rating", "delta")})
    paper = {name: frame.round(PAPER_VIEW_DIGITS[name]) for name, frame in paper_view_tables(dash).items()}
    return LeaderboardData(" ".join(status), table, dash.figures, style, paper)


def _paper_outputs(tables: dict[str, pd.DataFrame], lang: str) -> list[Any]:
    """The paper-view note and one update per ``PAPER_VIEW_DIGITS`` table: a table without rows is hidden, and the
    note says why in one line instead."""
    missing = []
    if all(tables.get(name, pd.DataFrame()).empty for name in SCORE_TABLES):
        missing.append(t("lb_paper_no_scores", lang))
    if tables.get("agreement_by_language", pd.DataFrame()).empty:
        missing.append(t("lb_agreement_none", lang))
    shown = [gr.update(value=tables[name], visible=True) if name in tables and not tables[name].empty
             else gr.update(visible=False) for name in PAPER_VIEW_DIGITS]
    return [gr.update(value=" ".join(missing), visible=bool(missing)), *shown]


def _date(value: Any) -> str:
    """A date picker's value (None, a "YYYY-MM-DD..." string or a timestamp) as the filters' "YYYY-MM-DD"."""
    if value in (None, ""):
        return ""
    if isinstance(value, (int, float)):
        import datetime as dt

        return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d")
    return str(value).strip()[:10]


def build_leaderboard_tab(load_battles: Callable[..., pd.DataFrame],
                          load_bench: Callable[[], list[dict[str, Any]]] | None = None,
                          load_calls: Callable[[], pd.DataFrame] | None = None, *,
                          tr: Translator | None = None, ui_lang: Any = None, lang: str = "en") -> None:
    """Add the Leaderboard UI to the enclosing ``gr.Blocks`` / ``gr.Tab``; ``load_battles()`` reads the table,
    ``load_bench()`` (optional) the stored benchmark results, ``load_calls()`` (optional) the judges' per-call
    rows for position consistency. ``tr``/``ui_lang``: the app's translator and UI-language radio (labels follow
    the language, and a switch recomputes the status lines in it)."""
    tr = tr or Translator()  # alone (tests, notebooks): labels in ``lang``, never switched
    kinds_of = lambda lg: [(t(f"kind_{k}", lg), k) for k in KINDS]  # noqa: E731
    groups_of = lambda lg: [(t("lb_all", lg), "all"), *((g, g) for g in GROUPS[1:])]  # noqa: E731
    methods_of = lambda lg: [("Bradley-Terry", "bt"), (t("lb_elo", lg), "elo")]  # noqa: E731
    ties_of = lambda lg: [(t("lb_half", lg), "half"), (t("lb_drop", lg), "drop")]  # noqa: E731
    # the filters fold away: closed, the tab opens on the ratings (or on one line saying there are none yet)
    with tr.add(gr.Accordion(t("lb_filters", lang), open=False, elem_id="leaderboard-filters"), label="lb_filters"):
        with gr.Row():
            languages = tr.add(gr.Dropdown(label=t("lb_languages", lang), multiselect=True, choices=[], value=[]),
                               label="lb_languages")
            group = tr.add(gr.Dropdown(label=t("lb_group", lang), choices=groups_of(lang), value="all"),
                           label="lb_group", choices=groups_of)
            categories = tr.add(gr.Dropdown(label=t("lb_categories", lang), multiselect=True, choices=[], value=[]),
                                label="lb_categories")
            annotators = tr.add(gr.Dropdown(label=t("lb_annotators", lang), multiselect=True, choices=[], value=[]),
                                label="lb_annotators")
        with gr.Row():
            kinds = tr.add(gr.CheckboxGroup(kinds_of(lang), value=list(DEFAULT_KINDS), label=t("lb_evidence", lang),
                                            elem_id="leaderboard-kinds"), label="lb_evidence", choices=kinds_of)
            prompts = tr.add(gr.Dropdown(label=t("lb_judge_prompt", lang), multiselect=True, choices=[], value=[]),
                             label="lb_judge_prompt")
            min_battles = tr.add(gr.Number(value=10, precision=0, minimum=0, label=t("lb_min_battles", lang)),
                                 label="lb_min_battles")
        with gr.Row():
            # date pickers, empty until chosen: a placeholder date in a text box read as a filter already set
            since = tr.add(gr.DateTime(include_time=False, type="string", label=t("lb_since", lang),
                                       elem_id="leaderboard-since"), label="lb_since")
            until = tr.add(gr.DateTime(include_time=False, type="string", label=t("lb_until", lang),
                                       elem_id="leaderboard-until"), label="lb_until")
            method = tr.add(gr.Radio(methods_of(lang), value="bt", label=t("lb_method", lang)),
                            label="lb_method", choices=methods_of)
            ties = tr.add(gr.Radio(ties_of(lang), value="half", label=t("lb_ties", lang)), label="lb_ties", choices=ties_of)
            rounds = tr.add(gr.Number(value=100, precision=0, minimum=0, maximum=1000, label=t("lb_rounds", lang)),
                            label="lb_rounds")
    refresh = tr.add(gr.Button(t("refresh", lang), variant="primary", elem_id="leaderboard-refresh"), value="refresh")
    status = gr.Markdown(elem_id="leaderboard-status")
    empty = gr.Markdown(visible=False, elem_id="leaderboard-empty")  # the one empty state, instead of 8 empty charts
    with gr.Column(visible=False, elem_id="leaderboard-results") as results:
        table = tr.add(gr.Dataframe(label=t("lb_table", lang), interactive=False, elem_id="leaderboard-table"),
                       label="lb_table")
        plots = [tr.add(gr.Plot(label=t(f"fig_{name}", lang), elem_id=f"leaderboard-{name}"), label=f"fig_{name}")
                 for name in FIGURE_IDS]
        style = tr.add(gr.Dataframe(label=t("lb_style_table", lang), interactive=False,
                                    elem_id="leaderboard-style-table"), label="lb_style_table")
        tr.add(gr.Markdown(t("lb_paper_title", lang), elem_id="leaderboard-paper-title"), value="lb_paper_title")
        paper_note = gr.Markdown(visible=False, elem_id="leaderboard-paper-note")  # says which tables have no data
        paper = [tr.add(gr.Dataframe(label=t(f"lb_paper_{name}", lang), interactive=False,
                                     elem_id=f"leaderboard-paper-{name.replace('_', '-')}"), label=f"lb_paper_{name}")
                 for name in PAPER_VIEW_DIGITS]

    def update(langs, grp, cats, anns, kinds_, prompts_, min_, since_, until_, meth, ties_, rounds_, lg="en"):
        try:
            df = load_battles()
            data = leaderboard_data(df, languages=langs, group=grp, categories=cats, kinds=kinds_ or [],
                                    judge_prompts=prompts_, annotators=anns, since=_date(since_), until=_date(until_),
                                    method=meth, rounds=int(rounds_ or 0), ties=ties_,
                                    calls=load_calls() if load_calls is not None else None,
                                    min_battles=int(min_ or 0), lang=lg)
        except (ValueError, TypeError, KeyError, OSError) as e:  # bad filter values: say so, keep the old view
            raise gr.Error(str(e)) from e
        pick = [gr.update(choices=_choices(df, c)) for c in ("language", "category", "annotator", "judge_prompt")]
        if data.table.empty:  # nothing to rate: one line, no table, no charts
            note = t("lb_empty", lg) if df.empty else t("lb_no_match", lg, total=len(df))
            return [*pick, "", gr.update(value=note, visible=True), gr.update(visible=False),
                    *(gr.skip() for _ in range(3 + len(FIGURE_IDS) + len(paper)))]
        return [*pick, data.status, gr.update(visible=False), gr.update(visible=True), data.table,
                *(data.figures[name] for name in FIGURE_IDS), data.style, *_paper_outputs(data.paper, lg)]

    inputs = [languages, group, categories, annotators, kinds, prompts, min_battles, since, until, method, ties, rounds]
    if ui_lang is not None:
        inputs.append(ui_lang)
    outputs = [languages, categories, annotators, prompts, status, empty, results, table, *plots, style, paper_note,
               *paper]
    refresh.click(update, inputs=inputs, outputs=outputs)
    if ui_lang is not None:  # the status lines are computed text: recompute them in the new language
        ui_lang.change(update, inputs=inputs, outputs=outputs, api_visibility="private")
    # also fill the tab when the page opens (no inputs: fires on load only, with the default filters)
    gr.on(triggers=None, fn=lambda: update([], "all", [], [], list(DEFAULT_KINDS), [], 10, "", "", "bt", "half", 100, lang),
          inputs=[], outputs=outputs)
    if load_bench is not None:
        _bench_section(load_bench, refresh, tr, ui_lang, lang)


def bench_updates(rows: list[dict[str, Any]], chosen: str | None = None, lang: str = "en") -> tuple[Any, ...]:
    """The Benchmarks section's outputs (status line, benchmark picker, Table 4 with the paper's rows, chart) for
    the stored results ``rows``: ``bench_view(..., reference=True)`` shown."""
    said, tab, fig, tasks = bench_view(rows, chosen, reference=True)
    if not tasks:  # one line and the paper's rows, no empty chart
        return (t("bench_empty", lang), gr.update(choices=[], value=None, visible=False),
                gr.update(value=tab, visible=True), gr.update(visible=False))
    own = int((tab["source"] == OWN_SOURCE).sum())
    # bench_view's own line is English with its plurals; other languages get the same numbers translated
    return (said if lang == "en" else t("bench_status", lang, variants=own, n=len(tasks)),
            gr.update(choices=tasks, value=chosen if chosen in tasks else tasks[0], visible=True),
            gr.update(value=tab, visible=True), gr.update(value=fig, visible=True))


def _bench_section(load_bench: Callable[[], list[dict[str, Any]]], refresh: Any, tr: Translator, ui_lang: Any,
                   lang: str) -> None:
    """Benchmarks (zero-shot, ``bactrian bench`` + ``bactrian studio import-bench``): Table 4, the project's rows
    then the paper's (its ``source`` column says whose numbers each row holds), and a chart of the chosen one."""
    tr.add(gr.Markdown(t("bench_title", lang)), value="bench_title")
    status = gr.Markdown(elem_id="leaderboard-bench-status")
    task = tr.add(gr.Dropdown(label=t("bench_task", lang), choices=[], value=None, elem_id="leaderboard-bench-task"),
                  label="bench_task")
    table = tr.add(gr.Dataframe(label=t("bench_table_ref", lang), interactive=False, elem_id="leaderboard-bench-table"),
                   label="bench_table_ref")
    citation = paper_reference()["citation"]
    reference = lambda lg: t("bench_reference", lg, citation=citation)  # noqa: E731
    tr.add(gr.Markdown(reference(lang), elem_id="leaderboard-bench-reference"), value=reference)
    plot = tr.add(gr.Plot(label=t("bench_chart", lang), elem_id="leaderboard-bench-chart"), label="bench_chart")

    def update(chosen, lg="en"):
        try:
            return bench_updates(load_bench(), chosen, lg)
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise gr.Error(str(e)) from e

    inputs = [task] if ui_lang is None else [task, ui_lang]
    outputs = [status, task, table, plot]
    refresh.click(update, inputs=inputs, outputs=outputs)
    task.input(update, inputs=inputs, outputs=outputs)
    if ui_lang is not None:
        ui_lang.change(update, inputs=inputs, outputs=outputs, api_visibility="private")
    gr.on(triggers=None, fn=lambda: update(None, lang), inputs=[], outputs=outputs)
