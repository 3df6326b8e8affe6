"""One standalone HTML report of the leaderboard: every chart, the ratings table and the agreement numbers.

plotly.js is inlined once in the page, so the file opens offline; each chart sits in a div whose id is
``fig-<name>`` for every name in ``plots.FIGURE_IDS``.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs

from eval_studio.plots import FIGURE_IDS, dashboard

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-bottom: 1.5em; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
section { margin: 2em 0; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
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


def _table_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>No battles match.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = []
    for rec in table.itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, float):
                cells.append(f'<td class="num">{v:.1f}</td>')
            elif isinstance(v, int):
                cells.append(f'<td class="num">{v}</td>')
            else:
                cells.append(f"<td>{html.escape(str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="ratings-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_report(df: pd.DataFrame, *, title: str = "Bactrian-X Studio leaderboard", filters: str = "",
                  method: str = "bt", rounds: int = 100, seed: int = 0, ties: str = "half", both_bad: str = "tie") -> str:
    """The report as an HTML string."""
    dash = dashboard(df, method=method, rounds=rounds, seed=seed, ties=ties, both_bad=both_bad)
    charts = []
    for name in FIGURE_IDS:
        div = dash.figures[name].to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                                          default_width="100%", default_height="520px")
        charts.append(f'<section class="chart" data-figure="{name}">{div}</section>')
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"{len(df)} battles &middot; {'Bradley-Terry' if method == 'bt' else 'online Elo'}, {rounds} bootstrap "
            f"rounds (seed {seed}), ties: {html.escape(ties)}, both bad: {html.escape(both_bad)}"
            + (f" &middot; filters: {html.escape(filters)}" if filters else "") + f" &middot; {stamp}")
    agreement = html.escape(json.dumps(json_safe(dash.agreement), indent=2, ensure_ascii=False))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1><div class="meta">{meta}</div>
<section><h2>Ratings</h2>{_table_html(dash.table)}</section>
{"".join(charts)}
<section><h2>Agreement</h2><pre id="agreement-json">{agreement}</pre></section>
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
