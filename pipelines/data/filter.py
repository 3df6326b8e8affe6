"""The filter step: decide, per language, which responses to keep and why the others are dropped.

Checks in order (the first that fires is the reason): empty, refusal / "as an AI language model", truncated
(optional), too short / too long, length outlier (robust z-score of log length within the language), language
id mismatch (``langid.LanguageId``: lingua, or py3langid for the 7 languages lingua lacks; rows kept in English
because they are code are not checked), exact duplicate.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from .langid import LanguageId
from .recipe import FilterSpec, Recipe
from .store import Store
from .translate import translator_name

KEPT = "kept"


@lru_cache(maxsize=1)
def _refusal() -> re.Pattern:
    raw = json.loads(resources.files("pipelines.data.resources").joinpath("filter_patterns.json").read_text("utf-8"))
    return re.compile("|".join(f"(?:{p})" for p in raw["refusal"]), re.IGNORECASE)


def is_refusal(text: str) -> bool:
    return bool(_refusal().search(text))


@dataclass
class Candidate:
    row_id: str
    instruction: str
    input: str
    output: str
    finish_reason: str | None
    untranslated: bool


def _outliers(cands: list[Candidate], k: float) -> set[str]:
    """Rows whose log length is more than k robust deviations (median absolute deviation) from the median."""
    if len(cands) < 10 or k <= 0:
        return set()
    logs = {c.row_id: math.log1p(len(c.output)) for c in cands}
    med = statistics.median(logs.values())
    mad = statistics.median(abs(v - med) for v in logs.values()) * 1.4826
    if mad == 0:
        return set()
    return {r for r, v in logs.items() if abs(v - med) / mad > k}


def decide(cands: list[Candidate], lang: str, spec: FilterSpec, lid: LanguageId | None) -> list[tuple[str, bool, str, str | None]]:
    """(row id, kept, reason, detected language) for each candidate."""
    outliers = _outliers([c for c in cands if c.output.strip()], spec.outlier_mad)
    seen: set[tuple[str, str, str]] = set()
    out = []
    for c in cands:
        text = c.output.strip()
        detected = None
        reason = KEPT
        if not text:
            reason = "empty"
        elif is_refusal(text):
            reason = "refusal"
        elif spec.drop_truncated and c.finish_reason == "length":
            reason = "truncated"
        elif len(text) < spec.min_chars:
            reason = "too_short"
        elif len(text) > spec.max_chars:
            reason = "too_long"
        elif c.row_id in outliers:
            reason = "length_outlier"
        elif spec.langid and lid is not None and not c.untranslated:
            ok, detected = lid.check(text, lang)
            if ok is False:
                reason = "langid_uncertain" if detected is None else "langid_mismatch"
        if reason == KEPT and spec.dedupe:
            key = (c.instruction.strip(), c.input.strip(), text)
            if key in seen:
                reason = "duplicate"
            seen.add(key)
        kept = reason == KEPT or (spec.keep_langid_failures and reason.startswith("langid_"))
        out.append((c.row_id, kept, reason, detected))
    return out


def candidates(recipe: Recipe, store: Store, lang: str, rows_by_id: dict[str, Any]) -> list[Candidate]:
    """Stored responses for ``lang`` joined with their (translated) instruction and input."""
    trans = {} if lang == "en" else store.translations(translator_name(recipe), lang)
    out = []
    for r in store.responses(recipe.respond.model, lang):
        src = rows_by_id.get(r["row_id"])
        if src is None:
            continue  # a response from an earlier recipe with other sources
        t = trans.get(r["row_id"])
        if lang != "en" and t is None:
            continue
        instruction, inp = (src.instruction, src.input) if lang == "en" else (t["instruction"], t["input"])
        out.append(Candidate(r["row_id"], instruction, inp, r["response"], r["finish_reason"],
                             lang != "en" and t["untranslated"]))
    return out


def run_filter(recipe: Recipe, store: Store, rows: list[Any], progress: bool = True) -> dict[str, dict[str, int]]:
    """Decide every language; returns {lang: {reason: count}} (``kept`` included)."""
    from tqdm.auto import tqdm

    spec = recipe.filter
    langs = recipe.work_languages
    lid = LanguageId(langs, spec.min_confidence) if spec.langid else None
    store.set_meta("langid_detectors", {c: lid.detectors.get(c) for c in langs} if lid else {})
    by_id = {r.id: r for r in rows}
    counts: dict[str, dict[str, int]] = {}
    for lang in tqdm(langs, desc="filter", unit="lang", disable=not progress):
        decisions = decide(candidates(recipe, store, lang, by_id), lang, spec, lid)
        store.replace_decisions(lang, [(r, k, why, d) for r, k, why, d in decisions])
        c = Counter(why for _, _, why, _ in decisions)
        c["kept_total"] = sum(1 for _, k, _, _ in decisions if k)
        counts[lang] = dict(c)
    return counts
