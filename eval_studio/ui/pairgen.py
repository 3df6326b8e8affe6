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


def generate_pairs(catalog: Catalog, db: Engine, *, set_name: str, task: str, count: int,
                   model_a: str | None = None, model_b: str | None = None, overlap: int | None = None,
                   params: GenerationParams | None = None) -> int:
    """Answer up to ``count`` not-yet-paired questions of ``set_name`` with two models; returns pairs added.

    Without ``model_a``/``model_b`` each question's pair fits its language (``Catalog.pairs_for_language``: the
    language's adapter against the base, then against the multilingual adapter, in turn), so a Chinese question
    is never answered by the Arabic adapter. Questions are taken round-robin over languages, so a small count
    still covers every language. A question whose answer failed or came back empty is left out (never stored).
    """
    if (model_a is None) != (model_b is None):
        raise ValueError("name both models, or neither (pairs by the question's language)")
    if model_a is not None and model_a == model_b:
        raise ValueError("pick two different models")
    params = params or GenerationParams(max_new_tokens=128, temperature=0.7, repetition_penalty=1.1)
    done = {p.id for p in list_pairs(db, task=task)}
    by_lang: dict[str, list] = {}
    seen: dict[str, int] = {}
    for q in list_questions(db, set_name):
        if model_a is not None:
            pair = (model_a, model_b)
        else:
            options = catalog.pairs_for_language(q.language)
            if not options:
                continue
            pair = options[seen.get(q.language, 0) % len(options)]  # alternate opponents within a language
            seen[q.language] = seen.get(q.language, 0) + 1
        if pair_id(set_name, q.id, q.language, *pair) not in done:
            by_lang.setdefault(q.language, []).append((q, pair))
    todo = []
    while len(todo) < count and any(by_lang.values()):
        for lang in list(by_lang):
            if by_lang[lang] and len(todo) < count:
                todo.append(by_lang[lang].pop(0))
    added = 0
    for start in range(0, len(todo), BATCH_QUESTIONS):
        chunk = todo[start:start + BATCH_QUESTIONS]
        jobs = [Job(m, [{"role": "user", "content": q.turns[0]}], params) for q, pair in chunk for m in pair]
        final = None
        for final in stream_columns(catalog, jobs):
            pass
        records = []
        for k, (q, (ma, mb)) in enumerate(chunk):
            a, b = final[2 * k], final[2 * k + 1]
            if not (a.ok and b.ok and a.text.strip() and b.text.strip()):
                log.warning("pair for %s skipped: %s", q.id, a.error or b.error or "empty answer")
                continue
            records.append(PairRecord(
                id=pair_id(set_name, q.id, q.language, ma, mb), question=q.turns[0], answer_a=a.text.strip(),
                answer_b=b.text.strip(), model_a=ma, model_b=mb, language=q.language, category=q.category,
                question_id=q.id, params={"a": params.as_dict(), "b": params.as_dict()},
                digest_a=catalog.get(ma).digest, digest_b=catalog.get(mb).digest,
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
