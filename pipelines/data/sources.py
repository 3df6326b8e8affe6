"""Source datasets: Alpaca 52K and Dolly 15K, from local files or the Hub, as one list of rows.

Rows get stable ids (``alpaca-<n>``, ``dolly-<n>``, n = position in the source) so every later step can key
on them. Malformed rows are skipped and counted by reason; they never stop a run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .recipe import SourceSpec

# Dolly's fields mapped onto the Alpaca shape; `category` is kept.
_FIELDS = {
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output"},
    "dolly": {"instruction": "instruction", "input": "context", "output": "response"},
}
HUB_DEFAULTS = {"alpaca": "tatsu-lab/alpaca", "dolly": "databricks/databricks-dolly-15k"}


@dataclass(frozen=True)
class Row:
    id: str
    instruction: str
    input: str
    output: str
    source: str
    category: str | None = None


@dataclass
class LoadResult:
    rows: list[Row] = field(default_factory=list)
    malformed: Counter = field(default_factory=Counter)  # "alpaca:missing_field:output" -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first offending location

    def add_bad(self, kind: str, reason: str, where: str) -> None:
        key = f"{kind}:{reason}"
        self.malformed[key] += 1
        self.examples.setdefault(key, where)


def _records_from_file(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(index, record or None, parse-error reason) for a .json array or a .jsonl file."""
    text = path.read_text("utf-8", errors="replace")
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}); use one JSON array or JSON Lines") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON array of records")
        for i, rec in enumerate(data):
            yield i, rec, None
        return
    n = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield n, json.loads(line), None
        except json.JSONDecodeError:
            yield n, None, "invalid_json"
        n += 1


def _records_from_hub(repo: str) -> Iterator[tuple[int, Any, str | None]]:
    from datasets import load_dataset

    ds = load_dataset(repo, split="train")
    for i, rec in enumerate(ds):
        yield i, rec, None


def _to_row(kind: str, n: int, rec: Any) -> tuple[Row | None, str | None]:
    if not isinstance(rec, dict):
        return None, "not_an_object"
    values: dict[str, str] = {}
    for ours, theirs in _FIELDS[kind].items():
        v = rec.get(theirs)
        if v is None and ours == "input":
            v = ""  # Alpaca rows without input sometimes omit the field entirely
        if v is None:
            return None, f"missing_field:{theirs}"
        if not isinstance(v, str):
            return None, f"wrong_type:{theirs}"
        values[ours] = v.strip()
    if not values["instruction"]:
        return None, "empty_instruction"
    # An empty source output is fine: the respond step generates a new one (Alpaca has 49 such rows).
    category = rec.get("category") if kind == "dolly" else None
    return Row(id=f"{kind}-{n}", source=kind, category=category if isinstance(category, str) else None, **values), None


def load_source(spec: SourceSpec, result: LoadResult | None = None) -> LoadResult:
    """Read one source into ``result`` (rows + malformed counts)."""
    result = result or LoadResult()
    if spec.path:
        path = Path(spec.path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"source file not found: {path}")
        records = _records_from_file(path)
        origin = str(path)
    else:
        records = _records_from_hub(spec.hub or HUB_DEFAULTS[spec.kind])
        origin = spec.hub or HUB_DEFAULTS[spec.kind]
    for n, rec, err in records:
        if spec.limit is not None and n >= spec.limit:
            break
        row, reason = (None, err) if err else _to_row(spec.kind, n, rec)
        if row is None:
            result.add_bad(spec.kind, reason or "unknown", f"{origin} record {n}")
        else:
            result.rows.append(row)
    return result


def load_sources(specs: tuple[SourceSpec, ...] | list[SourceSpec]) -> LoadResult:
    """All sources merged in order (the paper's merge: Alpaca then Dolly = 67,017 rows)."""
    result = LoadResult()
    for spec in specs:
        load_source(spec, result)
    ids = Counter(r.id for r in result.rows)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise ValueError(f"two sources of the same kind give duplicate ids (e.g. {dup[0]}); list each kind once")
    return result
