"""Training data: read instruction records, hold some out, tokenize with the response-only loss, and batch.

Records come from a local jsonl (``instruction``, ``input``, ``output``, optional ``language``), a
``DatasetDict`` folder (``save_to_disk``; splits named by language code, or a ``language`` column), the export of
``bactrian data`` (its output folder, ``<output>/export`` or ``<output>/export/disk``: one saved dataset per
language; ``languages: all`` means every language present there), or the Hub dataset ``MBZUAI/Bactrian-X`` (one
config per language; a local copy in the Hub's parquet layout, such as ``<output>/export/hub``, works too).
Every record needs a non-empty ``instruction`` and ``output``; ``input`` may be missing or empty. Real data has a
few rows whose instruction or output is present but blank (50 of the 52,002 rows of the Chinese Alpaca
translation): ``data.skip_empty`` drops those (and counts them) instead of refusing the file; a field that is
absent is always an error.

Batches never mix examples inside one sequence: each row is one example, right-padded, so no example can
attend to another. ``grouped`` batching puts examples of similar length together (little padding);
``padded`` is the plain shuffled baseline.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .recipe import DataSettings

IGNORE = -100  # label of tokens that carry no loss (prompt and padding)
HUB_DATASET = "MBZUAI/Bactrian-X"
GROUP_WINDOW = 64  # micro-batches per length-sorting window: similar lengths, yet still shuffled order


class DataError(ValueError):
    """Training data cannot be used; the message names the file/record and the problem."""


class EmptyField(DataError):
    """A record has its instruction/output fields, but one is blank (skippable with ``data.skip_empty``)."""


@dataclass(frozen=True)
class Record:
    instruction: str
    input: str
    output: str
    language: str | None = None


@dataclass(frozen=True)
class Tokenized:
    input_ids: tuple[int, ...]
    prompt_len: int  # tokens before the response; they get no loss

    @property
    def n_target(self) -> int:
        return len(self.input_ids) - self.prompt_len


def _record(row: Any, where: str, language: str | None = None) -> Record:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object with instruction/input/output, got {type(row).__name__}")
    missing = [k for k in ("instruction", "output") if not isinstance(row.get(k), str) or not row[k].strip()]
    if missing:
        have = ", ".join(sorted(row)) or "nothing"
        msg = f"{where}: missing or empty field(s) {', '.join(missing)} (it has: {have})"
        if all(isinstance(row.get(k), str) for k in missing):  # present, only blank
            raise EmptyField(msg + "; set data.skip_empty: true to drop such rows")
        raise DataError(msg)
    inp = row.get("input") or ""
    if not isinstance(inp, str):
        raise DataError(f"{where}: field input must be a string, got {type(inp).__name__}")
    lang = language or row.get("language") or row.get("lang")
    return Record(row["instruction"], inp, row["output"], lang if isinstance(lang, str) else None)


def _wanted(languages: list[str] | None, lang: str | None) -> bool:
    return languages is None or lang in languages


class _Skips:
    """Counts records dropped for blank fields; re-raises when skipping is off."""

    def __init__(self, enabled: bool):
        self.enabled, self.count = enabled, 0

    def record(self, row: Any, where: str, language: str | None = None) -> Record | None:
        try:
            return _record(row, where, language)
        except EmptyField:
            if not self.enabled:
                raise
            self.count += 1
            return None


def read_jsonl(path: Path, languages: list[str] | None, skips: _Skips | None = None) -> list[Record]:
    skips = skips or _Skips(False)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    out = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            rec = skips.record(row, f"{path}:{i}")
            if rec is None:
                continue
            if languages is not None and rec.language is None:
                raise DataError(f"{path}:{i}: data.languages is set but the record has no language field")
            if _wanted(languages, rec.language):
                out.append(rec)
    return out


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def export_languages(path: Path) -> dict[str, Path] | None:
    """The per-language folders of a ``bactrian data`` export, or None when ``path`` is not one.

    ``path`` may be the data run's output folder, its ``export`` folder or ``export/disk``; the export holds one
    saved ``DatasetDict`` per language code (``disk/<lang>/``).
    """
    from bactrian.languages import language_codes

    if _is_saved_dataset(path):
        return None
    codes = set(language_codes())
    for folder in (path, path / "disk", path / "export" / "disk"):
        if folder.is_dir():
            found = {d.name: d for d in sorted(folder.iterdir()) if d.name in codes and _is_saved_dataset(d)}
            if found:
                return found
    return None


def _pick(present: list[str], languages: list[str] | None, where: str) -> list[str]:
    """``languages`` (None: every one present), each of which must be present."""
    if languages is None:
        return present
    absent = [lang for lang in languages if lang not in present]
    if absent:
        raise DataError(f"language(s) {', '.join(absent)} not in {where} (present: {', '.join(present) or 'none'})")
    return list(languages)


def read_pipeline(path: Path, languages: list[str] | None, skips: _Skips | None = None) -> list[Record]:
    """A ``DatasetDict`` folder (splits named by language code, or any splits with a language column), or the
    export of ``bactrian data`` (one dataset per language: ``languages`` None reads every language present)."""
    from datasets import Dataset, DatasetDict, load_from_disk

    skips = skips or _Skips(False)
    if not path.is_dir():
        raise DataError(f"dataset folder {path} does not exist")
    per_language = export_languages(path)
    if per_language is not None:
        out: list[Record] = []
        for lang in _pick(sorted(per_language), languages, f"the export at {path}"):
            out.extend(read_pipeline(per_language[lang], [lang], skips))
        return out
    try:
        ds = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{path} is not a dataset saved with save_to_disk: {e}") from None
    parts = ds.items() if isinstance(ds, DatasetDict) else [("train", ds)]
    out = []
    for split, d in parts:
        assert isinstance(d, Dataset)
        split_lang = split if "language" not in d.column_names and "lang" not in d.column_names else None
        if split_lang is not None and not _wanted(languages, split_lang):
            continue
        for i, row in enumerate(d):
            rec = skips.record(row, f"{path} split {split!r} row {i}", split_lang)
            if rec is not None and _wanted(languages, rec.language):
                out.append(rec)
    return out


def read_hub(dataset_id: str, languages: list[str] | None, skips: _Skips | None = None) -> list[Record]:
    from datasets import load_dataset

    from bactrian.languages import language_codes

    skips = skips or _Skips(False)
    out = []
    local = Path(dataset_id).expanduser() if dataset_id else None
    if local is not None and local.is_dir():  # a local copy in the Hub layout (<config>/*.parquet): its configs
        present = sorted(d.name for d in local.iterdir() if d.is_dir() and any(d.glob("*.parquet")))
        languages = _pick(present, languages, f"the dataset folder {local}")
        if not languages:
            raise DataError(f"{local} has no language configs (<lang>/*.parquet)")
    for lang in languages or language_codes():
        try:
            d = load_dataset(dataset_id or HUB_DATASET, lang, split="train")
        except Exception as e:  # noqa: BLE001 - the Hub raises many types (offline, gated, missing config)
            raise DataError(f"cannot load {dataset_id or HUB_DATASET} config {lang!r} from the Hub: {e}") from None
        recs = (skips.record(row, f"{dataset_id or HUB_DATASET}/{lang} row {i}", lang) for i, row in enumerate(d))
        out.extend(r for r in recs if r is not None)
    return out


def load_records(settings: DataSettings, stats: dict[str, int] | None = None) -> list[Record]:
    """All records the recipe asks for, in a deterministic order, capped per language by ``max_examples``.

    ``stats``, when given, receives ``skipped_empty``: rows dropped for a blank field (``data.skip_empty``).
    """
    from bactrian.languages import parse_languages

    languages = None if settings.languages in ("all", ["all"]) else parse_languages(settings.languages)
    skips = _Skips(settings.skip_empty)
    if settings.source == "jsonl":
        records = read_jsonl(Path(settings.path).expanduser(), languages, skips)
    elif settings.source == "pipeline":
        records = read_pipeline(Path(settings.path).expanduser(), languages, skips)
    else:
        records = read_hub(settings.path or HUB_DATASET, languages, skips)
    if stats is not None:
        stats["skipped_empty"] = skips.count
    if settings.max_examples:
        seen: dict[str | None, int] = {}
        kept = []
        for r in records:
            seen[r.language] = seen.get(r.language, 0) + 1
            if seen[r.language] <= settings.max_examples:
                kept.append(r)
        records = kept
    if not records:
        raise DataError(f"no training records in {settings.path or HUB_DATASET} for languages {settings.languages}")
    return records


def fingerprint(records: Iterable[Record]) -> str:
    """A hash of the exact records used, so a manifest says which data made an adapter."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.instruction, r.input, r.output, r.language], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def split_eval(records: list[Record], fraction: float, eval_max: int, seed: int) -> tuple[list[Record], list[Record]]:
    """A seeded held-out split; at least one training record is always kept."""
    n_eval = min(int(round(len(records) * fraction)), eval_max, len(records) - 1)
    if fraction > 0 and n_eval == 0 and len(records) > 1:
        n_eval = 1
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


def tokenize(records: list[Record], tokenizer: Any, prompter: Any, max_length: int) -> tuple[list[Tokenized], int]:
    """Prompt and response tokenized apart (an exact boundary for the loss mask), EOS appended.

    Long examples are cut at ``max_length``; one whose prompt leaves no room for a response token is
    dropped. Returns the examples and how many were dropped.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no EOS token; training needs one to teach the model to stop")
    if not records:
        return [], 0
    prompts = [prompter.build(r.instruction, r.input or None) for r in records]
    p_ids = tokenizer(prompts, add_special_tokens=True)["input_ids"]
    o_ids = tokenizer([r.output for r in records], add_special_tokens=False)["input_ids"]
    out, dropped = [], 0
    for p, o in zip(p_ids, o_ids):
        if len(p) >= max_length:
            dropped += 1
            continue
        ids = (list(p) + list(o) + [eos])[:max_length]
        out.append(Tokenized(tuple(ids), len(p)))
    return out, dropped


def plan_batches(lengths: list[int], micro: int, seed: int, epoch: int, mode: str) -> list[list[int]]:
    """Micro-batches (lists of example indices) for one epoch, the same on every process.

    ``grouped``: shuffle, sort windows of ``GROUP_WINDOW`` micro-batches by length, then shuffle the batches.
    ``padded``: plain shuffle. Both depend only on (seed, epoch), so a resumed run sees the same order.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if mode == "grouped":
        window = micro * GROUP_WINDOW
        order = [i for s in range(0, len(order), window) for i in sorted(order[s : s + window], key=lambda j: -lengths[j])]
    batches = [order[s : s + micro] for s in range(0, len(order), micro)]
    if mode == "grouped":
        rng.shuffle(batches)
    return batches


def collate(examples: list[Tokenized], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors; labels are -100 on prompt and padding, the token ids on the response + EOS."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, e.prompt_len : n] = ids[row, e.prompt_len : n]
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
