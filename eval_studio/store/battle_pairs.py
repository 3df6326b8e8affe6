"""Arena battles as judge targets: each voted battle becomes an annotation pair (``battle-<id>``) in a task of its
own, so the judge runner (which judges stored pairs, in both orders) can judge the very battles people voted on.

The pair keeps the battle's question, answers in the order shown, models, language, category, question id,
generation parameters and weight digests; its verdicts then fall on the same agreement item as the votes
(question, language, the two models), and ``agreement.human_judge_by`` sets human votes and judge verdicts side
by side per language. Copying is idempotent: a battle already copied is left as it is.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from eval_studio.store.db import read_session
from eval_studio.store.models import Battle, Vote
from eval_studio.store.tasks import ImportReport, PairRecord, import_pairs

BATTLE_TASK = "arena-battles"  # the default task of battles copied for judging
ARENA_MODES = ("battle", "named")  # blind and named arena battles (annotation battles come from pairs already)


def battle_pair_id(battle_id: int) -> str:
    return f"battle-{battle_id}"


def battle_pairs(engine: Engine, modes: tuple[str, ...] = ARENA_MODES, language: str | None = None,
                 voted_only: bool = True) -> list[PairRecord]:
    """The arena battles (``modes``) as pairs, oldest first; ``voted_only``: only battles someone voted on."""
    with read_session(engine) as s:
        q = select(Battle).where(Battle.mode.in_(modes), Battle.model_a != Battle.model_b).order_by(Battle.id)
        if language is not None:
            q = q.where(Battle.language == language)
        if voted_only:
            q = q.where(Battle.id.in_(select(Vote.battle_id)))
        return [PairRecord(id=battle_pair_id(b.id), question=b.question, answer_a=b.answer_a, answer_b=b.answer_b,
                           model_a=b.model_a, model_b=b.model_b, language=b.language, category=b.category,
                           question_id=b.question_id, params=dict(b.params or {}), digest_a=b.digest_a,
                           digest_b=b.digest_b)
                for b in s.scalars(q)]


def copy_battles_to_task(engine: Engine, task: str = BATTLE_TASK, modes: tuple[str, ...] = ARENA_MODES,
                         language: str | None = None, voted_only: bool = True) -> ImportReport:
    """Copy the arena battles into ``task`` as pairs (idempotent); judge that task afterwards."""
    return import_pairs(engine, battle_pairs(engine, modes, language, voted_only), task=task)
