"""The 52 Bactrian-X languages: one source of truth, read from ``data/languages.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1, as the paper's dataset configs
    name: str  # English name
    native: str  # name in the language itself
    mbart: str  # mBART-50 locale code, e.g. zh_CN
    script: str  # ISO 15924 script
    group: str | None  # the paper's GPT-4-eval group (G1..G4) or None


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, Language], dict[str, tuple[str, ...]]]:
    raw = json.loads(resources.files("bactrian.data").joinpath("languages.json").read_text("utf-8"))
    groups = {g: tuple(codes) for g, codes in raw["eval_groups"].items()}
    group_of = {c: g for g, codes in groups.items() for c in codes}
    langs = {r["code"]: Language(group=group_of.get(r["code"]), **r) for r in raw["languages"]}
    return langs, groups


def all_languages() -> dict[str, Language]:
    """All 52 languages keyed by code, in alphabetical code order."""
    return dict(_load()[0])


def language_codes() -> list[str]:
    return list(_load()[0])


def non_english_codes() -> list[str]:
    """The 51 translation targets."""
    return [c for c in _load()[0] if c != "en"]


def eval_groups() -> dict[str, tuple[str, ...]]:
    """The paper's GPT-4 evaluation groups: G1 es fr pt; G2 ar id zh; G3 de it ru; G4 ja ko tr."""
    return dict(_load()[1])


def get_language(code: str) -> Language:
    """Look a language up by code (case-insensitive; accepts mBART codes like ``zh_CN``)."""
    langs = _load()[0]
    key = code.strip()
    if key.lower() in langs:
        return langs[key.lower()]
    for lang in langs.values():
        if lang.mbart.lower() == key.lower():
            return lang
    raise KeyError(f"unknown language {code!r}; known: {', '.join(langs)}")


def parse_languages(spec: str | list[str] | None) -> list[str]:
    """Parse ``"zh,es"`` / ``["zh"]`` / ``"all"`` / ``"G1"`` into validated language codes."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    groups = _load()[1]
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item == "all":
            out.extend(language_codes())
        elif item == "all-non-en":
            out.extend(non_english_codes())
        elif item.upper() in groups:
            out.extend(groups[item.upper()])
        else:
            out.append(get_language(item).code)
    return list(dict.fromkeys(out))


RTL_SCRIPTS = frozenset({"Arab", "Hebr"})  # Arabic, Persian, Urdu, Pashto; Hebrew


def is_rtl(code: str) -> bool:
    """True for languages written right to left (ar, fa, he, ps, ur)."""
    try:
        return get_language(code).script in RTL_SCRIPTS
    except KeyError:
        return False


@lru_cache(maxsize=1)
def _detector():
    """langid.py's model (``py3langid``, inside its wheel) over the 52 languages, or None when not installed.

    Not lingua: lingua's trigram mode took "Why do leaves change colour in autumn?" for Tagalog, and its full
    models take ~650 MB and seconds to load; langid knows all 52 languages, loads in half a second and named the
    language of all 60 demo questions."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        return None
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages([c for c in language_codes() if c in set(ident.labels)])
    return ident


def detect_language(text: str, min_confidence: float = 0.5) -> str | None:
    """The Bactrian-X language code ``text`` is most likely written in, or None (too short, unsure, no detector)."""
    detector = _detector()
    text = (text or "").strip()[:2000]
    if detector is None or not text:
        return None
    code, confidence = detector.classify(text)
    return code if confidence >= min_confidence else None
