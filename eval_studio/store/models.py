"""SQLAlchemy 2 typed models of the studio store.

A ``Battle`` is what a person (or nobody yet) was shown: one question and two outputs *in the order shown*,
with the generation parameters. A ``Vote`` references exactly one battle, so every vote is tied to the exact
texts it judged. Annotation pairs hold the canonical (imported or pre-generated) content; each time a pair is
shown to an annotator a battle is created in the order actually displayed (A/B randomly swapped).
Judgments reference pairs, one row per judge call (order ``ab``/``ba``, or ``a``/``b`` for single-answer
grading); verdicts and scores are always stored in the pair's own a/b terms.
Lineage: battles and pairs record ``digest_a``/``digest_b``, the weight digest of each side's adapter
(``AdapterInfo.digest``), so a retrained adapter under the same name stays a separate player; judgments use
their pair's digests.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints let Alembic's SQLite batch mode alter tables later.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WINNERS = ("a", "b", "tie", "both_bad")
ROLES = ("annotator", "admin")
MODES = ("named", "battle", "annotation")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (portable across SQLite/PostgreSQL), always returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Annotator(Base):
    __tablename__ = "annotators"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="annotator")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id"))
    model: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(16), default="chat")  # chat | arena
    language: Mapped[str | None] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    turns: Mapped[list[Turn]] = relationship(order_by="Turn.idx", cascade="all, delete-orphan")
    annotator: Mapped[Annotator | None] = relationship()


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (
        UniqueConstraint("conversation_id", "idx"),
        CheckConstraint(_in("role", ("system", "user", "assistant")), name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QuestionSet(Base):
    __tablename__ = "question_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    questions: Mapped[list[Question]] = relationship(back_populates="question_set", cascade="all, delete-orphan")


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("set_id", "external_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("question_sets.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(100))
    turns: Mapped[list[str]] = mapped_column(JSON)  # one or more user turns (MT-bench has two)
    reference: Mapped[list[str] | None] = mapped_column(JSON)

    question_set: Mapped[QuestionSet] = relationship(back_populates="questions")


class AnnotationTask(Base):
    __tablename__ = "annotation_tasks"
    __table_args__ = (CheckConstraint("overlap >= 1", name="overlap"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    overlap: Mapped[int] = mapped_column(Integer, default=1)  # k: how many different annotators see each pair
    guidelines: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnnotationPair(Base):
    __tablename__ = "annotation_pairs"
    __table_args__ = (UniqueConstraint("task_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("annotation_tasks.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    question_id: Mapped[str | None] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    answer_a: Mapped[str] = mapped_column(Text)
    answer_b: Mapped[str] = mapped_column(Text)
    model_a: Mapped[str] = mapped_column(String(200))
    model_b: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    digest_a: Mapped[str | None] = mapped_column(String(64))  # lineage: model_a's adapter weight digest (None: base/unknown)
    digest_b: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    task: Mapped[AnnotationTask] = relationship()


class Battle(Base):
    __tablename__ = "battles"
    __table_args__ = (CheckConstraint(_in("mode", MODES), name="mode"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[str | None] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    answer_a: Mapped[str] = mapped_column(Text)  # exactly as shown in the left/A column
    answer_b: Mapped[str] = mapped_column(Text)
    model_a: Mapped[str] = mapped_column(String(200))
    model_b: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # generation parameters of both sides
    mode: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(100))
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("annotation_pairs.id"), index=True)
    conversation_a_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    conversation_b_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    digest_a: Mapped[str | None] = mapped_column(String(64))  # lineage: which weights answered as A (None: base/unknown)
    digest_b: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    votes: Mapped[list[Vote]] = relationship(back_populates="battle")


class Vote(Base):
    __tablename__ = "votes"
    # NULL annotator = anonymous; the repository also refuses a second anonymous vote on one battle.
    __table_args__ = (
        UniqueConstraint("battle_id", "annotator_id"),
        CheckConstraint(_in("winner", WINNERS), name="winner"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    battle_id: Mapped[int] = mapped_column(ForeignKey("battles.id"), index=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id"))
    winner: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    battle: Mapped[Battle] = relationship(back_populates="votes")
    annotator: Mapped[Annotator | None] = relationship()


class Assignment(Base):
    """One pair shown to one annotator; the unique constraint makes "never the same pair twice" a DB rule."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("pair_id", "annotator_id"),
        CheckConstraint(_in("status", ("pending", "done", "skipped")), name="status"),
        Index("ix_assignments_annotator_status", "annotator_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("annotation_pairs.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    battle_id: Mapped[int] = mapped_column(ForeignKey("battles.id"))
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed: Mapped[datetime | None] = mapped_column(UTCDateTime)

    pair: Mapped[AnnotationPair] = relationship()
    battle: Mapped[Battle] = relationship()


class JudgeRun(Base):
    __tablename__ = "judge_runs"
    __table_args__ = (
        CheckConstraint(_in("status", ("pending", "running", "done", "error", "cancelled")), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_name: Mapped[str] = mapped_column(String(100))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    judge_model: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str | None] = mapped_column(Text)  # stripped of credentials and query strings
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    n_total: Mapped[int] = mapped_column(Integer, default=0)
    n_done: Mapped[int] = mapped_column(Integer, default=0)
    n_errors: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Judgment(Base):
    __tablename__ = "judgments"
    __table_args__ = (
        CheckConstraint(_in("ordering", ("ab", "ba", "a", "b")), name="ordering"),
        CheckConstraint("verdict IS NULL OR verdict IN ('a', 'b', 'tie')", name="verdict"),
        # An unparseable output is an error and can never carry a verdict or a score.
        CheckConstraint("error IS NULL OR (verdict IS NULL AND score_a IS NULL AND score_b IS NULL)", name="error_no_vote"),
        Index("ix_judgments_group", "pair_id", "prompt_name", "judge_model", "params_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("annotation_pairs.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("judge_runs.id"))
    prompt_name: Mapped[str] = mapped_column(String(100))
    prompt_hash: Mapped[str] = mapped_column(String(64))  # hash of the prompt definition (template + system)
    judge_model: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params_hash: Mapped[str] = mapped_column(String(64))
    ordering: Mapped[str] = mapped_column(String(2))  # ab: pair's a shown as A; ba: swapped; a/b: single grading
    raw_output: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(8))  # in the pair's a/b terms
    score_a: Mapped[float | None] = mapped_column(Float)
    score_b: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    pair: Mapped[AnnotationPair] = relationship()


class JudgeCache(Base):
    __tablename__ = "judge_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(prompt content, judge model, params)
    judge_model: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raw_output: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageEntry(Base):
    """Token and cost ledger: one row per model call (cache hits are recorded with cached=True, cost 0)."""

    __tablename__ = "usage_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("judge_runs.id"))
    purpose: Mapped[str] = mapped_column(String(32), default="judge")
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BenchmarkRun(Base):
    """One metric value from a ``bactrian bench`` results file; re-ingesting the same file is idempotent."""

    __tablename__ = "benchmark_runs"
    __table_args__ = (UniqueConstraint("run_id", "model", "adapter", "task", "language", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    adapter: Mapped[str] = mapped_column(String(200), default="")  # "" = bare base model
    task: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16), default="")
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(Integer)  # items scored: tells a --limit run from a full test set
    source_file: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # when the run ran (file's own time)
