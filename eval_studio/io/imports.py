"""Reading pairs and question sets from files. Every bad line is reported as ``FILE:LINE: field 'x': expected
..., got <JSON type> (<value>)``; an import is all-or-nothing (the whole file is validated before anything is
written), unless invalid lines are to be skipped (``--skip-invalid``): then they are listed and the rest imported.

Pairs JSONL: one object per line with ``id, question, answer_a, answer_b, model_a, model_b, language,
category`` and optional ``question_id``, ``params``, ``labels`` (a list of ``{annotator, winner}``, winner in
``a|b|tie|both_bad``) and ``digest_a``/``digest_b`` (each side's adapter weight digest, hex; lineage).

Question sets (JSONL), recognised per row:
- Vicuna-80: ``{question_id, text, category, lang?}``;
- LLMZoo's 10-language files: ``{id, label, query}`` (language from ``--language`` or a ``zh100.jsonl``-like name);
- MT-bench: ``{question_id, category, turns: [...], reference?: [...]}``;
- the Bactrian-X paper's examples: ``{lang, Question, ...}``;
- the project's own: ``{id, language, category, question}`` or ``{..., turns: [...]}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from eval_studio.store.repo import StoreError, check_digest
from eval_studio.store.tasks import (
    ImportReport,
    Label,
    PairRecord,
    QuestionRecord,
    import_pairs,
    import_question_set,
)

PAIR_FIELDS = ("id", "question", "answer_a", "answer_b", "model_a", "model_b", "language")
JSON_TYPES = ((bool, "boolean"), ((int, float), "number"), (str, "string"), (list, "array"), (dict, "object"))
T = TypeVar("T")


def normalize_language(code: Any) -> str:
    """An ISO code from ``zh``, ``ZH``, ``zh_CN``, ``zh-CN``, ``Chinese`` ...; unknown languages are an error."""
    from bactrian.languages import get_language

    text = str(code or "").strip()
    if not text:
        raise StoreError("language is missing")
    for candidate in (text, text.replace("-", "_"), re.split(r"[-_]", text)[0]):
        try:
            return get_language(candidate).code
        except KeyError:
            continue
    from bactrian.languages import all_languages

    for lang in all_languages().values():  # English names, as in the Bactrian-X examples ("Spanish")
        if text.lower() == lang.name.lower():
            return lang.code
    raise StoreError(f"unknown language {text!r}")


def read_jsonl(path: str | Path, skipped: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; a line that is not a JSON object is an error, or, given a
    ``skipped`` list, is listed there and left out."""
    path = Path(path)
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise StoreError(f"cannot read {path}: {e}") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problem = f"{path}:{n}: not valid JSON ({e.msg})"
        else:
            if isinstance(obj, dict):
                yield n, obj
                continue
            problem = f"{path}:{n}: expected a JSON object, got {describe(obj)}"
        if skipped is None:
            raise StoreError(problem)
        skipped.append(problem)


def parse_rows(path: str | Path, parse: Callable[[dict[str, Any], str], T], skipped: list[str] | None = None) -> list[T]:
    """``parse(object, "FILE:LINE")`` for every line. A ``StoreError`` stops everything, or, given a ``skipped``
    list, lists the line there and goes on."""
    out: list[T] = []
    for n, obj in read_jsonl(path, skipped):
        try:
            out.append(parse(obj, f"{path}:{n}"))
        except StoreError as e:
            if skipped is None:
                raise
            skipped.append(str(e))
    return out


def describe(value: Any) -> str:
    """A JSON value's type and (shortened) text, as an error message names what it got: ``boolean (true)``."""
    if value is None:
        return "null"
    kind = next((name for types, name in JSON_TYPES if isinstance(value, types)), type(value).__name__)
    text = json.dumps(value, ensure_ascii=False)
    return f"{kind} ({text if len(text) <= 40 else text[:37] + '...'})"


def field_text(obj: dict[str, Any], key: str, where: str, allow_empty: bool = False) -> str:
    """A string field; ids may be JSON numbers. The error names the field, what it expects and what it got."""
    value = obj.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("id", "question_id"):
        value = str(value)
    expected = "a string" if allow_empty else "a non-empty string"
    if not isinstance(value, str):
        raise StoreError(f"{where}: field {key!r}: expected {expected}, got {describe(value)}")
    if not allow_empty and not value.strip():
        raise StoreError(f"{where}: field {key!r}: expected {expected}, got an empty string")
    return value


def pair_from_obj(obj: dict[str, Any], where: str) -> PairRecord:
    missing = [k for k in PAIR_FIELDS if k not in obj]
    if missing:
        raise StoreError(f"{where}: missing field(s) {', '.join(missing)}")
    labels = obj.get("labels") or []
    if not isinstance(labels, list):
        raise StoreError(f"{where}: labels must be a list of {{annotator, winner}}")
    parsed = []
    for i, lab in enumerate(labels):
        if not isinstance(lab, dict) or not isinstance(lab.get("annotator"), str) or lab.get("winner") not in ("a", "b", "tie", "both_bad"):
            raise StoreError(f"{where}: labels[{i}] must be {{annotator: str, winner: a|b|tie|both_bad}}, got {lab!r}")
        parsed.append(Label(lab["annotator"], lab["winner"]))
    params = obj.get("params") or {}
    if not isinstance(params, dict):
        raise StoreError(f"{where}: params must be an object")
    category = obj.get("category")
    qid = obj.get("question_id")
    language = field_text(obj, "language", where)
    try:
        language = normalize_language(language)
    except StoreError as e:
        raise StoreError(f"{where}: {e}") from e
    return PairRecord(  # an empty answer is an answer (a model that said nothing should lose)
        id=field_text(obj, "id", where), question=field_text(obj, "question", where),
        answer_a=field_text(obj, "answer_a", where, allow_empty=True),
        answer_b=field_text(obj, "answer_b", where, allow_empty=True),
        model_a=field_text(obj, "model_a", where), model_b=field_text(obj, "model_b", where), language=language,
        category=None if category in (None, "") else str(category), question_id=None if qid in (None, "") else str(qid),
        params=params, labels=tuple(parsed), task=None if obj.get("task") in (None, "") else str(obj["task"]),
        digest_a=_digest(obj, "digest_a", where), digest_b=_digest(obj, "digest_b", where),
    )


def _digest(obj: dict[str, Any], key: str, where: str) -> str | None:
    try:
        return check_digest(obj.get(key))
    except StoreError as e:
        raise StoreError(f"{where}: field {key!r}: {e}") from e


def read_pairs(path: str | Path, skipped: list[str] | None = None) -> list[PairRecord]:
    """The pairs of a JSONL file; invalid lines raise, or are listed in ``skipped`` (when given) and left out."""
    return parse_rows(path, pair_from_obj, skipped)


def import_pairs_file(engine: Engine, path: str | Path, task: str | None = None, overlap: int | None = None,
                      skip_invalid: bool = False) -> ImportReport:
    """Import a pairs file in one transaction; ``skip_invalid``: import the valid lines, report the others."""
    skipped: list[str] | None = [] if skip_invalid else None
    report = import_pairs(engine, read_pairs(path, skipped), task=task, overlap=overlap)
    return replace(report, skipped=tuple(skipped or ()))


def _language_from_name(path: Path) -> str | None:
    """``zh100.jsonl`` / ``questions-zh.jsonl`` (LLMZoo's names) -> ``zh``; anything else says nothing."""
    m = re.match(r"^([a-z]{2})\d+$", path.stem) or re.match(r"^questions-([a-z]{2})$", path.stem)
    if m is None:
        return None
    try:
        return normalize_language(m.group(1))
    except StoreError:
        return None


def question_from_obj(obj: dict[str, Any], where: str, language: str | None, index: int) -> QuestionRecord:
    """One question in any of the recognised formats (see the module docstring)."""
    lang = obj.get("language") or obj.get("lang") or language
    if "query" in obj and "label" in obj:  # LLMZoo multilingual
        qid, turns, category = obj.get("id"), [obj["query"]], obj.get("label")
    elif "Question" in obj:  # Bactrian-X paper examples: no ids, numbered per language
        qid, turns, category = f"{obj.get('lang', lang)}-{index}", [obj["Question"]], obj.get("category")
    elif isinstance(obj.get("turns"), list):  # MT-bench or own multi-turn
        qid, turns, category = obj.get("question_id", obj.get("id")), obj["turns"], obj.get("category")
        lang = lang or "en"
    elif "text" in obj:  # Vicuna-80
        qid, turns, category = obj.get("question_id"), [obj["text"]], obj.get("category")
        lang = lang or "en"
    elif "question" in obj:  # the project's own set
        qid, turns, category = obj.get("id"), [obj["question"]], obj.get("category")
    else:
        raise StoreError(f"{where}: unrecognised question format (keys: {', '.join(sorted(obj))})")
    if qid in (None, ""):
        raise StoreError(f"{where}: question has no id")
    if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        raise StoreError(f"{where}: question text is empty")
    ref = obj.get("reference")
    try:
        code = normalize_language(lang)
    except StoreError as e:
        raise StoreError(f"{where}: {e} (pass --language)") from e
    return QuestionRecord(str(qid), code, tuple(turns), None if category in (None, "") else str(category),
                          tuple(ref) if isinstance(ref, list) and ref else None)


def read_questions(path: str | Path, language: str | None = None) -> list[QuestionRecord]:
    path = Path(path)
    language = language or _language_from_name(path)
    counters: dict[str, int] = {}
    out = []
    for n, obj in read_jsonl(path):
        key = str(obj.get("lang") or language)
        counters[key] = counters.get(key, 0) + 1
        out.append(question_from_obj(obj, f"{path}:{n}", language, counters[key]))
    return out


def import_question_file(engine: Engine, path: str | Path, name: str | None = None, language: str | None = None) -> ImportReport:
    path = Path(path)
    return import_question_set(engine, name or path.stem, read_questions(path, language), source=str(path))
