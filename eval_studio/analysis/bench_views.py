"""Benchmark views over the ``benchmark_runs`` table: a Table-4-like summary and per-language charts.

The rows are what ``store.bench.list_bench`` returns (``bactrian bench`` results ingested with
``bactrian studio import-bench``). The Leaderboard tab and the HTML report both build on these functions.

- ``bench_frame(rows)``: one row per benchmark, language and model variant, from the newest run of that variant
  and benchmark (a later run of the same variant replaces an earlier one, e.g. a full run after a ``--limit`` one).
  Task names are normalised to the benchmark (``bactrian_xcopa_et`` or ``xcopa_et`` -> ``xcopa``), so results
  ingested from lm-eval's own files line up with ``bactrian bench`` ones.
- ``table4(frame)``: model variants as rows, benchmark averages (unweighted mean over languages, %) as columns,
  then how many languages and items each row rests on (a ``--limit 100`` run and a full test set look alike
  otherwise).
- ``language_figure(frame, task)``: grouped bars per language, one bar per variant, its average as a dashed line.
- ``reference=True`` (``table4``, ``bench_view``): the paper's own Table 4 rows follow the project's, with a
  ``source`` column saying whose numbers each row holds (``data/paper_table4.json``, typed in with its citation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd
import plotly.graph_objects as go

BENCHMARKS = ("xcopa", "xstorycloze", "xwinograd", "sentimentx")  # Table 4's column order; others follow
PRIMARY_METRIC = {"sentimentx": "f1"}  # every other benchmark reports accuracy
_COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880")  # plotly's
_COLUMNS = ["variant", "model", "adapter", "task", "language", "metric", "value", "stderr", "n", "run_id", "created"]


def variant_label(model: str, adapter: str | None) -> str:
    """How a model row is labelled: the base, or ``base + adapter``."""
    return f"{model} + {adapter}" if adapter else model


def benchmark_of(task: str, language: str = "") -> str:
    """``bactrian_xcopa_hub_et`` / ``xcopa_et`` / ``xcopa`` -> ``xcopa`` (the language suffix needs ``language``)."""
    name = task.removeprefix("bactrian_")
    if language and name.endswith(f"_{language}"):
        name = name[: -len(language) - 1]
    return name.removesuffix("_hub")


def bench_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per-language results of the newest run per (variant, benchmark), in each benchmark's primary metric."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame(columns=_COLUMNS)
    df = df.copy()
    df["adapter"] = df["adapter"].fillna("").astype(str)
    df["language"] = df["language"].fillna("").astype(str)
    df["task"] = [benchmark_of(t, lang) for t, lang in zip(df["task"], df["language"])]
    df = df[~df["language"].isin(["", "avg"])]  # group rows and averages are recomputed, never stored twice
    df["variant"] = [variant_label(m, a) for m, a in zip(df["model"], df["adapter"])]
    if "created" not in df.columns:
        df["created"] = ""
    keep = []
    for (_variant, task), g in df.groupby(["variant", "task"], sort=False):
        metrics = set(g["metric"])
        want = PRIMARY_METRIC.get(task, "acc")
        g = g[g["metric"] == (want if want in metrics else sorted(metrics)[0])]
        newest = g.sort_values(["created", "run_id"]).iloc[-1]["run_id"]
        keep.append(g[g["run_id"] == newest])
    if not keep:
        return pd.DataFrame(columns=_COLUMNS)
    out = pd.concat(keep, ignore_index=True)
    for column in ("stderr", "n"):
        if column not in out.columns:
            out[column] = None
    return out[_COLUMNS].sort_values(["task", "variant", "language"], ignore_index=True)


def _task_order(tasks: Iterable[str]) -> list[str]:
    present = set(tasks)
    return [t for t in BENCHMARKS if t in present] + sorted(present - set(BENCHMARKS))


OWN_SOURCE = "this project"


@lru_cache(maxsize=1)
def paper_reference() -> dict[str, Any]:
    """The paper's Table 4 (``data/paper_table4.json``): ``citation``, ``source_label`` and ``rows``."""
    return json.loads(resources.files("eval_studio.data").joinpath("paper_table4.json").read_text("utf-8"))


def reference_rows() -> pd.DataFrame:
    """The paper's Table 4 as rows shaped like ``table4``'s, labelled as the paper's numbers."""
    ref = paper_reference()
    rows = pd.DataFrame(ref["rows"])
    rows["model"] = rows["model"] + " (paper)"
    rows["source"] = ref["source_label"]
    return rows


def with_reference(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a ``table4``) with a ``source`` column and the paper's rows after the project's."""
    ref = reference_rows()
    own = table.assign(source=OWN_SOURCE)
    tasks = [t for t in BENCHMARKS if t in own.columns or t in ref.columns]
    tasks += [c for c in own.columns if c not in (*tasks, "model", "languages", "items", "source")]
    out = pd.concat([own, ref], ignore_index=True)
    extra = [c for c in ("languages", "items") if c in out.columns]
    out = out.reindex(columns=["model", *tasks, *extra, "source"])
    for c in extra:
        out[c] = out[c].astype("Int64")
    return out


def table4(frame: pd.DataFrame, digits: int = 1, reference: bool = False) -> pd.DataFrame:
    """Like the paper's Table 4: one row per model variant, one column per benchmark average (%); ``reference``:
    the paper's own rows follow (see ``with_reference``)."""
    if reference:
        return with_reference(table4(frame, digits))
    if frame.empty:
        return pd.DataFrame(columns=["model"])
    avg = frame.groupby(["variant", "task"], sort=False)["value"].mean().mul(100).round(digits)
    wide = avg.unstack("task").reindex(columns=_task_order(frame["task"]))
    variants = list(dict.fromkeys(frame.sort_values(["model", "adapter"])["variant"]))
    wide = wide.reindex(variants)
    languages = frame.groupby(["variant"])["language"].nunique()
    wide.insert(len(wide.columns), "languages", [int(languages.get(v, 0)) for v in wide.index])
    # items scored, only where every row knows its count (lm-eval's own files do not carry one)
    counts = pd.to_numeric(frame["n"], errors="coerce").groupby(frame["variant"]).agg(
        lambda n: int(n.sum()) if n.notna().all() else None)
    wide.insert(len(wide.columns), "items", pd.array([counts.get(v) for v in wide.index], dtype="Int64"))
    return wide.rename_axis(index="model", columns=None).reset_index()


def bench_tasks(frame: pd.DataFrame) -> list[str]:
    return _task_order(frame["task"]) if not frame.empty else []


def language_figure(frame: pd.DataFrame, task: str, title: str | None = None) -> go.Figure:
    """Grouped bars: one group per language, one bar per model variant; each variant's average as a dashed line."""
    rows = frame[frame["task"] == task]
    if rows.empty:
        raise ValueError(f"no results for task {task!r}" + (f" (have: {', '.join(bench_tasks(frame))})" if len(frame) else ""))
    metric = str(rows["metric"].iloc[0])
    languages = sorted(set(rows["language"]))
    fig = go.Figure()
    means: list[tuple[float, str]] = []
    for i, variant in enumerate(dict.fromkeys(rows.sort_values(["model", "adapter"])["variant"])):
        g = rows[rows["variant"] == variant].sort_values("language")
        color = _COLORS[i % len(_COLORS)]
        fig.add_bar(name=variant, x=list(g["language"]), y=list(100 * g["value"]), marker_color=color,
                    hovertemplate=f"{variant}<br>%{{x}}: %{{y:.1f}}<extra></extra>")
        mean = 100 * float(g["value"].mean())
        fig.add_hline(y=mean, line_dash="dash", line_color=color, opacity=0.6)
        means.append((mean, color))
    # the averages are labelled in the right margin, in the bars' colours, pushed apart so that close averages
    # (often within a point of each other) never print on top of one another as line annotations did
    top = max(100 * float(rows["value"].max()), max(m for m, _ in means))
    gap, last = 0.06 * top, None
    for mean, color in sorted(means):
        y = mean if last is None else max(mean, last + gap)
        fig.add_annotation(x=1, xref="paper", xanchor="left", y=y, yref="y", text=f"avg {mean:.1f}", showarrow=False,
                           font={"color": color})
        last = y
    fig.update_layout(barmode="group", title=title or f"{task}: {metric} per language",
                      xaxis={"title": "language", "categoryorder": "array", "categoryarray": languages},
                      yaxis={"title": f"{metric} (%)", "rangemode": "tozero"}, legend_title_text="model",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0}, margin={"r": 80})
    return fig


def empty_figure(why: str = "no benchmark results yet (bactrian bench --out r.json; bactrian studio import-bench r.json)") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title="Benchmarks", xaxis_visible=False, yaxis_visible=False,
                      annotations=[{"text": why, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}])
    return fig


def bench_view(rows: Iterable[dict[str, Any]], task: str | None = None, reference: bool = False
               ) -> tuple[str, pd.DataFrame, go.Figure, list[str]]:
    """(status line, Table 4, chart for ``task`` or the first benchmark, benchmarks present) for the Leaderboard;
    ``reference``: the paper's Table 4 rows follow the project's (labelled in a ``source`` column)."""
    frame = bench_frame(rows)
    tasks = bench_tasks(frame)
    if not tasks:
        return "No benchmark results stored.", table4(frame, reference=reference), empty_figure(), []
    pick = task if task in tasks else tasks[0]
    variants = frame["variant"].nunique()
    status = f"{variants} model variant{'s' if variants != 1 else ''} on {len(tasks)} benchmark{'s' if len(tasks) != 1 else ''}."
    return status, table4(frame, reference=reference), language_figure(frame, pick), tasks
