"""Dataset loaders the task YAML files name as ``custom_dataset``.

lm-eval calls them as ``loader(**metadata, **dataset_kwargs)``: ``language`` comes from the per-language YAML,
``data_root`` / ``sentimentx_file`` from ``--metadata`` (or ``TaskManager(metadata=...)``), ``hub_id`` from the
Hub variant's YAML. Local files are turned into the Hub datasets' schema, so one prompt serves both variants.
Unrelated keys (lm-eval also passes the model arguments) are ignored.
"""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

SENTIMENT_LABELS = ("negative", "neutral", "positive")


class BenchDataError(ValueError):
    """A benchmark file is missing or malformed; the message names the file and what to do."""


# -- where the local files live (the layout of ../shared/data/benchmarks) ------------------------------------
def xcopa_file(root: str | Path, language: str) -> Path:
    return Path(root) / "xcopa" / "data" / language / f"test.{language}.jsonl"


def xwinograd_file(root: str | Path, language: str = "") -> Path:
    return Path(root) / "xwinograd" / "dataset.tsv"


def xstorycloze_file(root: str | Path, language: str, split: str = "eval") -> Path:
    return Path(root) / "xstorycloze" / f"spring2016.val.{language}.tsv.split_20_80_{split}.tsv"


LOCAL_FILES = {"xcopa": xcopa_file, "xwinograd": xwinograd_file, "xstorycloze": xstorycloze_file}


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BenchDataError(f"{what}: missing data file {path}")
    return path


def _root(data_root: str | None, bench: str) -> Path:
    if not data_root:
        raise BenchDataError(f"{bench}: local task needs `data_root` (bactrian bench --data-root, or "
                             f"lm_eval --metadata '{{\"data_root\": \"DIR\"}}')")
    return Path(data_root).expanduser()


def _dataset_dict(splits: dict[str, list[dict]]):
    from datasets import Dataset, DatasetDict

    return DatasetDict({name: Dataset.from_list(rows) for name, rows in splits.items()})


# -- XCOPA -----------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def xcopa_connectors() -> dict[str, dict[str, str]]:
    """The word for "because"/"therefore" per language (lm-eval's xcopa values), kept as data."""
    text = resources.files("pipelines.bench.tasks").joinpath("xcopa", "connectors.json").read_text("utf-8")
    return json.loads(text)


def load_xcopa(language: str, data_root: str | None = None, hub_id: str | None = None, **_: Any):
    connectors = xcopa_connectors()
    if language not in connectors:
        raise BenchDataError(f"xcopa: no connectors for language {language!r}")
    conn = connectors[language]
    if hub_id:
        from datasets import load_dataset

        return load_dataset(hub_id, language).map(lambda d: {"connector": conn[d["question"]]})
    path = _need(xcopa_file(_root(data_root, "xcopa"), language), f"xcopa {language}")
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return _dataset_dict({"test": [{**r, "connector": conn[r["question"]]} for r in rows]})


# -- XStoryCloze -----------------------------------------------------------------------------------------------
_STORY_COLUMNS = {  # raw tsv header -> juletxara/xstory_cloze field
    "InputStoryid": "story_id",
    "InputSentence1": "input_sentence_1",
    "InputSentence2": "input_sentence_2",
    "InputSentence3": "input_sentence_3",
    "InputSentence4": "input_sentence_4",
    "RandomFifthSentenceQuiz1": "sentence_quiz1",
    "RandomFifthSentenceQuiz2": "sentence_quiz2",
    "AnswerRightEnding": "answer_right_ending",
}


def read_story_tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = set(_STORY_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise BenchDataError(f"{path}: not an XStoryCloze tsv (missing columns {sorted(missing)})")
        rows = []
        for r in reader:
            row = {new: r[old] for old, new in _STORY_COLUMNS.items()}
            row["answer_right_ending"] = int(row["answer_right_ending"])
            rows.append(row)
    return rows


def load_xstorycloze(language: str, data_root: str | None = None, hub_id: str | None = None, **_: Any):
    if hub_id:
        from datasets import load_dataset

        return load_dataset(hub_id, language)
    root = _root(data_root, "xstorycloze")
    hint = " (English XStoryCloze is not redistributable: place your copy under this name)" if language == "en" else ""
    splits = {"eval": read_story_tsv(_need(xstorycloze_file(root, language), f"xstorycloze {language}{hint}"))}
    train = xstorycloze_file(root, language, "train")
    if train.is_file():
        splits["train"] = read_story_tsv(train)
    return _dataset_dict(splits)


# -- XWinograd -------------------------------------------------------------------------------------------------
_PTB_QUOTES = {"``": '"', "''": '"'}  # the tokens use Penn-Treebank quotes; the sentences plain ones


def _char_spans(sentence: str, tokens: list[str]) -> list[tuple[int, int]] | None:
    spans, pos = [], 0
    for tok in tokens:
        for form in (tok, _PTB_QUOTES.get(tok)):
            i = sentence.find(form, pos) if form else -1
            if i >= 0:
                spans.append((i, i + len(form)))
                pos = i + len(form)
                break
        else:
            return None
    return spans


def xwinograd_row(fields: list[str]) -> dict | None:
    """One raw ``dataset.tsv`` line -> Muennighoff/xwinograd's ``{sentence with _, option1, option2, answer}``."""
    lang, _src, _en, sentence, tokens, pronoun, candidates = fields
    tokens, pronoun, candidates = json.loads(tokens), json.loads(pronoun), json.loads(candidates)
    spans = _char_spans(sentence, tokens)
    if spans is None or len(candidates) != 2:
        return None
    start, end = pronoun[1]
    blanked = sentence[: spans[start][0]] + "_" + sentence[spans[end - 1][1] :]
    answer = "1" if candidates[0][3] else "2"
    return {"lang": lang, "sentence": blanked.strip(), "option1": candidates[0][0], "option2": candidates[1][0], "answer": answer}


def read_xwinograd(path: Path, language: str) -> list[dict]:
    rows, bad = [], 0
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 7:
                raise BenchDataError(f"{path}:{n}: expected 7 tab-separated fields, found {len(fields)}")
            if fields[0] != language:
                continue
            row = xwinograd_row(fields)
            if row is None:
                bad += 1
            else:
                rows.append(row)
    if bad:  # never silently: a changed file would change the test set
        raise BenchDataError(f"{path}: {bad} {language} rows could not be aligned with their tokens")
    return rows


def load_xwinograd(language: str, data_root: str | None = None, hub_id: str | None = None, **_: Any):
    if hub_id:
        from datasets import load_dataset

        return load_dataset(hub_id, language)
    path = _need(xwinograd_file(_root(data_root, "xwinograd")), "xwinograd")
    rows = read_xwinograd(path, language)
    if not rows:
        raise BenchDataError(f"xwinograd: no rows for language {language!r} in {path}")
    return _dataset_dict({"test": rows})


# -- SentimentX (user-supplied) ---------------------------------------------------------------------------------
def read_sentiment_file(path: str | Path) -> list[dict]:
    """Rows ``{text, label, language}`` from .jsonl, .csv or .tsv; every label must be one of the three."""
    p = Path(path).expanduser()
    _need(p, "sentimentx")
    if p.suffix == ".jsonl":
        raw = [json.loads(line) for line in p.read_text("utf-8").splitlines() if line.strip()]
    elif p.suffix in (".csv", ".tsv"):
        with p.open(encoding="utf-8", newline="") as fh:
            raw = list(csv.DictReader(fh, delimiter="\t" if p.suffix == ".tsv" else ","))
    else:
        raise BenchDataError(f"sentimentx: {p} must be .jsonl, .csv or .tsv")
    rows = []
    for n, r in enumerate(raw, 1):
        missing = [k for k in ("text", "label", "language") if not str(r.get(k) or "").strip()]
        if missing:
            raise BenchDataError(f"sentimentx: {p} row {n} lacks {', '.join(missing)}")
        label = str(r["label"]).strip().lower()
        if label not in SENTIMENT_LABELS:
            raise BenchDataError(f"sentimentx: {p} row {n} has label {r['label']!r}; expected one of {', '.join(SENTIMENT_LABELS)}")
        rows.append({"text": str(r["text"]).strip(), "label": label, "language": str(r["language"]).strip()})
    if not rows:
        raise BenchDataError(f"sentimentx: {p} has no rows")
    return rows


def load_sentimentx(sentimentx_file: str | None = None, language: str | None = None, **_: Any):
    if not sentimentx_file:
        raise BenchDataError("sentimentx: no file given (bactrian bench --sentimentx-file, or "
                             "lm_eval --metadata '{\"sentimentx_file\": \"PATH\"}')")
    rows = read_sentiment_file(sentimentx_file)
    if language:
        rows = [r for r in rows if r["language"] == language]
        if not rows:
            raise BenchDataError(f"sentimentx: no rows for language {language!r} in {sentimentx_file}")
    return _dataset_dict({"test": rows})
