"""Build answer pairs from published model answers, for annotation or judging.

- Vicuna-80 style: a question file (``{question_id, text, category}``) plus one answer file per model
  (``{question_id, model_id, text}``, FastChat's ``answer_<model>.jsonl``);
- the Bactrian-X paper's examples: one row per question with one column per model.
Every unordered pair of models that answered a question becomes one pair (the UI and the judge randomise or
swap the display order themselves).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from eval_studio.io.imports import normalize_language, read_jsonl
from eval_studio.store.repo import StoreError
from eval_studio.store.tasks import PairRecord

# Non-answer columns of the Bactrian-X examples file.
BX_META = {"language", "lang", "pretrain_coverage", "Question"}


def _pairs(prefix: str, qid: str, question: str, language: str, category: str | None, answers: dict[str, str]) -> list[PairRecord]:
    return [
        PairRecord(id=f"{prefix}-{qid}-{a}-vs-{b}", question=question, answer_a=answers[a], answer_b=answers[b], model_a=a,
                   model_b=b, language=language, category=category, question_id=qid)
        for a, b in combinations(sorted(answers), 2)
    ]


def pairs_from_answer_files(questions: str | Path, answer_files: list[str | Path], language: str = "en", prefix: str | None = None) -> list[PairRecord]:
    questions = Path(questions)
    qs: dict[str, tuple[str, str | None]] = {}
    for n, obj in read_jsonl(questions):
        if "question_id" not in obj or not isinstance(obj.get("text"), str):
            raise StoreError(f"{questions}:{n}: expected {{question_id, text, category}}")
        qs[str(obj["question_id"])] = (obj["text"], obj.get("category"))
    answers: dict[str, dict[str, str]] = {}
    for path in answer_files:
        for n, obj in read_jsonl(path):
            qid, model, text = str(obj.get("question_id")), obj.get("model_id"), obj.get("text")
            if qid not in qs or not isinstance(model, str) or not isinstance(text, str):
                raise StoreError(f"{path}:{n}: expected {{question_id (in the question file), model_id, text}}")
            answers.setdefault(qid, {})[model] = text
    lang = normalize_language(language)
    out: list[PairRecord] = []
    for qid, (text, category) in qs.items():
        out += _pairs(prefix or questions.stem, qid, text, lang, category, answers.get(qid, {}))
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
        out += _pairs(prefix or path.stem, f"{lang}-{counters[lang]}", obj["Question"], lang, obj.get("category"), answers)
    return out
