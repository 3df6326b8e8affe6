"""Repository API for chat and arena: annotators, model variants, conversations, battles and votes.

Functions take an ``Engine`` and run their own transaction, so a UI handler can call them from any thread.
Annotator names passed here must come from the server-side session (auth), never from the browser.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from eval_studio.store.db import transaction
from eval_studio.store.models import (
    MODES,
    ROLES,
    WINNERS,
    Annotator,
    Assignment,
    Battle,
    Conversation,
    Turn,
    Vote,
    utcnow,
)


class StoreError(ValueError):
    """Bad input to the store; the message says what and nothing was written."""


class DuplicateVote(StoreError):
    pass


def check_winner(winner: str) -> str:
    if winner not in WINNERS:
        raise StoreError(f"winner must be one of {', '.join(WINNERS)}, got {winner!r}")
    return winner


def check_digest(digest: str | None) -> str | None:
    """A weight digest (hex, as ``AdapterInfo.digest``), lower-cased; None or empty means none."""
    if digest is None:
        return None
    text = digest.strip().lower() if isinstance(digest, str) else ""
    if not isinstance(digest, str) or len(text) > 64 or not all(c in "0123456789abcdef" for c in text):
        raise StoreError(f"a weight digest must be hex (at most 64 characters), got {digest!r}")
    return text or None


def ensure_annotator(session: Session, name: str, role: str | None = None) -> Annotator:
    """Get or create the annotator ``name``; ``role`` (if given) updates the stored role."""
    name = (name or "").strip()
    if not name:
        raise StoreError("annotator name is empty")
    if role is not None and role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    ann = session.scalar(select(Annotator).where(Annotator.name == name))
    if ann is None:
        ann = Annotator(name=name, role=role or "annotator")
        session.add(ann)
        session.flush()
    elif role is not None and ann.role != role:
        ann.role = role
    return ann


def start_conversation(
    engine: Engine, model: str, *, annotator: str | None = None, mode: str = "chat", language: str | None = None,
    params: dict[str, Any] | None = None,
) -> int:
    with transaction(engine) as s:
        ann_id = ensure_annotator(s, annotator).id if annotator else None
        conv = Conversation(model=model, annotator_id=ann_id, mode=mode, language=language, params=dict(params or {}))
        s.add(conv)
        s.flush()
        return conv.id


def add_turn(engine: Engine, conversation_id: int, role: str, content: str, params: dict[str, Any] | None = None) -> int:
    """Append a turn; its index is the next free one in the conversation."""
    if role not in ("system", "user", "assistant"):
        raise StoreError(f"turn role must be system, user or assistant, got {role!r}")
    with transaction(engine) as s:
        if s.get(Conversation, conversation_id) is None:
            raise StoreError(f"no conversation {conversation_id}")
        idx = s.scalar(select(func.coalesce(func.max(Turn.idx) + 1, 0)).where(Turn.conversation_id == conversation_id))
        turn = Turn(conversation_id=conversation_id, idx=idx, role=role, content=content, params=params)
        s.add(turn)
        s.flush()
        return turn.id


def new_battle(**fields: Any) -> Battle:
    """Validate and build (not add) a battle; see :func:`battle_fields`."""
    return Battle(**battle_fields(**fields))


def battle_fields(
    *,
    question: str,
    answer_a: str,
    answer_b: str,
    model_a: str,
    model_b: str,
    mode: str,
    language: str,
    params: dict[str, Any] | None = None,
    category: str | None = None,
    question_id: str | None = None,
    pair_id: int | None = None,
    conversation_a_id: int | None = None,
    conversation_b_id: int | None = None,
    digest_a: str | None = None,
    digest_b: str | None = None,
) -> dict[str, Any]:
    """Validate a battle's columns (the two outputs exactly as shown, in the order shown); the row to insert.

    ``digest_a``/``digest_b``: the weight digest of each side's adapter (lineage; None for a base or external model).
    """
    if mode not in MODES:
        raise StoreError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(question, str) or not question.strip():
        raise StoreError("battle question is empty")
    for label, text in (("answer_a", answer_a), ("answer_b", answer_b)):
        if not isinstance(text, str):
            raise StoreError(f"{label} must be a string")
    if not model_a or not model_b:
        raise StoreError("both model names are required")
    if not language:
        raise StoreError("battle language is required")
    digest_a, digest_b = check_digest(digest_a), check_digest(digest_b)
    return dict(
        question=question, answer_a=answer_a, answer_b=answer_b, model_a=model_a, model_b=model_b, mode=mode,
        language=language, params=dict(params or {}), category=category, question_id=question_id, pair_id=pair_id,
        conversation_a_id=conversation_a_id, conversation_b_id=conversation_b_id, digest_a=digest_a, digest_b=digest_b,
    )


def record_battle(engine: Engine, **fields: Any) -> int:
    """Store a battle (see :func:`new_battle` for the fields) and return its id."""
    battle = new_battle(**fields)
    with transaction(engine) as s:
        s.add(battle)
        s.flush()
        return battle.id


def insert_vote(session: Session, battle_id: int, winner: str, annotator: str | None) -> Vote:
    """Add a vote inside an open transaction; marks the annotator's assignment for that battle done."""
    check_winner(winner)
    battle = session.get(Battle, battle_id)
    if battle is None:
        raise StoreError(f"no battle {battle_id}")
    ann = ensure_annotator(session, annotator) if annotator else None
    clash = select(Vote.id).where(Vote.battle_id == battle_id)
    clash = clash.where(Vote.annotator_id == ann.id) if ann else clash.where(Vote.annotator_id.is_(None))
    if session.scalar(clash) is not None:
        raise DuplicateVote(f"battle {battle_id} already has a vote from {annotator or 'anonymous'}")
    vote = Vote(battle_id=battle_id, annotator_id=ann.id if ann else None, winner=winner)
    session.add(vote)
    if ann is not None:
        assignment = session.scalar(select(Assignment).where(Assignment.battle_id == battle_id, Assignment.annotator_id == ann.id))
        if assignment is not None:
            if assignment.status != "pending":
                raise DuplicateVote(f"assignment {assignment.id} is already {assignment.status}")
            assignment.status, assignment.completed = "done", utcnow()
    session.flush()
    return vote


def record_vote(engine: Engine, battle_id: int, winner: str, annotator: str | None = None) -> int:
    """Record ``winner`` (a|b|tie|both_bad) for a battle; ``annotator=None`` is an anonymous vote.

    A second vote on the same battle by the same annotator (or a second anonymous one) raises
    :class:`DuplicateVote`; the check and the insert share one write transaction, so it holds under concurrency.
    """
    try:
        with transaction(engine) as s:
            return insert_vote(s, battle_id, winner, annotator).id
    except IntegrityError as e:  # the unique constraint caught a race the check could not see (non-SQLite)
        raise DuplicateVote(f"battle {battle_id} already has a vote from {annotator or 'anonymous'}") from e
