"""Build answer pairs from published model answers, for annotation or judging.

- Vicuna-80 style: a question file (``{question_id, text, category}``) plus one answer file per model
  (``{question_id, model_id, text}``, FastChat's ``answer_<model>.jsonl``); MT-bench's (``{question_id, turns}``
  and ``model_answer/<model>.jsonl``: ``{question_id, model_id, choices: [{turns}]}``), one pair per turn;
- the Bactrian-X paper's examples: one row per question with one column per model.
Every unordered pair of models that answered a question becomes one pair (the UI and the judge randomise or
swap the display order themselves).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

from eval_studio.io.imports import normalize_language, read_jsonl
from eval_studio.store.repo import StoreError
from eval_studio.store.tasks import PairRecord

# Non-answer columns of the Bactrian-X examples file.
BX_META = {"language", "lang", "pretrain_coverage", "Question"}


def question_pairs(prefix: str, qid: str, question: str, language: str, category: str | None,
                   answers: dict[str, str]) -> list[PairRecord]:
    """Every unordered pair of models that answered one question (``answers``: model -> text), names in sorted
    order, ids ``<prefix>-<qid>-<a>-vs-<b>`` (the prefix should name the set and, for a multilingual set, the
    language)."""
    return [
        PairRecord(id=f"{prefix}-{qid}-{a}-vs-{b}", question=question, answer_a=answers[a], answer_b=answers[b], model_a=a,
                   model_b=b, language=language, category=category, question_id=qid)
        for a, b in combinations(sorted(answers), 2)
    ]


def turn_question_id(question_id: str, turn: int) -> str:
    """How pairs store the question id of a conversation's turn: ``81`` for turn 1, ``81-turn2`` for turn 2."""
    return question_id if turn == 1 else f"{question_id}-turn{turn}"


def _turns(obj: dict[str, Any], where: str, expected: str) -> tuple[str, ...]:
    """A question's or answer's text(s): Vicuna's ``text``, or MT-bench's ``turns`` / ``choices[0].turns``."""
    if isinstance(obj.get("text"), str):
        return (obj["text"],)
    turns = obj.get("turns")
    choices = obj.get("choices")
    if turns is None and isinstance(choices, list) and choices and isinstance(choices[0], dict):
        turns = choices[0].get("turns")
    if isinstance(turns, list) and turns and all(isinstance(t, str) for t in turns):
        return tuple(turns)
    raise StoreError(f"{where}: expected {expected}")


def read_answers(answer_files: list[str | Path], question_ids: set[str] | None = None
                 ) -> tuple[dict[str, dict[str, tuple[str, ...]]], dict[str, tuple[str, str]]]:
    """(question id -> model -> its answer's turns, answer id -> (question id, model)) from answer files."""
    expected = "{question_id (in the question file), model_id, text or choices}"
    answers: dict[str, dict[str, tuple[str, ...]]] = {}
    by_id: dict[str, tuple[str, str]] = {}
    for path in answer_files:
        for n, obj in read_jsonl(path):
            qid, model = str(obj.get("question_id")), obj.get("model_id")
            if (question_ids is not None and qid not in question_ids) or not isinstance(model, str):
                raise StoreError(f"{path}:{n}: expected {expected}")
            answers.setdefault(qid, {})[model] = _turns(obj, f"{path}:{n}", expected)
            if obj.get("answer_id") is not None:
                by_id[str(obj["answer_id"])] = (qid, model)
    return answers, by_id


def pairs_from_answer_files(questions: str | Path, answer_files: list[str | Path], language: str = "en", prefix: str | None = None) -> list[PairRecord]:
    """Pairs from a question file and answer files (Vicuna-80 or MT-bench); MT-bench's second turn makes pairs of
    its own (question id ``<id>-turn2``: the follow-up question and each model's answer to it)."""
    questions = Path(questions)
    qs: dict[str, tuple[tuple[str, ...], str | None]] = {}
    for n, obj in read_jsonl(questions):
        expected = "{question_id, text or turns, category}"
        if "question_id" not in obj:
            raise StoreError(f"{questions}:{n}: expected {expected}")
        qs[str(obj["question_id"])] = (_turns(obj, f"{questions}:{n}", expected), obj.get("category"))
    answers, _ = read_answers(answer_files, set(qs))
    lang = normalize_language(language)
    out: list[PairRecord] = []
    for qid, (turns, category) in qs.items():
        for turn, text in enumerate(turns, 1):
            said = {m: a[turn - 1] for m, a in answers.get(qid, {}).items() if len(a) >= turn}
            out += question_pairs(prefix or questions.stem, turn_question_id(qid, turn), text, lang, category, said)
    return out


def pairs_from_examples(path: str | Path, prefix: str | None = None) -> list[PairRecord]:
    """The Bactrian-X examples (``{lang, Question, <model>: answer, ...}``), numbered per language."""
    path = Path(path)
    out: list[PairRecord] = []
    counters: dict[str, int] = {}
    for n, obj in read_jsonl(path):
        if not isinstance(obj.get("Question"), str):
            raise StoreError(f"{path}:{n}: expected a 'Question' field")
        lang = normalize_language(obj.get("lang") or obj.get("language"))
        counters[lang] = counters.get(lang, 0) + 1
        answers = {k: v for k, v in obj.items() if k not in BX_META and isinstance(v, str)}
        out += question_pairs(prefix or path.stem, f"{lang}-{counters[lang]}", obj["Question"], lang, obj.get("category"), answers)
    return out
