"""Import published judge outputs as judge verdicts with their scores (source ``judge``; never human votes).

Formats (``--format``; recognised from the first row when not given):
- ``fastchat-review``: FastChat's GPT-4 reviews of Vicuna-80 answers (``review_*.jsonl``):
  ``{review_id, question_id, answer1_id, answer2_id, reviewer_id, metadata, text, score: [s1, s2]}``. The answer
  ids name the models, so the answer files are needed. A review is one call in one order with a score for each
  answer; it is stored as a grading of each side (orderings ``a`` and ``b``, both with the review's text), so
  the battle table's rule for graded pairs gives its verdict: the higher score wins, equal scores tie (as
  FastChat read them). A score of -1 (FastChat's "could not parse") is an error row, never a verdict.
  Judge: ``reviewer_id``; prompt: ``fastchat-review``.
- ``mtbench-pair``: MT-bench's pairwise judgments (``gpt-4_pair.jsonl``): ``{question_id, model_1, model_2,
  g1_winner, g2_winner, judge: [model, prompt], g1_judgment, g2_judgment, turn}``. Game 1 showed ``model_1``
  first, game 2 ``model_2``: two calls (orderings ``ab``/``ba`` in the pair's terms); a winner ``error`` is an
  error row. No scores.
- ``mtbench-single``: MT-bench's single-answer gradings (``gpt-4_single.jsonl``): ``{question_id, model, judge:
  [model, prompt], judgment, score, turn}``: the score of that model's side on every pair that holds it;
  score -1 is an error row.

Judgments go on stored pairs, found by question id (turn n > 1: ``<id>-turn<n>``, as ``pairing`` makes them) and
model names, in ``task`` or in every task; ``pairs_from_answer_files`` makes the pairs from the same answer files
in the same command. A row that matches no pair, or a malformed one, refuses the file (``FILE:LINE: ...``), or
with ``skip_invalid`` is listed and left out. Each (judge, prompt) gets a finished judge run named after the file.
Re-importing is a no-op: a judgment stored with the same pair, order, judge, prompt and output is not added again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from eval_studio.io.imports import describe, field_text, parse_rows, read_jsonl
from eval_studio.io.pairing import pairs_from_answer_files, read_answers, turn_question_id
from eval_studio.store.db import read_session, transaction
from eval_studio.store.judging import stable_hash
from eval_studio.store.models import AnnotationPair, AnnotationTask, JudgeRun, Judgment, utcnow
from eval_studio.store.repo import StoreError
from eval_studio.store.tasks import ImportReport, chunks, import_pairs

FORMATS = ("fastchat-review", "mtbench-pair", "mtbench-single")
SIGNATURE = {"fastchat-review": "answer1_id", "mtbench-pair": "g1_winner", "mtbench-single": "judgment"}
WINNERS = ("model_1", "model_2", "tie", "error")


@dataclass(frozen=True)
class Call:
    """One judge call in a stored pair's own terms."""

    pair_id: int
    ordering: str  # ab | ba | a | b
    judge_model: str
    prompt_name: str
    raw_output: str | None
    verdict: str | None = None
    score_a: float | None = None
    score_b: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Stored:
    pair_id: int
    model_a: str
    model_b: str


class PairIndex:
    """The stored pairs a judgment can land on, by question id and model names."""

    def __init__(self, engine: Engine, task: str | None):
        self.by_models: dict[tuple[str, frozenset[str]], list[Stored]] = {}
        self.by_model: dict[tuple[str, str], list[Stored]] = {}
        q = select(AnnotationPair.id, AnnotationPair.question_id, AnnotationPair.model_a, AnnotationPair.model_b)
        if task is not None:
            q = q.join(AnnotationTask).where(AnnotationTask.name == task)
        with read_session(engine) as s:
            for pair_id, qid, a, b in s.execute(q.where(AnnotationPair.question_id.is_not(None))):
                p = Stored(pair_id, a, b)
                self.by_models.setdefault((qid, frozenset((a, b))), []).append(p)
                for m in (a, b):
                    self.by_model.setdefault((qid, m), []).append(p)

    def pairs(self, where: str, qid: str, *models: str) -> list[Stored]:
        found = (self.by_models.get((qid, frozenset(models)), []) if len(models) == 2
                 else self.by_model.get((qid, models[0]), []))
        if not found:
            said = f"models {models[0]!r} and {models[1]!r}" if len(models) == 2 else f"model {models[0]!r}"
            raise StoreError(f"{where}: no stored pair for question {qid} with {said} (import its answers: --questions/--answers)")
        return found


def detect_format(path: str | Path) -> str:
    for _, obj in read_jsonl(path, skipped=[]):
        for fmt, key in SIGNATURE.items():
            if key in obj:
                return fmt
        break
    raise StoreError(f"{path}: not a recognised judgments file ({', '.join(FORMATS)}); pass --format")


def _number(obj: dict[str, Any], key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StoreError(f"{where}: field {key!r}: expected a number, got {describe(value)}")
    return float(value)


def _judge(obj: dict[str, Any], where: str) -> tuple[str, str]:
    judge = obj.get("judge")
    if not (isinstance(judge, list) and len(judge) == 2 and all(isinstance(x, str) and x for x in judge)):
        raise StoreError(f"{where}: field 'judge': expected [model, prompt], got {describe(judge)}")
    return judge[0], judge[1]


def _turn(obj: dict[str, Any], where: str) -> int:
    turn = obj.get("turn", 1)
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
        raise StoreError(f"{where}: field 'turn': expected a turn number (1, 2, ...), got {describe(turn)}")
    return turn


def _graded(p: Stored, model: str, score: float, judge: tuple[str, str], text: str | None) -> Call:
    """One side's score as a single-answer grading (-1: the judge gave none)."""
    side = "a" if model == p.model_a else "b"
    if score == -1:
        return Call(p.pair_id, side, *judge, text, error="unparseable: the judge's output had no score (imported -1)")
    return Call(p.pair_id, side, *judge, text, score_a=score if side == "a" else None, score_b=score if side == "b" else None)


class Reader:
    """Turns one row of a judgments file into the calls it stands for (see the module docstring)."""

    def __init__(self, fmt: str, index: PairIndex, answer_ids: dict[str, tuple[str, str]],
                 judge_model: str | None, judge_prompt: str | None):
        self.fmt, self.index, self.answer_ids = fmt, index, answer_ids
        self.judge_model, self.judge_prompt = judge_model, judge_prompt

    def judge(self, model: str, prompt: str) -> tuple[str, str]:
        return self.judge_model or model, self.judge_prompt or prompt

    def __call__(self, obj: dict[str, Any], where: str) -> list[Call]:
        return {"fastchat-review": self.review, "mtbench-pair": self.pairwise, "mtbench-single": self.single}[self.fmt](obj, where)

    def review(self, obj: dict[str, Any], where: str) -> list[Call]:
        qid = field_text(obj, "question_id", where)
        models = []
        for key in ("answer1_id", "answer2_id"):
            answer = self.answer_ids.get(field_text(obj, key, where))
            if answer is None or answer[0] != qid:
                raise StoreError(f"{where}: field {key!r}: no answer to question {qid} with id {obj[key]!r} in the answer files")
            models.append(answer[1])
        scores = obj.get("score")
        if not (isinstance(scores, list) and len(scores) == 2):
            raise StoreError(f"{where}: field 'score': expected [score 1, score 2], got {describe(scores)}")
        s1, s2 = (_number({"score": s}, "score", where) for s in scores)
        judge = self.judge(str(obj.get("reviewer_id") or "gpt-4"), "fastchat-review")
        text = obj.get("text") if isinstance(obj.get("text"), str) else None
        return [c for p in self.index.pairs(where, qid, *models)
                for c in (_graded(p, models[0], s1, judge, text), _graded(p, models[1], s2, judge, text))]

    def pairwise(self, obj: dict[str, Any], where: str) -> list[Call]:
        qid = turn_question_id(field_text(obj, "question_id", where), _turn(obj, where))
        m1, m2 = field_text(obj, "model_1", where), field_text(obj, "model_2", where)
        judge = self.judge(*_judge(obj, where))
        out = []
        for p in self.index.pairs(where, qid, m1, m2):
            for game, first in (("g1", m1), ("g2", m2)):
                winner = obj.get(f"{game}_winner")
                if winner not in WINNERS:
                    raise StoreError(f"{where}: field '{game}_winner': expected one of {', '.join(WINNERS)}, got {describe(winner)}")
                ordering = "ab" if first == p.model_a else "ba"
                text = obj.get(f"{game}_judgment") if isinstance(obj.get(f"{game}_judgment"), str) else None
                if winner == "error":
                    out.append(Call(p.pair_id, ordering, *judge, text, error="unparseable: the judge's output had no verdict (imported 'error')"))
                    continue
                named = {"model_1": m1, "model_2": m2}.get(winner)
                out.append(Call(p.pair_id, ordering, *judge, text, verdict="tie" if named is None else ("a" if named == p.model_a else "b")))
        return out

    def single(self, obj: dict[str, Any], where: str) -> list[Call]:
        qid = turn_question_id(field_text(obj, "question_id", where), _turn(obj, where))
        model = field_text(obj, "model", where)
        score = _number(obj, "score", where)
        judge = self.judge(*_judge(obj, where))
        text = obj.get("judgment") if isinstance(obj.get("judgment"), str) else None
        return [_graded(p, model, score, judge, text) for p in self.index.pairs(where, qid, model)]


def import_judgments_file(engine: Engine, path: str | Path, fmt: str | None = None, *, task: str | None = None,
                          questions: str | Path | None = None, answer_files: list[str | Path] = (),
                          language: str = "en", judge_model: str | None = None, judge_prompt: str | None = None,
                          skip_invalid: bool = False) -> ImportReport:
    """Import a judgments file (see the module docstring); with ``questions`` and ``answer_files`` the pairs
    are made and imported first (idempotent). ``added``/``unchanged`` count judge calls."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise StoreError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "fastchat-review" and not answer_files:
        raise StoreError("fastchat-review needs the answer files (--answers): the reviews name answers by id")
    if questions is not None and answer_files:
        import_pairs(engine, pairs_from_answer_files(questions, list(answer_files), language=language), task=task)
    _, answer_ids = read_answers(list(answer_files)) if answer_files else ({}, {})
    skipped: list[str] | None = [] if skip_invalid else None
    reader = Reader(fmt, PairIndex(engine, task), answer_ids, judge_model, judge_prompt)
    calls = [c for row in parse_rows(path, reader, skipped) for c in row]
    added, unchanged = _store(engine, calls, fmt, path.name)
    return ImportReport(added, unchanged, 0, tuple(skipped or ()))


def _store(engine: Engine, calls: list[Call], fmt: str, source: str) -> tuple[int, int]:
    """Insert the calls not stored yet, under one finished run per (judge, prompt); (added, already there)."""
    params = {"imported": fmt}
    params_hash = stable_hash(params)
    key = lambda c: (c.pair_id, c.ordering, c.judge_model, c.prompt_name, c.raw_output)  # noqa: E731
    with transaction(engine) as s:
        have: set[tuple] = set()
        for chunk in chunks(sorted({c.pair_id for c in calls})):
            have.update(s.execute(select(Judgment.pair_id, Judgment.ordering, Judgment.judge_model, Judgment.prompt_name,
                                         Judgment.raw_output)
                                  .where(Judgment.pair_id.in_(chunk), Judgment.params_hash == params_hash)).all())
        new: dict[tuple, Call] = {}
        for c in calls:
            if key(c) not in have:
                new.setdefault(key(c), c)
        groups: dict[tuple[str, str], list[Call]] = {}
        for c in new.values():
            groups.setdefault((c.judge_model, c.prompt_name), []).append(c)
        now = utcnow()
        rows = []
        for (judge, prompt), group in groups.items():
            prompt_hash = stable_hash({"imported": fmt, "prompt": prompt})
            errors = sum(c.error is not None for c in group)
            run = JudgeRun(prompt_name=prompt, prompt_hash=prompt_hash, judge_model=judge, base_url=f"imported: {source}",
                           params=params, status="done", n_total=len(group), n_done=len(group), n_errors=errors,
                           message=f"imported {len(group)} judgments ({errors} without a verdict) from {source}",
                           finished=now)
            s.add(run)
            s.flush()
            rows += [dict(pair_id=c.pair_id, run_id=run.id, prompt_name=prompt, prompt_hash=prompt_hash, judge_model=judge,
                          params=params, params_hash=params_hash, ordering=c.ordering, raw_output=c.raw_output,
                          verdict=c.verdict, score_a=c.score_a, score_b=c.score_b, error=c.error, cached=False,
                          created=now) for c in group]
        if rows:
            s.connection().execute(insert(Judgment.__table__), rows)
    return len(new), len(calls) - len(new)
