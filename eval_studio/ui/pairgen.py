"""Pre-generate annotation pairs: two variants answer stored questions (batched), the pairs go into a task."""

from __future__ import annotations

import logging
import threading

from bactrian.generation import GenerationParams
from sqlalchemy import Engine

from eval_studio.store.tasks import PairRecord, import_pairs, list_pairs, list_questions
from eval_studio.ui.catalog import Catalog
from eval_studio.ui.streaming import Job, stream_columns

log = logging.getLogger(__name__)
BATCH_QUESTIONS = 4  # 4 questions x 2 variants = 8 rows per batched decode


def pair_id(set_name: str, question_id: str, language: str, model_a: str, model_b: str) -> str:
    return f"{set_name}/{language}/{question_id}/{model_a}~{model_b}"


def generate_pairs(catalog: Catalog, db: Engine, *, set_name: str, model_a: str, model_b: str,
                   task: str, count: int, overlap: int | None = None, params: GenerationParams | None = None) -> int:
    """Answer up to ``count`` not-yet-paired questions of ``set_name`` with both models; returns pairs added.

    Questions are taken round-robin over languages, so a small count still covers every language. A question
    whose answer failed or came back empty is left out (never stored as a pair).
    """
    if model_a == model_b:
        raise ValueError("pick two different models")
    params = params or GenerationParams(max_new_tokens=128, temperature=0.7, repetition_penalty=1.1)
    done = {p.id for p in list_pairs(db, task=task)}
    by_lang: dict[str, list] = {}
    for q in list_questions(db, set_name):
        if pair_id(set_name, q.id, q.language, model_a, model_b) not in done:
            by_lang.setdefault(q.language, []).append(q)
    todo = []
    while len(todo) < count and any(by_lang.values()):
        for lang in list(by_lang):
            if by_lang[lang] and len(todo) < count:
                todo.append(by_lang[lang].pop(0))
    added = 0
    for start in range(0, len(todo), BATCH_QUESTIONS):
        chunk = todo[start:start + BATCH_QUESTIONS]
        jobs = [Job(m, [{"role": "user", "content": q.turns[0]}], params) for q in chunk for m in (model_a, model_b)]
        final = None
        for final in stream_columns(catalog, jobs):
            pass
        records = []
        for k, q in enumerate(chunk):
            a, b = final[2 * k], final[2 * k + 1]
            if not (a.ok and b.ok and a.text.strip() and b.text.strip()):
                log.warning("pair for %s skipped: %s", q.id, a.error or b.error or "empty answer")
                continue
            records.append(PairRecord(
                id=pair_id(set_name, q.id, q.language, model_a, model_b), question=q.turns[0], answer_a=a.text.strip(),
                answer_b=b.text.strip(), model_a=model_a, model_b=model_b, language=q.language, category=q.category,
                question_id=q.id, params={"a": params.as_dict(), "b": params.as_dict()},
                digest_a=catalog.get(model_a).digest, digest_b=catalog.get(model_b).digest,
            ))
        if records:
            added += import_pairs(db, records, task=task, overlap=overlap).added
    return added


def generate_in_background(catalog: Catalog, db: Engine, **kwargs) -> threading.Thread:
    def work() -> None:
        try:
            n = generate_pairs(catalog, db, **kwargs)
            log.info("pre-generated %d pairs into task %s", n, kwargs.get("task"))
        except Exception:  # noqa: BLE001 - a background job logs; the app keeps serving
            log.exception("pair generation failed")

    thread = threading.Thread(target=work, name="pair-generation", daemon=True)
    thread.start()
    return thread
