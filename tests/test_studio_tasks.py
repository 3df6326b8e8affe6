"""Annotation tasks: overlap k, never the same pair twice, skip, progress, labels, concurrent assignment."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from eval_studio.store import open_store, read_session, transaction
from eval_studio.store.battles import load_battles
from eval_studio.store.models import Assignment, Vote
from eval_studio.store.repo import StoreError
from eval_studio.store.tasks import (
    Label,
    PairRecord,
    import_pairs,
    list_pairs,
    next_pair_for,
    progress_for,
    skip_assignment,
    vote_on_assignment,
)


@pytest.fixture
def engine(tmp_path):
    e = open_store(f"sqlite:///{tmp_path / 'studio.db'}")
    yield e
    e.dispose()


def pairs(n: int, prefix: str = "p") -> list[PairRecord]:
    return [
        PairRecord(id=f"{prefix}{i}", question=f"Question {i}?", answer_a=f"left {i}", answer_b=f"right {i}", model_a="alpha",
                   model_b="beta", language="en", category="generic")
        for i in range(n)
    ]


def test_overlap_k_and_never_the_same_pair_twice(engine):
    import_pairs(engine, pairs(3), task="t", overlap=2)
    seen: dict[str, list[str]] = {}
    for who in ("ana", "ben", "cai"):
        while (shown := next_pair_for(engine, who, "t")) is not None:
            assert shown.pair_id not in seen.get(who, [])
            seen.setdefault(who, []).append(shown.pair_id)
            vote_on_assignment(engine, shown.assignment_id, who, "a")
    per_pair = Counter(p for got in seen.values() for p in got)
    assert per_pair == {"p0": 2, "p1": 2, "p2": 2}  # each pair shown to exactly k=2 annotators
    assert len(seen["ana"]) == 3 and len(seen["ben"]) == 3 and "cai" not in seen
    with pytest.raises(IntegrityError):  # the database refuses a repeat even if code tried
        with transaction(engine) as s:
            a = s.scalars(select(Assignment)).first()
            s.add(Assignment(pair_id=a.pair_id, annotator_id=a.annotator_id, battle_id=a.battle_id))


def test_display_order_is_random_and_votes_map_back_to_the_pair(engine):
    import_pairs(engine, pairs(40), task="t", overlap=1)
    swapped, rng = 0, random.Random(7)
    for _ in range(40):
        shown = next_pair_for(engine, "ana", "t", rng=rng)
        i = shown.pair_id[1:]
        if shown.answer_a == f"right {i}":
            swapped += 1
            assert shown.model_a == "beta"
        vote_on_assignment(engine, shown.assignment_id, "ana", "a")  # always the left column
    assert 5 < swapped < 35
    labels = {p.id: p.labels[0].winner for p in list_pairs(engine, task="t")}
    assert Counter(labels.values()) == {"a": 40 - swapped, "b": swapped}  # left click = pair's b when swapped
    df = load_battles(engine, mode="annotation")
    assert len(df) == 40 and set(df["winner"]) == {"a"}  # the battle table keeps the shown order


def test_pending_pair_is_resumed_skip_releases_it_and_progress_moves(engine):
    import_pairs(engine, pairs(2), task="t", overlap=1)
    first = next_pair_for(engine, "ana", "t")
    assert next_pair_for(engine, "ana", "t") == first  # a reload shows the same pair, same order
    assert progress_for(engine, "ana", "t").pending == 1
    assert progress_for(engine, "ben", "t").remaining == 1  # k=1: ana's pending pair is held
    skip_assignment(engine, first.assignment_id, "ana")
    assert progress_for(engine, "ben", "t").remaining == 2  # a skipped pair goes back to the others
    second = next_pair_for(engine, "ana", "t")
    assert second.pair_id != first.pair_id  # never shown again to ana
    with pytest.raises(StoreError, match="does not belong"):
        vote_on_assignment(engine, second.assignment_id, "ben", "a")
    vote_on_assignment(engine, second.assignment_id, "ana", "tie")
    with pytest.raises(StoreError, match="already done"):
        vote_on_assignment(engine, second.assignment_id, "ana", "a")
    p = progress_for(engine, "ana", "t")
    assert (p.done, p.skipped, p.pending, p.remaining, p.total) == (1, 1, 0, 0, 2)
    assert progress_for(engine, "nobody", "t").remaining == 1  # only the pair ana skipped is still open
    with pytest.raises(StoreError, match="no annotation task"):
        next_pair_for(engine, "ana", "missing")


def test_imported_labels_count_toward_overlap_and_block_repeats(engine):
    recs = pairs(2)
    recs[0] = PairRecord(**{**recs[0].__dict__, "labels": (Label("ana", "b"), Label("ben", "tie"))})
    report = import_pairs(engine, recs, task="t", overlap=2)
    assert (report.added, report.labels_added) == (2, 2)
    assert next_pair_for(engine, "ana", "t").pair_id == "p1"  # p0 already labelled by ana
    assert next_pair_for(engine, "cai", "t").pair_id == "p1"  # p0 already has k=2 labels
    again = import_pairs(engine, recs, task="t")
    assert (again.added, again.unchanged, again.labels_added) == (0, 2, 0)
    changed = PairRecord(**{**recs[1].__dict__, "answer_a": "something else"})
    with pytest.raises(StoreError, match="different content"):
        import_pairs(engine, [pairs(1, "new")[0], changed], task="t")
    assert [p.id for p in list_pairs(engine, task="t")] == ["p0", "p1"]  # all-or-nothing: "new0" was not added
    conflicting = PairRecord(**{**recs[0].__dict__, "labels": (Label("ana", "a"),)})
    with pytest.raises(StoreError, match="different label"):
        import_pairs(engine, [conflicting], task="t")


def test_concurrent_annotators_respect_overlap_and_no_repeats(engine):
    """20 annotators x 10 votes in parallel over 150 pairs with k=2: 200 votes, overlap and no-repeat hold.

    (Capacity 300 > demand 200, so every request can be served: each annotator excludes at most 9 pairs.)"""
    import_pairs(engine, pairs(150), task="t", overlap=2)
    got_none: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def annotate(who: str) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                shown = next_pair_for(engine, who, "t")
                if shown is None:
                    got_none.append(who)
                    return
                vote_on_assignment(engine, shown.assignment_id, who, random.choice(["a", "b", "tie", "both_bad"]))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=annotate, args=(f"user{i}",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and got_none == []
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Vote)) == 200
        per_pair = Counter(s.scalars(select(Assignment.pair_id)).all())
        per_person = s.execute(select(Assignment.annotator_id, Assignment.pair_id)).all()
    assert sum(per_pair.values()) == 200 and max(per_pair.values()) == 2
    assert Counter(per_pair.values())[2] >= 90  # started pairs are completed first, so most reach k
    assert len(per_person) == len(set(per_person))
