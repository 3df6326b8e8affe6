"""Annotation tasks: question sets, answer pairs, and assignments with overlap k and no repeats.

``next_pair_for`` hands an annotator a pair they have not seen, among pairs that fewer than k annotators hold
(done, or pending within the lease). It runs in one write transaction (``BEGIN IMMEDIATE`` on SQLite, a row
lock on the task elsewhere) and the ``(pair_id, annotator_id)`` unique constraint backs the no-repeat rule.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from eval_studio.store.db import read_session, transaction
from eval_studio.store.models import (
    AnnotationPair,
    AnnotationTask,
    Annotator,
    Assignment,
    Battle,
    Question,
    QuestionSet,
    Vote,
    utcnow,
)
from eval_studio.store.repo import (
    StoreError,
    battle_fields,
    check_digest,
    check_winner,
    ensure_annotator,
    insert_vote,
    new_battle,
)

DEFAULT_TASK = "default"
LEASE = timedelta(minutes=30)  # a pending assignment older than this no longer blocks other annotators
LOOKUP_CHUNK = 500  # ids per "IN (...)" lookup during bulk imports


@dataclass(frozen=True)
class Label:
    annotator: str
    winner: str


@dataclass(frozen=True)
class PairRecord:
    id: str
    question: str
    answer_a: str
    answer_b: str
    model_a: str
    model_b: str
    language: str
    category: str | None = None
    question_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    labels: tuple[Label, ...] = ()
    task: str | None = None  # where the pair lives (set when read back; used on import when no task is given)
    digest_a: str | None = None  # lineage: model_a's adapter weight digest (Catalog Variant.digest); None: base/unknown
    digest_b: str | None = None


@dataclass(frozen=True)
class QuestionRecord:
    id: str
    language: str
    turns: tuple[str, ...]
    category: str | None = None
    reference: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ImportReport:
    added: int
    unchanged: int
    labels_added: int = 0
    skipped: tuple[str, ...] = ()  # invalid input lines left out ("FILE:LINE: why"), when asked to skip them


@dataclass(frozen=True)
class ShownPair:
    """What the annotate tab shows: the texts in display order. Model names stay hidden until the vote."""

    assignment_id: int
    battle_id: int
    pair_id: str
    task: str
    question: str
    answer_a: str
    answer_b: str
    language: str
    category: str | None
    model_a: str
    model_b: str


@dataclass(frozen=True)
class Progress:
    done: int
    skipped: int
    pending: int
    remaining: int  # pairs this annotator could still be given now
    total: int  # pairs in the task


def ensure_task(session: Session, name: str = DEFAULT_TASK, overlap: int | None = None, guidelines: str | None = None) -> AnnotationTask:
    if overlap is not None and overlap < 1:
        raise StoreError(f"overlap must be at least 1, got {overlap}")
    task = session.scalar(select(AnnotationTask).where(AnnotationTask.name == name))
    if task is None:
        task = AnnotationTask(name=name, overlap=overlap or 1, guidelines=guidelines)
        session.add(task)
        session.flush()
    else:
        if overlap is not None:
            task.overlap = overlap
        if guidelines is not None:
            task.guidelines = guidelines
    return task


def configure_task(engine: Engine, name: str = DEFAULT_TASK, overlap: int | None = None, guidelines: str | None = None) -> int:
    with transaction(engine) as s:
        return ensure_task(s, name, overlap, guidelines).id


def _pair_content(p: PairRecord | AnnotationPair) -> tuple:
    return (p.question, p.answer_a, p.answer_b, p.model_a, p.model_b, p.language, p.category, p.question_id)


def _same_weights(stored: tuple[str | None, str | None], given: tuple[str | None, str | None]) -> bool:
    """A re-import without digests (an older file) matches; two different known digests do not."""
    return all(g is None or s is None or g == s for s, g in zip(stored, given))


def import_pairs(engine: Engine, pairs: list[PairRecord], task: str | None = None, overlap: int | None = None) -> ImportReport:
    """Add pairs (and their labels as votes) in one transaction: all of them or none.

    Pairs go to ``task``, else to their own ``task`` field, else to the default task. Re-importing an identical
    pair is a no-op; a pair id that exists with different content is an error (nothing is overwritten). Each
    label becomes a done assignment plus a vote on a battle in the pair's order (the new labels of one pair
    share one battle). Bulk: rows are checked in Python, then each table gets multi-row statements (SQLAlchemy
    Core executemany), not a round trip per row: ~100K labelled pairs in well under a minute.
    """
    groups: dict[str, list[PairRecord]] = {}
    for rec in pairs:
        groups.setdefault(task or rec.task or DEFAULT_TASK, []).append(rec)
    for name, recs in groups.items():
        seen: set[str] = set()
        for rec in recs:
            if rec.id in seen:
                raise StoreError(f"pair id {rec.id!r} appears twice in the import (task {name!r})")
            seen.add(rec.id)
            for label in rec.labels:
                check_winner(label.winner)
    now = utcnow()
    added = unchanged = labels_added = 0
    with transaction(engine) as s:
        annotators = _annotator_ids(s, {label.annotator for rec in pairs for label in rec.labels}, now)
        conn = s.connection()
        for name, recs in groups.items():
            task_id = ensure_task(s, name, overlap).id
            ids, new = _stored_pairs(conn, task_id, name, recs)
            ids.update(_insert_pairs(conn, task_id, new, now))
            added, unchanged = added + len(new), unchanged + len(recs) - len(new)
            labels_added += _insert_labels(conn, recs, ids, annotators, now)
    return ImportReport(added, unchanged, labels_added)


def chunks(items: list, size: int = LOOKUP_CHUNK) -> Iterator[list]:
    """``items`` in slices of ``size``: ids for one ``IN (...)`` lookup each."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _annotator_ids(s: Session, names: set[str], now) -> dict[str, int]:  # noqa: ANN001
    """Each name's annotator id, creating the missing annotators (``ensure_annotator`` in bulk)."""
    clean = {name: (name or "").strip() for name in names}
    if not all(clean.values()):
        raise StoreError("annotator name is empty")
    wanted = sorted(set(clean.values()))
    found: dict[str, int] = {}
    for chunk in chunks(wanted):
        found.update(s.execute(select(Annotator.name, Annotator.id).where(Annotator.name.in_(chunk))).all())
    missing = [n for n in wanted if n not in found]
    if missing:
        table = Annotator.__table__
        rows = s.connection().execute(insert(table).returning(table.c.name, table.c.id),
                                      [{"name": n, "role": "annotator", "created": now} for n in missing])
        found.update(rows.all())
    return {name: found[c] for name, c in clean.items()}


def _stored_pairs(conn, task_id: int, task: str, recs: list[PairRecord]) -> tuple[dict[str, int], list[PairRecord]]:  # noqa: ANN001
    """(external id -> database id of the pairs already stored identically, the pairs to add); a stored pair with
    other content is an error."""
    c = AnnotationPair.__table__.c
    columns = (c.id, c.external_id, c.question, c.answer_a, c.answer_b, c.model_a, c.model_b, c.language, c.category,
               c.question_id, c.digest_a, c.digest_b)
    stored = {}
    for chunk in chunks([r.id for r in recs]):
        stored.update((row.external_id, row) for row in conn.execute(
            select(*columns).where(c.task_id == task_id, c.external_id.in_(chunk))))
    ids: dict[str, int] = {}
    new: list[PairRecord] = []
    for rec in recs:
        row = stored.get(rec.id)
        if row is None:
            new.append(rec)
        elif _pair_content(row) != _pair_content(rec) or not _same_weights(
                (row.digest_a, row.digest_b), (check_digest(rec.digest_a), check_digest(rec.digest_b))):
            raise StoreError(f"pair {rec.id!r} already exists in task {task!r} with different content")
        else:
            ids[rec.id] = row.id
    return ids, new


def _insert_pairs(conn, task_id: int, new: list[PairRecord], now) -> dict[str, int]:  # noqa: ANN001
    if not new:
        return {}
    table = AnnotationPair.__table__
    rows = [dict(task_id=task_id, external_id=r.id, question=r.question, answer_a=r.answer_a, answer_b=r.answer_b,
                 model_a=r.model_a, model_b=r.model_b, language=r.language, category=r.category, question_id=r.question_id,
                 params=dict(r.params), digest_a=check_digest(r.digest_a), digest_b=check_digest(r.digest_b), created=now)
            for r in new]
    result = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
    return {r.id: pair_id for r, (pair_id,) in zip(new, result.all())}


def _insert_labels(conn, recs: list[PairRecord], ids: dict[str, int], annotators: dict[str, int], now) -> int:  # noqa: ANN001
    """Labels as done assignments and votes on one new battle per pair; a label its annotator already gave is
    skipped, a different one is an error."""
    labelled = [r for r in recs if r.labels]
    held: dict[tuple[int, int], str | None] = {}  # (pair, annotator) -> their vote in the pair's own terms
    for chunk in chunks([ids[r.id] for r in labelled]):
        rows = conn.execute(
            select(Assignment.pair_id, Assignment.annotator_id, Assignment.swapped, Vote.winner)
            .outerjoin(Vote, and_(Vote.battle_id == Assignment.battle_id, Vote.annotator_id == Assignment.annotator_id))
            .where(Assignment.pair_id.in_(chunk)))
        held.update(((p, a), _unswap(w, swapped) if w else None) for p, a, swapped, w in rows)
    todo: list[tuple[PairRecord, int, list[tuple[int, str]]]] = []
    for rec in labelled:
        pair_id, fresh = ids[rec.id], []
        for label in rec.labels:
            key = (pair_id, annotators[label.annotator])
            if key in held:
                if held[key] != label.winner:
                    raise StoreError(f"pair {rec.id!r}: {label.annotator} already has a different label")
                continue
            held[key] = label.winner
            fresh.append((key[1], label.winner))
        if fresh:
            todo.append((rec, pair_id, fresh))
    if not todo:
        return 0
    battles = Battle.__table__
    rows = [{**battle_fields(question=r.question, answer_a=r.answer_a, answer_b=r.answer_b, model_a=r.model_a,
                             model_b=r.model_b, mode="annotation", language=r.language, category=r.category,
                             question_id=r.question_id, params=r.params, pair_id=pair_id, digest_a=r.digest_a,
                             digest_b=r.digest_b), "created": now}
            for r, pair_id, _ in todo]
    battle_ids = [b for (b,) in conn.execute(insert(battles).returning(battles.c.id, sort_by_parameter_order=True), rows)]
    assignments, votes = [], []
    for (_, pair_id, fresh), battle_id in zip(todo, battle_ids):
        for annotator_id, winner in fresh:
            assignments.append(dict(pair_id=pair_id, annotator_id=annotator_id, battle_id=battle_id, swapped=False,
                                    status="done", created=now, completed=now))
            votes.append(dict(battle_id=battle_id, annotator_id=annotator_id, winner=winner, created=now))
    conn.execute(insert(Assignment.__table__), assignments)
    conn.execute(insert(Vote.__table__), votes)
    return len(votes)


def _unswap(winner: str, swapped: bool) -> str:
    """A vote on a swapped display, expressed in the pair's own a/b terms."""
    return {"a": "b", "b": "a"}.get(winner, winner) if swapped else winner


def _battle_for(pair: AnnotationPair, swapped: bool) -> Battle:
    a, b = ("b", "a") if swapped else ("a", "b")
    return new_battle(
        question=pair.question, answer_a=getattr(pair, f"answer_{a}"), answer_b=getattr(pair, f"answer_{b}"),
        model_a=getattr(pair, f"model_{a}"), model_b=getattr(pair, f"model_{b}"), mode="annotation",
        language=pair.language, category=pair.category, question_id=pair.question_id, params=pair.params, pair_id=pair.id,
        digest_a=getattr(pair, f"digest_{a}"), digest_b=getattr(pair, f"digest_{b}"),
    )


def _shown(a: Assignment, task: str) -> ShownPair:
    b = a.battle
    return ShownPair(a.id, b.id, a.pair.external_id, task, b.question, b.answer_a, b.answer_b, b.language, b.category, b.model_a, b.model_b)


def _holders(cutoff):  # noqa: ANN001, ANN202 - a SQL subquery
    """Per pair: how many annotators hold it (done, or pending inside the lease)."""
    active = or_(Assignment.status == "done", and_(Assignment.status == "pending", Assignment.created > cutoff))
    return (
        select(Assignment.pair_id, func.sum(case((active, 1), else_=0)).label("n"))
        .group_by(Assignment.pair_id)
        .subquery()
    )


def _available(task: AnnotationTask, annotator_id: int):  # noqa: ANN202 - a SQL select
    holders = _holders(utcnow() - LEASE)
    mine = select(Assignment.pair_id).where(Assignment.annotator_id == annotator_id)
    n = func.coalesce(holders.c.n, 0)
    return (
        select(AnnotationPair.id, n.label("n"))
        .outerjoin(holders, holders.c.pair_id == AnnotationPair.id)
        .where(AnnotationPair.task_id == task.id, AnnotationPair.id.not_in(mine), n < task.overlap)
    )


def next_pair_for(engine: Engine, annotator: str, task: str = DEFAULT_TASK, rng: random.Random | None = None) -> ShownPair | None:
    """The annotator's pending pair, or a new one (A/B order randomised); ``None`` when nothing is left."""
    rng = rng or random.SystemRandom()
    for _ in range(5):
        try:
            with transaction(engine) as s:
                t = s.scalar(select(AnnotationTask).where(AnnotationTask.name == task).with_for_update())
                if t is None:
                    raise StoreError(f"no annotation task {task!r}")
                ann = ensure_annotator(s, annotator)
                pending = s.scalar(
                    select(Assignment).join(AnnotationPair)
                    .where(Assignment.annotator_id == ann.id, Assignment.status == "pending", AnnotationPair.task_id == t.id)
                    .order_by(Assignment.id).limit(1)
                )
                if pending is not None:
                    return _shown(pending, task)
                # Fill pairs that others have started first, so overlap k is reached early; random among equals.
                available = _available(t, ann.id)
                choice = s.execute(available.order_by(available.selected_columns.n.desc(), func.random()).limit(1)).first()
                if choice is None:
                    return None
                pair = s.get(AnnotationPair, choice.id)
                swapped = bool(rng.randrange(2))
                battle = _battle_for(pair, swapped)
                s.add(battle)
                s.flush()
                assignment = Assignment(pair_id=pair.id, annotator_id=ann.id, battle_id=battle.id, swapped=swapped)
                s.add(assignment)
                s.flush()
                return _shown(assignment, task)
        except IntegrityError:  # another request of the same annotator took this pair first; pick again
            continue
    raise StoreError(f"could not assign a pair to {annotator!r} (too much contention); try again")


def vote_on_assignment(engine: Engine, assignment_id: int, annotator: str, winner: str) -> int:
    """Record the annotator's vote on their assignment (winner in the *shown* order); returns the vote id."""
    check_winner(winner)
    with transaction(engine) as s:
        a = _owned(s, assignment_id, annotator)
        if a.status != "pending":
            raise StoreError(f"assignment {assignment_id} is already {a.status}")
        return insert_vote(s, a.battle_id, winner, annotator).id


def skip_assignment(engine: Engine, assignment_id: int, annotator: str) -> None:
    """Skip: the pair goes back to others; this annotator will not be shown it again."""
    with transaction(engine) as s:
        a = _owned(s, assignment_id, annotator)
        if a.status != "pending":
            raise StoreError(f"assignment {assignment_id} is already {a.status}")
        a.status, a.completed = "skipped", utcnow()


def _owned(s: Session, assignment_id: int, annotator: str) -> Assignment:
    a = s.get(Assignment, assignment_id)
    ann = ensure_annotator(s, annotator)
    if a is None or a.annotator_id != ann.id:
        raise StoreError(f"assignment {assignment_id} does not belong to {annotator!r}")
    return a


def progress_for(engine: Engine, annotator: str, task: str = DEFAULT_TASK) -> Progress:
    with read_session(engine) as s:
        t = s.scalar(select(AnnotationTask).where(AnnotationTask.name == task))
        if t is None:
            raise StoreError(f"no annotation task {task!r}")
        ann_id = s.scalar(select(Annotator.id).where(Annotator.name == annotator))
        ann_id = -1 if ann_id is None else ann_id  # someone who never annotated: nothing done, everything open
        counts = dict(
            s.execute(
                select(Assignment.status, func.count()).join(AnnotationPair)
                .where(Assignment.annotator_id == ann_id, AnnotationPair.task_id == t.id)
                .group_by(Assignment.status)
            ).all()
        )
        remaining = s.scalar(select(func.count()).select_from(_available(t, ann_id).subquery())) or 0
        total = s.scalar(select(func.count()).where(AnnotationPair.task_id == t.id)) or 0
    return Progress(counts.get("done", 0), counts.get("skipped", 0), counts.get("pending", 0), remaining, total)


def list_tasks(engine: Engine) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        rows = s.execute(
            select(AnnotationTask.name, AnnotationTask.overlap, func.count(AnnotationPair.id))
            .outerjoin(AnnotationPair, AnnotationPair.task_id == AnnotationTask.id)
            .group_by(AnnotationTask.id).order_by(AnnotationTask.name)
        ).all()
    return [{"name": n, "overlap": k, "pairs": c} for n, k, c in rows]


def list_pairs(engine: Engine, task: str | None = None, language: str | None = None) -> list[PairRecord]:
    """Pairs with the labels collected so far (in the pair's own a/b order), e.g. for export or judging."""
    with read_session(engine) as s:
        q = select(AnnotationPair, AnnotationTask.name).join(AnnotationTask).order_by(AnnotationPair.id)
        if task is not None:
            q = q.where(AnnotationTask.name == task)
        if language is not None:
            q = q.where(AnnotationPair.language == language)
        rows = s.execute(q).all()
        votes = s.execute(
            select(Assignment.pair_id, Assignment.swapped, Vote.winner, Vote.annotator_id, Assignment.annotator_id)
            .join(Vote, Vote.battle_id == Assignment.battle_id)
            .where(Vote.annotator_id == Assignment.annotator_id)
            .order_by(Vote.id)
        ).all()
        names = dict(s.execute(select(Annotator.id, Annotator.name)).all())
    labels: dict[int, list[Label]] = {}
    for pair_id, swapped, winner, ann_id, _ in votes:
        labels.setdefault(pair_id, []).append(Label(names[ann_id], _unswap(winner, swapped)))
    return [
        PairRecord(
            id=p.external_id, question=p.question, answer_a=p.answer_a, answer_b=p.answer_b, model_a=p.model_a,
            model_b=p.model_b, language=p.language, category=p.category, question_id=p.question_id,
            params=dict(p.params or {}), labels=tuple(labels.get(p.id, ())), task=task_name,
            digest_a=p.digest_a, digest_b=p.digest_b,
        )
        for p, task_name in rows
    ]


def import_question_set(engine: Engine, name: str, questions: list[QuestionRecord], source: str | None = None, description: str | None = None) -> ImportReport:
    """Add questions to the set ``name`` (created if new); identical re-imports are no-ops, conflicts errors."""
    added = unchanged = 0
    with transaction(engine) as s:
        qs = s.scalar(select(QuestionSet).where(QuestionSet.name == name))
        if qs is None:
            qs = QuestionSet(name=name, source=source, description=description)
            s.add(qs)
            s.flush()
        for rec in questions:
            if not rec.turns or not all(isinstance(t, str) and t.strip() for t in rec.turns):
                raise StoreError(f"question {rec.id!r} has an empty turn")
            q = s.scalar(select(Question).where(Question.set_id == qs.id, Question.external_id == rec.id, Question.language == rec.language))
            ref = list(rec.reference) if rec.reference else None
            if q is None:
                s.add(Question(set_id=qs.id, external_id=rec.id, language=rec.language, category=rec.category, turns=list(rec.turns), reference=ref))
                s.flush()
                added += 1
            elif (q.turns, q.category, q.reference) != (list(rec.turns), rec.category, ref):
                raise StoreError(f"question {rec.id!r} ({rec.language}) already exists in set {name!r} with different content")
            else:
                unchanged += 1
    return ImportReport(added, unchanged)


def list_question_sets(engine: Engine) -> list[dict[str, Any]]:
    with read_session(engine) as s:
        rows = s.execute(
            select(QuestionSet.name, QuestionSet.source, func.count(Question.id))
            .outerjoin(Question, Question.set_id == QuestionSet.id).group_by(QuestionSet.id).order_by(QuestionSet.name)
        ).all()
    return [{"name": n, "source": src, "questions": c} for n, src, c in rows]


def list_questions(engine: Engine, set_name: str, language: str | None = None) -> list[QuestionRecord]:
    with read_session(engine) as s:
        q = select(Question).join(QuestionSet).where(QuestionSet.name == set_name).order_by(Question.id)
        if language is not None:
            q = q.where(Question.language == language)
        return [
            QuestionRecord(r.external_id, r.language, tuple(r.turns), r.category, tuple(r.reference) if r.reference else None)
            for r in s.scalars(q).all()
        ]
