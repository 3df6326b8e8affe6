"""The battle table: every human vote and every (order-merged) judge verdict as one DataFrame.

Contract (shared with the ratings code): columns ``battle_id, question_id, model_a, model_b, winner, source,
annotator, language, category, tstamp, score_a, score_b, len_a, len_b, judge_prompt`` plus ``pair_key``, ``kind``
(blind | named | annotation for votes, from the battle's mode; judge for verdicts) and ``ordering`` (ab | ba on
per-call judge rows, else None). A question stored without an id gets one derived from its text
(``battle_table.question_key``), so votes on the same question still group into one agreement item.

Judge rules: a pair is judged in both orders (``ab`` and ``ba``); the merged row's winner is the common verdict,
or ``tie`` when the orders disagree; its scores are the mean of both orders' scores (already in the pair's
a/b terms). Single-answer prompts grade a and b separately; the higher score wins, equal scores tie. A pair
whose calls are missing or errored in either order gives no row: errors are never votes. ``pair_key`` is
shared by the calls of one pair under one prompt, judge model and parameter set (None for human votes).

Lineage: ``model_a``/``model_b`` are player names from ``battle_table.lineage_label``: ``name@digest6`` when the
store holds that name with more than one weight digest (an adapter retrained under the same name), else ``name``.
The ``model`` filter accepts either form.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from eval_studio.battle_table import STYLE_COLUMNS, KIND_OF_MODE, lineage_label, names_with_many_digests, question_key
from eval_studio.store.db import make_engine, read_session
from eval_studio.battle_table import markdown_counts
from eval_studio.store.models import (
    AnnotationPair,
    AnnotationTask,
    Annotator,
    Battle,
    Judgment,
    Vote,
)

COLUMNS = [
    "battle_id", "question_id", "model_a", "model_b", "winner", "source", "annotator", "language", "category",
    "tstamp", "score_a", "score_b", "len_a", "len_b", "judge_prompt", "pair_key", "kind", "ordering", *STYLE_COLUMNS,
]


def _style(answer_a: str, answer_b: str) -> dict[str, int]:
    """Both answers' markdown counts as battle-table columns (headers_a, ..., bold_b), for style control."""
    a, b = markdown_counts(answer_a), markdown_counts(answer_b)
    return {**{f"{k}_a": v for k, v in a.items()}, **{f"{k}_b": v for k, v in b.items()}}
FILTERS = ("source", "language", "category", "model", "annotator", "mode", "task", "judge_prompt", "judge_model", "since", "until", "merge_orders")


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _ts(value: Any) -> datetime | None:
    if value is None:
        return None
    t = pd.Timestamp(value)
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).to_pydatetime()


def _many_digests(s) -> set[str]:  # noqa: ANN001
    """Names stored with more than one weight digest, over the whole store (labels do not depend on filters)."""
    seen: set[tuple[str, str | None]] = set()
    for table in (Battle, AnnotationPair):
        for side in ("a", "b"):
            name, digest = getattr(table, f"model_{side}"), getattr(table, f"digest_{side}")
            seen.update((m, d) for m, d in s.execute(select(name, digest).where(digest.is_not(None)).distinct()).all())
    return names_with_many_digests(seen)


def _model_names(models: list[str] | None) -> list[str] | None:
    """Stored names to query for a ``model`` filter given as plain names or lineage labels (name@digest6)."""
    return None if models is None else sorted({m for m in models} | {m.rsplit("@", 1)[0] for m in models})


def _keep_model(row: dict[str, Any], plain: tuple[str, str], models: list[str] | None) -> bool:
    return models is None or bool({row["model_a"], row["model_b"], *plain} & set(models))


def _human_rows(s, f: dict[str, Any]) -> list[dict[str, Any]]:  # noqa: ANN001
    q = select(Vote.id, Vote.created, Vote.winner, Annotator.name, Battle).join(Battle, Vote.battle_id == Battle.id).outerjoin(Annotator, Vote.annotator_id == Annotator.id)
    if f["language"]:
        q = q.where(Battle.language.in_(f["language"]))
    if f["category"]:
        q = q.where(Battle.category.in_(f["category"]))
    if f["mode"]:
        q = q.where(Battle.mode.in_(f["mode"]))
    if f["model"]:
        names = _model_names(f["model"])
        q = q.where(Battle.model_a.in_(names) | Battle.model_b.in_(names))
    if f["annotator"]:
        q = q.where(Annotator.name.in_(f["annotator"]))
    if f["task"]:
        q = q.join(AnnotationPair, Battle.pair_id == AnnotationPair.id).join(AnnotationTask).where(AnnotationTask.name.in_(f["task"]))
    if f["since"]:
        q = q.where(Vote.created >= f["since"])
    if f["until"]:
        q = q.where(Vote.created < f["until"])
    rows = []
    many = f["many_digests"]
    for vote_id, created, winner, name, b in s.execute(q.order_by(Vote.id)).all():
        row = {
            "battle_id": f"vote-{vote_id}", "question_id": b.question_id or question_key(b.question),
            "model_a": lineage_label(b.model_a, b.digest_a, many), "model_b": lineage_label(b.model_b, b.digest_b, many),
            "winner": winner, "source": "human", "annotator": name, "language": b.language, "category": b.category,
            "tstamp": created, "score_a": math.nan, "score_b": math.nan, "len_a": len(b.answer_a), "len_b": len(b.answer_b),
            "judge_prompt": None, "pair_key": None, "kind": KIND_OF_MODE[b.mode], "ordering": None,
            **_style(b.answer_a, b.answer_b),
        }
        if _keep_model(row, (b.model_a, b.model_b), f["model"]):
            rows.append(row)
    return rows


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else math.nan


def merge_calls(calls: dict[str, Judgment]) -> tuple[str, float, float] | None:
    """Apply the judge rules to one pair's calls keyed by ordering; None when incomplete."""
    if "ab" in calls and "ba" in calls:
        ab, ba = calls["ab"], calls["ba"]
        if ab.verdict is None or ba.verdict is None:
            return None
        winner = ab.verdict if ab.verdict == ba.verdict else "tie"
        return winner, _mean([ab.score_a, ba.score_a]), _mean([ab.score_b, ba.score_b])
    if "a" in calls and "b" in calls:
        sa, sb = calls["a"].score_a, calls["b"].score_b
        if sa is None or sb is None:
            return None
        return ("a" if sa > sb else "b" if sb > sa else "tie"), float(sa), float(sb)
    return None


def _judge_rows(s, f: dict[str, Any]) -> list[dict[str, Any]]:  # noqa: ANN001
    q = select(Judgment, AnnotationPair).join(AnnotationPair, Judgment.pair_id == AnnotationPair.id).where(Judgment.error.is_(None))
    if f["language"]:
        q = q.where(AnnotationPair.language.in_(f["language"]))
    if f["category"]:
        q = q.where(AnnotationPair.category.in_(f["category"]))
    if f["model"]:
        names = _model_names(f["model"])
        q = q.where(AnnotationPair.model_a.in_(names) | AnnotationPair.model_b.in_(names))
    if f["annotator"] or f["judge_model"]:
        q = q.where(Judgment.judge_model.in_((f["annotator"] or []) + (f["judge_model"] or [])))
    if f["judge_prompt"]:
        q = q.where(Judgment.prompt_name.in_(f["judge_prompt"]))
    if f["task"]:
        q = q.join(AnnotationTask, AnnotationPair.task_id == AnnotationTask.id).where(AnnotationTask.name.in_(f["task"]))
    if f["mode"] and "annotation" not in f["mode"]:
        return []  # judges only see stored pairs (annotation content)
    groups: dict[tuple, dict[str, Judgment]] = defaultdict(dict)
    pairs: dict[int, AnnotationPair] = {}
    for j, p in s.execute(q.order_by(Judgment.id)).all():
        key = (p.id, j.prompt_name, j.prompt_hash, j.judge_model, j.params_hash)
        groups[key][j.ordering] = j  # ordered by id: the latest call of each ordering wins
        pairs[p.id] = p
    rows = []
    many = f["many_digests"]
    for (pair_id, prompt, _phash, judge, params_hash), calls in groups.items():
        p = pairs[pair_id]
        pair_key = f"pair-{pair_id}|{prompt}|{judge}|{params_hash[:12]}"
        base = {
            "question_id": p.question_id or question_key(p.question), "model_a": lineage_label(p.model_a, p.digest_a, many),
            "model_b": lineage_label(p.model_b, p.digest_b, many), "source": "judge", "annotator": judge,
            "language": p.language, "category": p.category, "len_a": len(p.answer_a), "len_b": len(p.answer_b),
            "judge_prompt": prompt, "pair_key": pair_key, "kind": "judge", "ordering": None,
            **_style(p.answer_a, p.answer_b),
        }
        if not _keep_model(base, (p.model_a, p.model_b), f["model"]):
            continue
        if f["merge_orders"]:
            merged = merge_calls(calls)
            if merged is None:
                continue
            winner, sa, sb = merged
            ids = sorted(c.id for c in calls.values())
            tstamp = max(c.created for c in calls.values())
            rows.append({**base, "battle_id": f"judge-{ids[0]}-{ids[-1]}", "winner": winner, "tstamp": tstamp, "score_a": sa, "score_b": sb})
        else:
            for c in calls.values():
                if c.verdict is None:
                    continue  # single-answer gradings have no per-call winner
                rows.append({**base, "battle_id": f"judgment-{c.id}", "winner": c.verdict, "tstamp": c.created, "ordering": c.ordering,
                             "score_a": math.nan if c.score_a is None else c.score_a,
                             "score_b": math.nan if c.score_b is None else c.score_b})
    if f["since"]:
        rows = [r for r in rows if r["tstamp"] >= f["since"]]
    if f["until"]:
        rows = [r for r in rows if r["tstamp"] < f["until"]]
    return rows


def load_battles(db_url: str | Engine, **filters: Any) -> pd.DataFrame:
    """The battle table, optionally filtered.

    Filters (each a value or a list of values): ``source`` (human|judge), ``language``, ``category``, ``model``
    (either side), ``annotator`` (human name, or judge model for judge rows), ``mode`` (named|battle|annotation),
    ``task``, ``judge_prompt``, ``judge_model``; ``since``/``until`` (datetimes, UTC if naive);
    ``merge_orders`` (default True; False gives one row per judge call with the verdict of that order).
    """
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise TypeError(f"unknown battle filter(s): {', '.join(sorted(unknown))}; known: {', '.join(FILTERS)}")
    f: dict[str, Any] = {k: _as_list(filters.get(k)) for k in ("source", "language", "category", "model", "annotator", "mode", "task", "judge_prompt", "judge_model")}
    f["since"], f["until"] = _ts(filters.get("since")), _ts(filters.get("until"))
    f["merge_orders"] = filters.get("merge_orders", True)
    sources = set(f["source"] or ["human", "judge"])
    if not sources <= {"human", "judge"}:
        raise ValueError(f"source must be human and/or judge, got {sorted(sources)}")
    engine, owned = (db_url, False) if isinstance(db_url, Engine) else (make_engine(db_url), True)
    try:
        with read_session(engine) as s:
            f["many_digests"] = _many_digests(s)
            rows = (_human_rows(s, f) if "human" in sources and not f["judge_prompt"] and not f["judge_model"] else [])
            rows += _judge_rows(s, f) if "judge" in sources else []
    finally:
        if owned:
            engine.dispose()
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["tstamp"] = pd.to_datetime(df["tstamp"], utc=True)
    df["score_a"] = df["score_a"].astype(float)
    df["score_b"] = df["score_b"].astype(float)
    for col in ("len_a", "len_b", *STYLE_COLUMNS):
        df[col] = df[col].astype(int)
    for col in ("battle_id", "model_a", "model_b", "winner", "source", "language"):
        df[col] = df[col].astype(object)
    return df.sort_values("tstamp", kind="stable").reset_index(drop=True)
