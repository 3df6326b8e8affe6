"""The translate step: instruction + input (never outputs) of every row into every target language, resumable.

Each finished chunk is committed to the store under (row id, language, translator, source hash); a rerun only
translates what is missing. Programming rows are stored untranslated (note ``code``).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..limits import redact
from ..recipe import Recipe
from ..sources import Row
from ..store import Store
from .backends import Translator, make_translator
from .protect import is_programming, mask, pieces, unmask

__all__ = ["run_translate", "translator_name", "src_hash", "TranslateStats"]


def src_hash(row: Row) -> str:
    return hashlib.sha256(f"{row.instruction}\x00{row.input}".encode()).hexdigest()[:16]


def translator_name(recipe: Recipe) -> str:
    t = recipe.translate
    return {"google": "google", "none": "none"}.get(t.backend, f"{t.backend}:{t.model}")


@dataclass
class TranslateStats:
    pending: int = 0
    translated: int = 0
    code_rows: int = 0
    failed: int = 0
    marker_fallbacks: int = 0
    errors: list[str] = field(default_factory=list)


async def _translate_texts(tr: Translator, texts: list[str], lang: str, stats: TranslateStats) -> list[str]:
    """Translate with protected spans; strings whose markers got lost are redone piece by piece."""
    masked = [mask(t) for t in texts]
    todo = [i for i, t in enumerate(texts) if t.strip()]
    outs = await tr.translate([masked[i][0] for i in todo], lang) if todo else []
    result = list(texts)
    redo: list[int] = []
    for i, out in zip(todo, outs):
        restored = unmask(out, masked[i][1])
        if restored is None:
            redo.append(i)
        else:
            result[i] = restored
    if redo:
        stats.marker_fallbacks += len(redo)
        split = [pieces(texts[i]) for i in redo]
        prose = [p.strip() for parts in split for p, ok in parts if ok]
        done = iter(await tr.translate(prose, lang)) if prose else iter(())
        for i, parts in zip(redo, split):
            # keep the whitespace around each translated piece: it separated it from the protected spans
            result[i] = "".join(
                (p[: len(p) - len(p.lstrip())] + next(done) + p[len(p.rstrip()):]) if ok else p for p, ok in parts
            )
    return result


async def _translate_chunk(tr: Translator, store: Store, rows: list[Row], lang: str, stats: TranslateStats) -> None:
    texts = [t for r in rows for t in (r.instruction, r.input)]
    try:
        out = await _translate_texts(tr, texts, lang, stats)
    except Exception as e:  # noqa: BLE001 - a failed chunk is recorded and the run goes on
        msg = redact(f"{type(e).__name__}: {e}", tr.secrets())
        stats.failed += len(rows)
        stats.errors.append(msg)
        for r in rows:
            await asyncio.to_thread(store.add_failure, "translate", r.id, lang, msg, 0)
        return
    items = [
        {"row_id": r.id, "lang": lang, "translator": tr.name, "src_hash": src_hash(r),
         "instruction": out[2 * k], "input": out[2 * k + 1]}
        for k, r in enumerate(rows)
    ]
    await asyncio.to_thread(store.add_translations, items)
    stats.translated += len(rows)


async def _run(recipe: Recipe, store: Store, rows: list[Row], progress: bool) -> TranslateStats:
    from tqdm.auto import tqdm

    name = translator_name(recipe)
    done = store.translation_keys(name)
    langs = [lang for lang in recipe.languages if lang != "en"]
    stats = TranslateStats()
    code = {r.id for r in rows if recipe.translate.skip_code and is_programming(r.instruction, r.input, r.output)}
    jobs: list[tuple[str, list[Row]]] = []
    copies: list[dict[str, Any]] = []
    for lang in langs:
        todo = [r for r in rows if (r.id, lang, src_hash(r)) not in done]
        stats.pending += len(todo)
        for r in todo:
            if r.id in code or recipe.translate.backend == "none":
                copies.append({"row_id": r.id, "lang": lang, "translator": name, "src_hash": src_hash(r),
                               "instruction": r.instruction, "input": r.input, "untranslated": 1,
                               "note": "code" if r.id in code else "no translator"})
        todo = [r for r in todo if r.id not in code]
        step = max(1, recipe.translate.batch_size // 2)  # two strings per row
        jobs.extend((lang, todo[i:i + step]) for i in range(0, len(todo), step))
    if copies:
        store.add_translations(copies)
        stats.code_rows = sum(1 for c in copies if c["note"] == "code")
    if recipe.translate.backend == "none" or not jobs:
        return stats
    tr = make_translator(recipe.translate)
    bar = tqdm(total=sum(len(j[1]) for j in jobs), desc="translate", unit="row", disable=not progress)
    queue: asyncio.Queue = asyncio.Queue()
    for j in jobs:
        queue.put_nowait(j)

    async def worker() -> None:
        while not queue.empty():
            lang, chunk = queue.get_nowait()
            await _translate_chunk(tr, store, chunk, lang, stats)
            bar.update(len(chunk))

    # llm/google bound their own in-flight requests; a few chunk workers keep them busy
    n_workers = 1 if recipe.translate.backend == "seq2seq" else max(2, recipe.translate.concurrency // 4)
    try:
        await asyncio.gather(*(worker() for _ in range(n_workers)))
    finally:
        bar.close()
        await tr.aclose()
    return stats


def run_translate(recipe: Recipe, store: Store, rows: list[Row], progress: bool = True) -> TranslateStats:
    return asyncio.run(_run(recipe, store, rows, progress))
