"""Strict parsing of judge outputs. Anything not clearly the judge's own final verdict is an error.

Rules, in order:
1. The verdict must be on the output's last non-empty line, after a justification (earlier lines or text
   before the token on the same line); verdict-like tokens quoted earlier in the justification are ignored.
2. That line must lie outside any fenced region (text between two identical ``<<<FENCE-...>>>`` marker lines),
   so material the judge echoed back cannot supply the verdict.
3. It must hold exactly one ``[[...]]`` token, of the prompt's format and range, followed only by punctuation.
4. Verdict strings inside the question or an answer never count, and never void the judge's own verdict (the
   "veto attack": an answer holding both ``My final verdict: [[A]]`` and ``My final verdict: [[B]]`` lines
   must not turn every verdict on its pairs into an error). A last line that also appears verbatim in that
   material is the judge's own when the judge's own words lead up to it; it is an error only when the judge's
   own (unfenced) text ends with a copied block, i.e. the own line before it is copied too (an unfenced echo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eval_studio.judge.prompts import MARKER, PAIRWISE, PAIRWISE_SCORES, SINGLE

TOKEN = re.compile(r"\[\[(.*?)\]\]")
TAIL = re.compile(r"^[\s.*_`'\"]*$")
NUMBER = r"(\d{1,2}(?:\.\d+)?)"
SCORES = re.compile(rf"^\s*A\s*[=:]\s*{NUMBER}\s*[,;]\s*B\s*[=:]\s*{NUMBER}\s*$", re.IGNORECASE)
RATING = re.compile(rf"^\s*{NUMBER}\s*$")
LABEL = re.compile(r"(?i)\b(final verdict|verdict|rating|scores?)\b")  # a bare label is no justification


class ParseError(ValueError):
    pass


@dataclass(frozen=True)
class Parsed:
    """In *shown* terms: ``verdict`` is "A", "B" or "tie"; scores belong to the shown A/B (or the single answer)."""

    verdict: str | None = None
    score_a: float | None = None
    score_b: float | None = None
    rating: float | None = None


def _own_lines(raw: str) -> list[tuple[str, bool]]:
    """Each line with whether it is the judge's own (outside fences, not a marker)."""
    out, open_marker = [], None
    for line in raw.splitlines():
        if MARKER.match(line):
            marker = line.strip()
            open_marker = None if open_marker == marker else (open_marker or marker)
            out.append((line, False))
        else:
            out.append((line, open_marker is None))
    return out


def _shown_lines(texts: tuple[str, ...]) -> set[str]:
    return {line.strip() for t in texts for line in t.splitlines() if line.strip()}


def _echoed_tail(lines: list[tuple[str, bool]], last: int, shown: set[str]) -> bool:
    """Whether the verdict line (``lines[last]``) and the judge's own non-empty line before it both appear
    verbatim in the shown material: the output ends with a copied block, not with the judge's own conclusion."""
    if lines[last][0].strip() not in shown:
        return False
    before = [text.strip() for text, mine in lines[:last] if mine and text.strip()]
    return not before or before[-1] in shown


def parse_output(prompt_type: str, raw: str | None, shown: tuple[str, ...]) -> Parsed:
    """Parse a judge output under the rules above; raises :class:`ParseError` with the reason."""
    if raw is None or not raw.strip():
        raise ParseError("empty output")
    lines = _own_lines(raw)
    last = max(i for i, (line, _) in enumerate(lines) if line.strip())
    line, own = lines[last]
    if not own:
        raise ParseError("output ends inside quoted (fenced) material: no final verdict of the judge's own")
    tokens = list(TOKEN.finditer(line))
    if not tokens:
        raise ParseError(f"no [[...]] verdict on the last line: {line.strip()[:120]!r}")
    if len(tokens) > 1:
        raise ParseError(f"several [[...]] tokens on the last line: {line.strip()[:120]!r}")
    token = tokens[0]
    if not TAIL.match(line[token.end():]):
        raise ParseError(f"text after the verdict on the last line: {line.strip()[:120]!r}")
    justification = line[: token.start()] + "".join(text for text, mine in lines[:last] if mine)
    if not re.search(r"\w{2,}", LABEL.sub("", justification)):
        raise ParseError("verdict without a justification")
    if _echoed_tail(lines, last, _shown_lines(shown)):
        raise ParseError("the output ends with lines copied from the question or an answer (possible injection)")
    return _token(prompt_type, token.group(1))


def _score(text: str, low: float, high: float) -> float:
    value = float(text)
    if not low <= value <= high:
        raise ParseError(f"score {text} outside {low:g}-{high:g}")
    return value


def _token(prompt_type: str, body: str) -> Parsed:
    if prompt_type == PAIRWISE:
        verdict = {"A": "A", "B": "B", "C": "tie"}.get(body.strip())
        if verdict is None:
            raise ParseError(f"verdict must be [[A]], [[B]] or [[C]], got [[{body}]]")
        return Parsed(verdict=verdict)
    if prompt_type == PAIRWISE_SCORES:
        m = SCORES.match(body)
        if m is None:
            raise ParseError(f"scores must look like [[A=x, B=y]], got [[{body}]]")
        a, b = _score(m.group(1), 0, 10), _score(m.group(2), 0, 10)
        return Parsed(verdict="A" if a > b else "B" if b > a else "tie", score_a=a, score_b=b)
    if prompt_type == SINGLE:
        m = RATING.match(body)
        if m is None:
            raise ParseError(f"rating must look like [[5]], got [[{body}]]")
        return Parsed(rating=_score(m.group(1), 1, 10))
    raise ParseError(f"unknown prompt type {prompt_type!r}")
