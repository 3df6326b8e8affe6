"""The battle table (one row per vote or judgment): validation, JSONL reading, filters and outcome coding.

Every ratings / agreement / plot function consumes only this table; the store's ``load_battles`` returns it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

WINNERS = ("a", "b", "tie", "both_bad")
SOURCES = ("human", "judge")
REQUIRED = ("battle_id", "model_a", "model_b", "winner")
OPTIONAL_DEFAULTS: dict[str, object] = {
    "question_id": None,
    "source": "human",
    "annotator": None,
    "language": None,
    "category": None,
    "tstamp": pd.NaT,
    "score_a": np.nan,
    "score_b": np.nan,
    "len_a": np.nan,
    "len_b": np.nan,
    "judge_prompt": None,
    # markdown counts of each answer (markdown_counts below), for style control; NaN when unknown
    "headers_a": np.nan,
    "headers_b": np.nan,
    "lists_a": np.nan,
    "lists_b": np.nan,
    "bold_a": np.nan,
    "bold_b": np.nan,
}
STYLE_COLUMNS = ("headers_a", "headers_b", "lists_a", "lists_b", "bold_a", "bold_b")
_HEADER = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def markdown_counts(text: str) -> dict[str, int]:
    """Markdown headers, list items and bold spans in an answer (Arena's style elements)."""
    text = text or ""
    return {"headers": len(_HEADER.findall(text)), "lists": len(_LIST.findall(text)), "bold": len(_BOLD.findall(text))}

COLUMNS = ("battle_id", "question_id", "model_a", "model_b", "winner", "source", "annotator", "language",
           "category", "tstamp", "score_a", "score_b", "len_a", "len_b", "judge_prompt", *STYLE_COLUMNS)
TIE_MODES = ("half", "drop")
BOTH_BAD_MODES = ("tie", "drop")
# Kinds of evidence (the optional ``kind`` column): votes in blind (anonymous) arena battles, in named battles,
# on annotation pairs, and judge verdicts. Without the column a judge row is "judge" and a human row "annotation".
KINDS = ("blind", "named", "annotation", "judge")
DEFAULT_KINDS = ("blind", "annotation")  # the Leaderboard's default, as the Arena counts only anonymous votes
KIND_OF_MODE = {"battle": "blind", "named": "named", "annotation": "annotation"}  # the store's Battle.mode


def question_key(text: str) -> str:
    """The item id of a question that came without one: derived from its text (whitespace-normalised)."""
    import hashlib

    return "text:" + hashlib.sha256(" ".join(str(text).split()).encode("utf-8")).hexdigest()[:16]


LINEAGE_CHARS = 6  # hex digits of the weight digest shown in a lineage label (demo-zh@1a2b3c)


def names_with_many_digests(seen: Iterable[tuple[str, str | None]]) -> set[str]:
    """Model names stored with more than one weight digest, from (name, digest) pairs (None digests ignored)."""
    digests: dict[str, set[str]] = {}
    for name, digest in seen:
        if digest:
            digests.setdefault(name, set()).add(digest)
    return {name for name, ds in digests.items() if len(ds) > 1}


def lineage_label(name: str, digest: str | None, many: set[str] | frozenset[str]) -> str:
    """The player name in the battle table: ``name@digest6`` when ``name`` has been stored with more than one
    weight digest (``many``, see :func:`names_with_many_digests`) and this row knows its digest; else ``name``.

    So one adapter retrained under the same name becomes two players, while a name with a single lineage (and
    older rows without a digest) keeps its plain name.
    """
    if digest and name in many:
        return f"{name}@{digest[:LINEAGE_CHARS]}"
    return name


def validate_battles(df: pd.DataFrame) -> pd.DataFrame:
    """Check the contract and fill absent optional columns; returns a normalised copy (input untouched)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of battles, got {type(df).__name__}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"battle table lacks required column(s): {', '.join(missing)}")
    out = df.copy()
    for col, default in OPTIONAL_DEFAULTS.items():
        if col not in out.columns:
            out[col] = default
    bad = sorted(set(out["winner"].astype(str)) - set(WINNERS))
    if bad:
        raise ValueError(f"unknown winner value(s) {bad}; expected one of {list(WINNERS)}")
    bad_src = sorted(set(out["source"].dropna().astype(str)) - set(SOURCES))
    if bad_src:
        raise ValueError(f"unknown source value(s) {bad_src}; expected one of {list(SOURCES)}")
    implied = pd.Series(np.where(out["source"] == "judge", "judge", "annotation"), index=out.index)
    out["kind"] = out["kind"].where(out["kind"].notna(), implied) if "kind" in out.columns else implied
    bad_kind = sorted(set(out["kind"].astype(str)) - set(KINDS))
    if bad_kind:
        raise ValueError(f"unknown kind value(s) {bad_kind}; expected one of {list(KINDS)}")
    if out["model_a"].isna().any() or out["model_b"].isna().any():
        raise ValueError("model_a / model_b must be set on every row")
    out["tstamp"] = pd.to_datetime(out["tstamp"], utc=True, errors="raise")
    for col in ("score_a", "score_b", "len_a", "len_b", *STYLE_COLUMNS):
        out[col] = pd.to_numeric(out[col], errors="raise").astype(float)
    return out


def read_battles_jsonl(path: str | Path) -> pd.DataFrame:
    """Read a JSONL file of battle rows; a bad line is reported with its number."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{no}: not valid JSON ({e.msg})") from e
    df = pd.DataFrame(rows, columns=None if rows else list(COLUMNS))
    return validate_battles(df)


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(i).strip() for i in items if str(i).strip()]
    return items or None


def _as_utc(value: str | datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def filter_battles(
    df: pd.DataFrame,
    *,
    language: str | Iterable[str] | None = None,
    group: str | None = None,
    category: str | Iterable[str] | None = None,
    source: str = "both",
    annotator: str | Iterable[str] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    kind: str | Iterable[str] | None = None,
    judge_prompt: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Rows matching every given filter. ``group`` is one of the paper's G1-G4; dates are inclusive, UTC.

    ``kind``: kinds of evidence to keep (``KINDS``); ``judge_prompt``: the judge prompts whose verdicts to keep
    (human rows are kept).
    """
    df = validate_battles(df)
    mask = pd.Series(True, index=df.index)
    kinds = _as_list(kind)
    if kinds is not None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s) {unknown}; known: {', '.join(KINDS)}")
        mask &= df["kind"].isin(kinds)
    prompts = _as_list(judge_prompt)
    if prompts is not None:
        mask &= (df["source"] != "judge") | df["judge_prompt"].isin(prompts)
    langs = _as_list(language)
    if group:
        from bactrian.languages import eval_groups

        groups = eval_groups()
        if group.upper() not in groups:
            raise ValueError(f"unknown language group {group!r}; known: {', '.join(groups)}")
        langs = [c for c in groups[group.upper()] if langs is None or c in langs]
    if langs is not None:
        mask &= df["language"].isin(langs)
    cats = _as_list(category)
    if cats is not None:
        mask &= df["category"].isin(cats)
    if source not in ("both", *SOURCES):
        raise ValueError(f"source must be human, judge or both, not {source!r}")
    if source != "both":
        mask &= df["source"] == source
    who = _as_list(annotator)
    if who is not None:
        mask &= df["annotator"].isin(who)
    if since is not None:
        mask &= df["tstamp"] >= _as_utc(since)
    if until is not None:
        end = _as_utc(until)
        if isinstance(until, str) and len(until.strip()) <= 10:  # a bare date includes that whole day
            end = end + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        mask &= df["tstamp"] <= end
    return df[mask.to_numpy()].reset_index(drop=True)


def outcomes(df: pd.DataFrame, ties: str = "half", both_bad: str = "tie") -> tuple[pd.DataFrame, np.ndarray]:
    """Rows that count for ratings and model A's score in each: 1 win, 0 loss, 0.5 tie.

    ``ties="drop"`` removes ties; ``both_bad="tie"`` counts "both bad" as a tie, ``"drop"`` removes it.
    Self-battles (model_a == model_b) carry no information and are removed.
    """
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {TIE_MODES}, not {ties!r}")
    if both_bad not in BOTH_BAD_MODES:
        raise ValueError(f"both_bad must be one of {BOTH_BAD_MODES}, not {both_bad!r}")
    w = df["winner"].astype(str)
    keep = (df["model_a"] != df["model_b"]).to_numpy().copy()  # pandas may hand out a read-only view
    if ties == "drop":
        keep &= (w != "tie").to_numpy()
    if both_bad == "drop" or ties == "drop":
        keep &= (w != "both_bad").to_numpy()
    kept = df[keep].reset_index(drop=True)
    kw = kept["winner"].astype(str).to_numpy()
    score = np.where(kw == "a", 1.0, np.where(kw == "b", 0.0, 0.5))
    return kept, score


def blended_judge_prompts(df: pd.DataFrame) -> dict[str, list[str]]:
    """Judges whose verdicts in ``df`` come from more than one judge prompt: ``{judge: [prompts]}``.

    Such verdicts must not be pooled into one rating (each prompt would count the same pair again); ratings
    ask for one prompt (``judge_prompt`` filter) instead.
    """
    df = validate_battles(df)
    judges = df[(df["source"] == "judge") & df["judge_prompt"].notna()]
    if judges.empty:
        return {}
    prompts = judges.groupby(judges["annotator"].fillna("judge").astype(str))["judge_prompt"].unique()
    return {str(j): sorted(map(str, p)) for j, p in prompts.items() if len(p) > 1}
