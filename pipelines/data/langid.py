"""Language identification for the filter step: every one of the 52 languages is checked, by a named detector.

lingua (``lingua-language-detector``) covers 45 of the 52; for the 7 it lacks (gl, km, ml, my, ne, ps, si)
``py3langid`` (langid.py's model, shipped inside its wheel: nothing is downloaded at run time) decides. Each
detector chooses among the recipe's languages + English that it knows, as lingua always has. ``detectors``
names the one used per language, for the data report.
"""

from __future__ import annotations

from typing import Any

LINGUA = "lingua"
LANGID = "py3langid"


def _lingua_languages(codes: list[str]) -> dict[str, Any]:
    from lingua import IsoCode639_1, Language

    out: dict[str, Any] = {}
    for c in codes:
        try:
            out[c] = Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper()))
        except (AttributeError, ValueError):
            continue  # gl, km, ml, my, ne, ps, si: not in lingua
    return out


class LanguageId:
    """(matches, detected code) per text; ``detectors``: language -> the detector that checks it (None: none)."""

    def __init__(self, codes: list[str], min_confidence: float):
        from lingua import LanguageDetectorBuilder

        candidates = list(dict.fromkeys(["en", *codes]))
        self.supported = _lingua_languages(candidates)
        langs = list(self.supported.values())
        self.detector = LanguageDetectorBuilder.from_languages(*langs).build() if len(langs) > 1 else None
        self.min_confidence = min_confidence
        self._langid: Any = None
        self.detectors: dict[str, str | None] = {c: LINGUA if c in self.supported and self.detector else None
                                                 for c in candidates}
        rest = [c for c in candidates if self.detectors[c] is None]
        if rest:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            known = [c for c in candidates if c in set(ident.labels)]
            if len(known) > 1 and any(c in known for c in rest):
                ident.set_languages(known)
                self._langid = ident
                self.detectors.update({c: LANGID for c in rest if c in known})

    def check(self, text: str, lang: str) -> tuple[bool | None, str | None]:
        """(matches, detected code); matches None when no detector knows the language."""
        which = self.detectors.get(lang)
        if which is None:
            return None, None
        if which == LANGID:
            code, p = self._langid.classify(text[:2000])
            return (code == lang, code) if p >= self.min_confidence else (False, None)
        values = self.detector.compute_language_confidence_values(text[:2000])
        if not values:
            return False, None
        top = values[0]
        if top.value < self.min_confidence:
            return False, None
        code = top.language.iso_code_639_1.name.lower()
        return code == lang, code
