"""One standalone HTML report of the leaderboard: every chart, the ratings table and the agreement numbers.

plotly.js is inlined once in the page, so the file opens offline; each chart sits in a div whose id is
``fig-<name>`` for every name in ``plots.FIGURE_IDS``. Given benchmark rows (``store.bench.list_bench``), a
``<section id="benchmarks">`` adds the Table-4-like summary (``bench-table``) and one per-language chart per
benchmark (``fig-bench-<task>``), from ``bench_views``.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from plotly.offline import get_plotlyjs

from eval_studio.analysis import bench_views
from eval_studio.analysis.plots import FIGURE_IDS, PAPER_VIEW_DIGITS, Dashboard, dashboard, paper_view_tables

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-bottom: 1.5em; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
section { margin: 2em 0; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
.warning { color: #9a5b00; }
"""


def json_safe(value: object) -> object:
    """JSON-safe: NaN becomes null (plain ``json`` would write the invalid token NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _table_html(table: pd.DataFrame, table_id: str = "ratings-table", empty: str = "No battles match.",
                digits: int = 1) -> str:
    if table.empty:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = []
    for rec in table.itertuples(index=False):
        cells = []
        for v in rec:
            if v is None or v is pd.NA:
                cells.append('<td class="num">&ndash;</td>')
            elif isinstance(v, (float, np.floating)):
                cells.append(f'<td class="num">{"&ndash;" if math.isnan(v) else f"{v:.{digits}f}"}</td>')
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                cells.append(f'<td class="num">{v}</td>')
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _chart_html(fig, div_id: str, name: str) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, default_width="100%", default_height="520px")
    return f'<section class="chart" data-figure="{html.escape(name)}">{div}</section>'


def bench_section(bench: list[dict] | None) -> str:
    """The benchmark part of the report: Table 4 and a per-language chart per benchmark ("" without results)."""
    frame = bench_views.bench_frame(bench or [])
    if frame.empty:
        return ""
    charts = "".join(_chart_html(bench_views.language_figure(frame, task), f"fig-bench-{task}", f"bench-{task}")
                     for task in bench_views.bench_tasks(frame))
    note = ("Zero-shot, from <code>bactrian bench</code> results ingested with <code>bactrian studio import-bench</code>; "
            "averages are unweighted means over languages (%), newest run per model variant and benchmark. Rows "
            "whose source is the paper are the paper's reported numbers, not measured here: "
            + html.escape(bench_views.paper_reference()["citation"]) + ".")
    table = bench_views.table4(frame, reference=True)
    return (f'<section id="benchmarks"><h2>Benchmarks</h2><p class="meta">{note}</p>'
            f'{_table_html(table, "bench-table", "No benchmark results.", 2)}{charts}</section>')


# paper_view_tables' names -> (table id, heading, note, text when empty)
_PAPER_HTML = {
    "score_averages": ("paper-score_averages", "Average judge score", "", "No judge scores."),
    "scores_by_language": ("paper-scores-by-language", "Average score per language", "", "No judge scores."),
    "scores_by_category": ("paper-scores-by-category", "Average score per category", "", "No judge scores."),
    "wins_by_language": ("paper-wins-by-language", "Win / tie / loss per language", "", "No judge scores."),
    "wins_by_category": ("paper-wins-by-category", "Win / tie / loss per category", "", "No judge scores."),
    "agreement_by_language": (
        "agreement-by-language", "Human-judge agreement per language",
        "Items labelled by both people and a judge (e.g. arena battles judged with "
        "<code>bactrian studio judge --source battles</code>).", "No item has both a human vote and a judge verdict."),
}


def paper_section(dash: Dashboard) -> str:
    """The paper's views (average judge score overall, per language and category; win / tie / loss per language
    and category), human-judge agreement per language, and style control, as tables."""
    tables = paper_view_tables(dash)
    if not tables:
        return ""
    parts = ['<section id="paper-views"><h2>Paper views</h2><p class="meta">Judge scores (0-10) are averaged '
             "over every verdict a model received (both answer orders merged); win / tie / loss counts every battle "
             "that matches the filters.</p>"]
    for name, (table_id, title, note, empty) in _PAPER_HTML.items():
        note = f'<p class="meta">{note}</p>' if note else ""
        parts.append(f"<h3>{title}</h3>{note}{_table_html(tables[name], table_id, empty, PAPER_VIEW_DIGITS[name])}")
    sc = dash.style
    coefs = ", ".join(f"{k} {v:+.3f}" for k, v in sc.attrs.get("coefficients", {}).items()) or "none"
    parts.append(f"<h3>Style control</h3><p class=\"meta\">Bradley-Terry with answer length and markdown counts as "
                 f"covariates (Chatbot Arena's method), beside the raw fit of the same battles; coefficients: "
                 f"{html.escape(coefs)}.</p>{_table_html(sc, 'style-control-table', 'No battles.')}</section>")
    return "".join(parts)


def render_report(df: pd.DataFrame, *, title: str = "Bactrian-X Studio leaderboard", filters: str = "",
                  method: str = "bt", rounds: int = 100, seed: int = 0, ties: str = "half", both_bad: str = "tie",
                  bench: list[dict] | None = None, calls: pd.DataFrame | None = None, **rating: float) -> str:
    """The report as an HTML string; ``bench``: rows of the ``benchmark_runs`` table, if any; ``calls``: the
    judges' per-call rows (position consistency); ``rating``: ``prior`` / ``min_battles`` for the ratings."""
    dash = dashboard(df, method=method, rounds=rounds, seed=seed, ties=ties, both_bad=both_bad, calls=calls, **rating)
    charts = [_chart_html(dash.figures[name], f"fig-{name}", name) for name in FIGURE_IDS]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"{len(df)} battles &middot; {'Bradley-Terry' if method == 'bt' else 'online Elo'}, {rounds} bootstrap "
            f"rounds (seed {seed}), ties: {html.escape(ties)}, both bad: {html.escape(both_bad)}"
            + (f" &middot; filters: {html.escape(filters)}" if filters else "") + f" &middot; {stamp}")
    agreement = html.escape(json.dumps(json_safe(dash.agreement), indent=2, ensure_ascii=False))
    warnings = "".join(f'<p class="warning">Warning: {html.escape(w)}</p>' for w in dash.agreement.get("warnings", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1><div class="meta">{meta}</div>
<section><h2>Ratings</h2>{_table_html(dash.table)}</section>
{"".join(charts)}
{paper_section(dash)}
{bench_section(bench)}
<section><h2>Agreement</h2>{warnings}<pre id="agreement-json">{agreement}</pre></section>
</body></html>
"""


def write_report(df: pd.DataFrame, path: str | Path, **kwargs) -> Path:
    """Write the standalone report to ``path`` (parent folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(df, **kwargs)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)  # never leave a half-written report behind
    return out
