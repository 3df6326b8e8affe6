"""Programming-content detection and protection of spans that must survive translation untouched.

Rows with programming content are left in English (the paper did not translate them). In other rows, inline
code, URLs, e-mail addresses and placeholders (``{name}``, ``<noinput>``, ``%s``) are masked as ``⟦n⟧`` before
translation and put back afterwards; when a backend loses or duplicates a marker, the prose between protected
spans is translated piece by piece instead, so the spans survive whatever the backend does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

_PROTECT = re.compile(
    r"`[^`\n]+`"  # inline code
    r"|https?://\S+[\w/]"  # URLs (without trailing punctuation)
    r"|\b[\w.+-]+@[\w-]+\.[\w.]+\b"  # e-mail addresses
    r"|\{\{?[\w .:-]*\}\}?"  # {placeholder}, {{placeholder}}
    r"|<[a-z_][\w-]*>"  # <noinput>, <name>
    r"|%[sd]\b|\$\w+"  # printf-style and shell-style variables
)
_MARKER = re.compile(r"⟦(\d+)⟧")


@dataclass(frozen=True)
class _Patterns:
    anywhere: tuple[re.Pattern, ...]
    instruction_only: tuple[re.Pattern, ...]


@lru_cache(maxsize=1)
def _patterns() -> _Patterns:
    raw = json.loads(resources.files("pipelines.data.resources").joinpath("code_patterns.json").read_text("utf-8"))
    comp = lambda ps, flags: tuple(re.compile(p, flags) for p in ps)  # noqa: E731
    return _Patterns(comp(raw["anywhere"], re.MULTILINE), comp(raw["instruction_only"], re.IGNORECASE))


def is_programming(instruction: str, input: str = "", output: str = "") -> bool:
    """True when the row is about code (then it is kept untranslated)."""
    pats = _patterns()
    if any(p.search(instruction) for p in pats.instruction_only):
        return True
    text = "\n".join((instruction, input, output))
    return any(p.search(text) for p in pats.anywhere)


def mask(text: str) -> tuple[str, list[str]]:
    """Replace protected spans with ``⟦0⟧``, ``⟦1⟧``...; returns the masked text and the spans."""
    spans: list[str] = []

    def sub(m: re.Match) -> str:
        spans.append(m.group(0))
        return f"⟦{len(spans) - 1}⟧"

    return _PROTECT.sub(sub, text), spans


def unmask(text: str, spans: list[str]) -> str | None:
    """Put the spans back; None when any marker is missing, duplicated or unknown."""
    found = [int(m) for m in _MARKER.findall(text)]
    if sorted(found) != list(range(len(spans))):
        return None
    return _MARKER.sub(lambda m: spans[int(m.group(1))], text)


def pieces(text: str) -> list[tuple[str, bool]]:
    """The text split into (piece, translatable) parts; protected spans and bare whitespace are not translatable."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in _PROTECT.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], True))
        out.append((m.group(0), False))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], True))
    return [(p, t and bool(re.search(r"\w", p))) for p, t in out]
