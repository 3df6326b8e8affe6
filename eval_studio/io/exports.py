"""Exporting the store: votes, judgments, conversations and pairs as JSONL, CSV or a ``datasets`` DatasetDict.

``pairs`` is written in the import-pairs format (with the labels collected so far), so an export can be
imported into another database. Nothing secret is in the store, so nothing secret can be exported.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from eval_studio.store.db import read_session
from eval_studio.store.models import (
    AnnotationPair,
    AnnotationTask,
    Annotator,
    Battle,
    Conversation,
    Judgment,
    Vote,
)
from eval_studio.store.tasks import list_pairs

TABLES = ("votes", "judgments", "conversations", "pairs")
FORMATS = ("jsonl", "csv", "hf")
COLUMNS = {  # fixed so that empty tables still export with their header/schema
    "votes": ["vote_id", "battle_id", "winner", "annotator", "tstamp", "mode", "language", "category", "question_id",
              "question", "model_a", "model_b", "answer_a", "answer_b", "params", "pair_id", "task", "digest_a", "digest_b"],
    "judgments": ["judgment_id", "run_id", "pair_id", "task", "prompt_name", "prompt_hash", "judge_model", "params",
                  "ordering", "raw_output", "verdict", "score_a", "score_b", "error", "cached", "tstamp",
                  "model_a", "model_b", "digest_a", "digest_b"],
    "conversations": ["conversation_id", "annotator", "model", "mode", "language", "params", "tstamp", "turns"],
    "pairs": ["id", "question", "answer_a", "answer_b", "model_a", "model_b", "language", "category", "question_id",
              "params", "task", "labels", "digest_a", "digest_b"],
}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def votes_rows(engine: Engine) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        q = (
            select(Vote, Battle, Annotator.name, AnnotationPair.external_id, AnnotationTask.name)
            .join(Battle, Vote.battle_id == Battle.id)
            .outerjoin(Annotator, Vote.annotator_id == Annotator.id)
            .outerjoin(AnnotationPair, Battle.pair_id == AnnotationPair.id)
            .outerjoin(AnnotationTask, AnnotationPair.task_id == AnnotationTask.id)
            .order_by(Vote.id)
        )
        return [
            {"vote_id": v.id, "battle_id": b.id, "winner": v.winner, "annotator": name, "tstamp": _iso(v.created),
             "mode": b.mode, "language": b.language, "category": b.category, "question_id": b.question_id,
             "question": b.question, "model_a": b.model_a, "model_b": b.model_b, "answer_a": b.answer_a,
             "answer_b": b.answer_b, "params": b.params or {}, "pair_id": pair, "task": task,
             "digest_a": b.digest_a, "digest_b": b.digest_b}
            for v, b, name, pair, task in s.execute(q).all()
        ]


def judgments_rows(engine: Engine) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        q = (
            select(Judgment, AnnotationPair, AnnotationTask.name)
            .join(AnnotationPair, Judgment.pair_id == AnnotationPair.id)
            .join(AnnotationTask, AnnotationPair.task_id == AnnotationTask.id)
            .order_by(Judgment.id)
        )
        return [
            {"judgment_id": j.id, "run_id": j.run_id, "pair_id": pair.external_id, "task": task, "prompt_name": j.prompt_name,
             "prompt_hash": j.prompt_hash, "judge_model": j.judge_model, "params": j.params or {},
             "ordering": j.ordering, "raw_output": j.raw_output, "verdict": j.verdict, "score_a": j.score_a,
             "score_b": j.score_b, "error": j.error, "cached": j.cached, "tstamp": _iso(j.created),
             "model_a": pair.model_a, "model_b": pair.model_b, "digest_a": pair.digest_a, "digest_b": pair.digest_b}
            for j, pair, task in s.execute(q).all()
        ]


def conversations_rows(engine: Engine) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        convs = s.scalars(select(Conversation).order_by(Conversation.id)).all()
        return [
            {"conversation_id": c.id, "annotator": c.annotator.name if c.annotator else None, "model": c.model,
             "mode": c.mode, "language": c.language, "params": c.params or {}, "tstamp": _iso(c.created),
             "turns": [{"role": t.role, "content": t.content} for t in c.turns]}
            for c in convs
        ]


def pairs_rows(engine: Engine) -> list[dict[str, Any]]:
    rows = []
    for p in list_pairs(engine):
        rows.append({"id": p.id, "question": p.question, "answer_a": p.answer_a, "answer_b": p.answer_b,
                     "model_a": p.model_a, "model_b": p.model_b, "language": p.language, "category": p.category,
                     "question_id": p.question_id, "params": p.params, "task": p.task,
                     "labels": [{"annotator": lab.annotator, "winner": lab.winner} for lab in p.labels],
                     "digest_a": p.digest_a, "digest_b": p.digest_b})
    return rows


ROWS = {"votes": votes_rows, "judgments": judgments_rows, "conversations": conversations_rows, "pairs": pairs_rows}


def collect(engine: Engine, tables: tuple[str, ...] = TABLES) -> dict[str, list[dict[str, Any]]]:
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(sorted(unknown))}; known: {', '.join(TABLES)}")
    return {t: ROWS[t](engine) for t in tables}


def _flat(value: Any) -> Any:
    """CSV cells: nested values as JSON text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_csv(rows: list[dict[str, Any]], path: Path, fields: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _flat(v) for k, v in row.items()})


def write_hf(tables: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """A DatasetDict with one split per table; free-form ``params`` objects are stored as JSON text so every
    row has the same Arrow schema."""
    from datasets import Dataset, DatasetDict

    splits = {}
    for name, rows in tables.items():
        fixed = [{k: json.dumps(v, ensure_ascii=False, sort_keys=True) if k == "params" else v for k, v in row.items()} for row in rows]
        splits[name] = Dataset.from_list(fixed) if fixed else Dataset.from_dict({c: [] for c in COLUMNS[name]})
    # One shard per split, explicitly: datasets writes zero shards for an empty split and then cannot load it.
    DatasetDict(splits).save_to_disk(str(path), num_shards={name: 1 for name in splits})


def export(engine: Engine, fmt: str, out: str | Path, tables: tuple[str, ...] = TABLES) -> list[Path]:
    """Write the tables under the folder ``out``; returns the paths written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    data = collect(engine, tables)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        write_hf(data, out)
        return [out]
    written = []
    for name, rows in data.items():
        path = out / f"{name}.{fmt}"
        if fmt == "jsonl":
            write_jsonl(rows, path)
        else:
            write_csv(rows, path, COLUMNS[name])
        written.append(path)
    return written
