"""Agreement: between human annotators (Cohen's and Fleiss' kappa), humans vs a judge (MT-bench style, with and
without ties), and a judge's position consistency (does its verdict survive swapping the answers?).

An *item* is one question answered by one pair of models in one language: (question_id, language, the two models
in sorted order). Every verdict is turned to that canonical order ("a" = the alphabetically first model), so
votes cast with the answers in either position compare. A row without a question_id takes one derived from its
``question`` text when the table has that column (``battle_table.question_key``, as the store does); rows with
neither belong to no item, and that is logged and reported under ``warnings``, never silently dropped.

A judge rater is one (judge model, judge prompt): verdicts of one model under two prompts are two raters, named
``model (prompt)`` when the model appears with several prompts (else just ``model``), never merged per item.
"""

from __future__ import annotations

import math
import logging
from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from eval_studio.battle_table import question_key, validate_battles

log = logging.getLogger(__name__)
_FLIP = {"a": "b", "b": "a"}


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA or x is pd.NaT


def cohen_kappa(labels_1: Sequence[Hashable | None], labels_2: Sequence[Hashable | None]) -> float:
    """Cohen's kappa of two raters over the same items; items missing either label are left out.

    NaN when undefined: no shared items, or both raters always give the one same label (chance agreement 1),
    the same values scikit-learn's ``cohen_kappa_score`` gives.
    """
    if len(labels_1) != len(labels_2):
        raise ValueError(f"label sequences differ in length ({len(labels_1)} vs {len(labels_2)})")
    pairs = [(x, y) for x, y in zip(labels_1, labels_2) if not _missing(x) and not _missing(y)]
    if not pairs:
        return float("nan")
    n = len(pairs)
    observed = sum(x == y for x, y in pairs) / n
    c1, c2 = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(c1[k] * c2.get(k, 0) for k in c1) / (n * n)
    if expected == 1.0:
        return float("nan")
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(item_labels: Sequence[Sequence[Hashable | None]], n_raters: int | None = None) -> tuple[float, int, int]:
    """Fleiss' kappa over the items rated by exactly ``n_raters`` raters (missing labels dropped first).

    ``n_raters`` defaults to the most common number of labels per item (the larger on a draw). Returns
    (kappa, n_raters, items used); kappa is NaN with fewer than two raters, no items, or one label everywhere.
    """
    cleaned = [[x for x in labels if not _missing(x)] for labels in item_labels]
    if n_raters is None:
        sizes = Counter(len(c) for c in cleaned if len(c) >= 2)
        n_raters = max(sizes, key=lambda k: (sizes[k], k)) if sizes else max((len(c) for c in cleaned), default=0)
    items = [c for c in cleaned if len(c) == n_raters]
    if n_raters < 2 or not items:
        return float("nan"), n_raters, len(items)
    cats = sorted({x for c in items for x in c}, key=str)
    table = np.array([[c.count(k) for k in cats] for c in items], dtype=float)
    n_items, k = len(items), n_raters
    p_j = table.sum(axis=0) / (n_items * k)
    p_i = (np.sum(table * table, axis=1) - k) / (k * (k - 1))
    p_bar, p_e = p_i.mean(), float(np.sum(p_j * p_j))
    if p_e == 1.0:
        return float("nan"), n_raters, n_items
    return float((p_bar - p_e) / (1 - p_e)), n_raters, n_items


def canonical_votes(df: pd.DataFrame, both_bad: str = "tie") -> pd.DataFrame:
    """Rows that belong to an item, with ``item`` (a tuple key), ``label`` in canonical order and ``swapped``.

    ``both_bad="tie"`` (default, as MT-bench's "tie (bothbad)") merges it into tie; ``"keep"`` keeps it apart.
    """
    if both_bad not in ("tie", "keep"):
        raise ValueError(f"both_bad must be 'tie' or 'keep' here, not {both_bad!r}")
    df = validate_battles(df)
    if "question" in df.columns:  # no id given: the item is the question text
        derived = df["question"].map(lambda q: None if _missing(q) else question_key(q))
        df["question_id"] = df["question_id"].where(df["question_id"].notna(), derived)
    n_all = len(df)
    ungrouped = int(df["question_id"].isna().sum())
    df = df[df["question_id"].notna() & (df["model_a"] != df["model_b"])].copy()
    df.attrs["warnings"] = [ungrouped_warning(ungrouped, n_all)] if ungrouped else []
    if ungrouped:
        log.warning(df.attrs["warnings"][0])
    swapped = (df["model_a"] > df["model_b"]).to_numpy()
    lo = np.where(swapped, df["model_b"], df["model_a"])
    hi = np.where(swapped, df["model_a"], df["model_b"])
    label = df["winner"].astype(str).to_numpy()
    if both_bad == "tie":
        label = np.where(label == "both_bad", "tie", label)
    label = np.where(swapped, [_FLIP.get(x, x) for x in label], label)
    df["item"] = list(zip(df["question_id"].astype(str), df["language"].fillna("").astype(str), lo, hi))
    df["label"], df["swapped"] = label, swapped
    df["annotator"] = _rater_names(df)
    return df


def ungrouped_warning(n: int, total: int) -> str:
    return (f"{n} of {total} rows have neither a question_id nor a question text: they cannot be grouped into "
            "items, so kappas, human-judge agreement and position consistency leave them out")


def _rater_names(df: pd.DataFrame) -> pd.Series:
    """Judge rows: the judge model, or ``model (prompt)`` for a model seen with several prompts (one rater each)."""
    out = df["annotator"].astype(object).copy()
    judge = df["source"] == "judge"
    if judge.any():
        model = df.loc[judge, "annotator"].fillna("judge").astype(str)
        prompt = df.loc[judge, "judge_prompt"].fillna("").astype(str)
        several = prompt.groupby(model).transform("nunique") > 1
        out.loc[judge] = model.where(~several, model + " (" + prompt + ")")
    return out


def _latest_per_rater(votes: pd.DataFrame) -> pd.DataFrame:
    """One label per (annotator, item): a later vote replaces an earlier one."""
    return votes.sort_values("tstamp", kind="stable").groupby(["annotator", "item"], sort=False).tail(1)


def pairwise_cohen(votes: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """Cohen's kappa for every pair of named human annotators over the items both labelled: ``{"x|y": {...}}``."""
    humans = _latest_per_rater(votes[(votes["source"] == "human") & votes["annotator"].notna()])
    wide = humans.pivot(index="item", columns="annotator", values="label")
    out: dict[str, dict[str, float | int]] = {}
    for x, y in combinations(sorted(wide.columns), 2):
        both = wide[[x, y]].dropna()
        out[f"{x}|{y}"] = {"kappa": cohen_kappa(both[x].tolist(), both[y].tolist()), "n_items": len(both)}
    return out


def judge_verdicts(votes: pd.DataFrame) -> pd.DataFrame:
    """One verdict per (judge, item): both orders agreeing give that verdict, disagreeing give a tie (MT-bench)."""
    judges = votes[votes["source"] == "judge"]
    g = judges.groupby([judges["annotator"].fillna("judge").rename("annotator"), "item"], sort=False)["label"]
    out = g.agg(["nunique", "first"]).reset_index()
    out["label"] = out["first"].where(out["nunique"] == 1, "tie")
    return out[["annotator", "item", "label"]]


def _agree(pairs: list[tuple[str, str]]) -> dict[str, float | int]:
    """MT-bench ``get_mt_bench_agreement``: with ties counts every pair; without ties drops pairs with a tie."""
    no_tie = [(x, y) for x, y in pairs if x != "tie" and y != "tie"]

    def rate(ps: list[tuple[str, str]]) -> float:
        return sum(x == y for x, y in ps) / len(ps) if ps else float("nan")

    return {"with_ties": rate(pairs), "without_ties": rate(no_tie), "n_with_ties": len(pairs),
            "n_without_ties": len(no_tie)}


def human_judge_agreement(votes: pd.DataFrame) -> dict[str, object]:
    """Each judge's verdict against every human vote on the same item, pooled over judges and per judge."""
    humans = votes[votes["source"] == "human"]
    by_item = humans.groupby("item")["label"].apply(list).to_dict()
    pooled: list[tuple[str, str]] = []
    by_judge: dict[str, dict[str, float | int]] = {}
    for judge, g in judge_verdicts(votes).groupby("annotator"):
        pairs = [(v, h) for item, v in zip(g["item"], g["label"]) for h in by_item.get(item, [])]
        by_judge[str(judge)] = _agree(pairs)
        pooled += pairs
    return {**_agree(pooled), "by_judge": by_judge}


def human_human_agreement(votes: pd.DataFrame) -> dict[str, float | int]:
    """Every pair of human votes on the same item (MT-bench's human-human setting)."""
    humans = votes[votes["source"] == "human"]
    pairs = [(x, y) for labels in humans.groupby("item")["label"].apply(list) for x, y in combinations(labels, 2)]
    return _agree(pairs)


def _shown_winner(rows: pd.DataFrame) -> pd.Series:
    """Which shown position won ("a" = first), when the table says: an ``ordering`` column ("ab"/"ba", as the
    store's per-call rows) or else the row's own order (model_a shown first)."""
    w = rows["winner"].astype(str)
    if "ordering" not in rows.columns:
        return w
    return w.where(rows["ordering"] != "ba", w.map(_FLIP).fillna(w))


def position_consistency(votes: pd.DataFrame) -> dict[str, object]:
    """Share of a judge's both-order pairs whose verdict survives the swap, per judge and pooled.

    Needs one row per judge call (the store's ``load_battles(..., merge_orders=False)``). Pairs come from a
    ``pair_key`` column when the table has one (two rows per key); otherwise a judge's rows on the same item with
    the same judge prompt in opposite orders are paired up in time order. Inconsistent pairs where the judge picked
    the first (or second) shown answer both times count as biased to that position (when positions are known).
    """
    judges = votes[votes["source"] == "judge"].sort_values("tstamp", kind="stable")
    judges = judges.assign(annotator=judges["annotator"].fillna("judge").astype(str),
                           prompt=judges["judge_prompt"].fillna("").astype(str))
    judges["shown"] = _shown_winner(judges)
    judges["ordered"] = judges["ordering"].isin(["ab", "ba"]) if "ordering" in judges.columns else False
    if "pair_key" not in judges.columns:
        judges["pair_key"] = None
    keyed = judges["pair_key"].notna()
    cols = ["key", "annotator", "swapped", "label", "shown", "ordered"]
    with_key = judges[keyed]
    with_key = with_key[with_key.groupby("pair_key")["battle_id"].transform("size") == 2].assign(
        key=lambda d: d["pair_key"].map(lambda k: ("key", k)), nth=lambda d: d.groupby("key").cumcount())
    rest = judges[~keyed]
    # the n-th row in one order pairs with the n-th row in the other order of the same group
    rest = rest.assign(key=list(zip(rest["annotator"], rest["prompt"], rest["item"],
                                    rest.groupby(["annotator", "prompt", "item", "swapped"]).cumcount())),
                       nth=rest["swapped"].astype(int))
    both = pd.concat([with_key[cols + ["nth"]], rest[cols + ["nth"]]], ignore_index=True)
    pairs = both[both["nth"] == 0].merge(both[both["nth"] == 1], on="key", suffixes=("_1", "_2"))
    consistent = pairs["label_1"] == pairs["label_2"]
    # a row's ordering (the store's per-call rows: "ab"/"ba") says which answer was shown first; without it the
    # row's own order is the shown order, and only rows in opposite orientations say anything about position
    known = (pairs["ordered_1"] & pairs["ordered_2"]) | (
        ~pairs["ordered_1"] & ~pairs["ordered_2"] & (pairs["swapped_1"] != pairs["swapped_2"]))
    first = ~consistent & known & (pairs["shown_1"] == "a") & (pairs["shown_2"] == "a")
    second = ~consistent & known & (pairs["shown_1"] == "b") & (pairs["shown_2"] == "b")
    flags = pd.DataFrame({"judge": pairs["annotator_1"], "consistent": consistent, "first": first, "second": second})

    def summary(f: pd.DataFrame) -> dict[str, float | int]:
        n = len(f)
        share = (lambda c: float(f[c].mean())) if n else (lambda c: float("nan"))
        return {"consistency": share("consistent"), "biased_to_first": share("first"),
                "biased_to_second": share("second"), "n_pairs": n}

    return {**summary(flags), "by_judge": {str(j): summary(f) for j, f in flags.groupby("judge")}}


def agreement_matrix(votes: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa between every two raters: named humans and judges (their combined verdicts)."""
    humans = _latest_per_rater(votes[(votes["source"] == "human") & votes["annotator"].notna()])
    raters = pd.concat([humans[["annotator", "item", "label"]],
                        judge_verdicts(votes).assign(annotator=lambda d: "judge:" + d["annotator"].astype(str))])
    if raters.empty:
        return pd.DataFrame(dtype=float)
    wide = raters.pivot(index="item", columns="annotator", values="label")
    names = sorted(wide.columns)
    m = pd.DataFrame(np.nan, index=names, columns=names)
    for x, y in combinations(names, 2):
        m.loc[x, y] = m.loc[y, x] = cohen_kappa(wide[x].tolist(), wide[y].tolist())
    for x in names:
        m.loc[x, x] = 1.0
    return m


def agreement_summary(df: pd.DataFrame, both_bad: str = "tie", calls: pd.DataFrame | None = None) -> dict[str, object]:
    """Everything ``bactrian studio agreement`` reports, as plain data (NaN where undefined).

    ``calls``: the judge's per-call rows for position consistency when ``df`` holds order-merged verdicts.
    """
    votes = canonical_votes(df, both_bad)
    warnings = list(votes.attrs.get("warnings", []))
    per_call = votes if calls is None else canonical_votes(calls, both_bad)
    if calls is not None:
        warnings += [f"judge calls: {w}" for w in per_call.attrs.get("warnings", [])]
    humans = _latest_per_rater(votes[(votes["source"] == "human") & votes["annotator"].notna()])
    kappa, k, n_items = fleiss_kappa(humans.groupby("item")["label"].apply(list).tolist())
    return {
        "cohen_kappa": pairwise_cohen(votes),
        "fleiss_kappa": {"kappa": kappa, "raters_per_item": k, "n_items": n_items},
        "human_judge_agreement": human_judge_agreement(votes),
        "human_human_agreement": human_human_agreement(votes),
        "position_consistency": position_consistency(per_call),
        "warnings": warnings,
    }


AGREEMENT_BY_COLUMNS = ["judge", "items", "with_ties", "n_with_ties", "without_ties", "n_without_ties"]


def human_judge_by(df: pd.DataFrame, by: str = "language", both_bad: str = "tie") -> pd.DataFrame:
    """Human-judge agreement per language (or category): ``[by, judge, items, with_ties, n_with_ties,
    without_ties, n_without_ties]``, one row per judge rater and value of ``by`` where the judge and people
    labelled the same items (e.g. arena battles judged with ``bactrian studio judge --source battles``).
    ``items``: items with both a judge verdict and a human vote; the rates are MT-bench's (every human vote
    against the judge's verdict on its item)."""
    if by not in ("language", "category"):
        raise ValueError(f"by must be language or category, not {by!r}")
    votes = canonical_votes(df, both_bad)
    rows = []
    for value, g in votes.groupby(votes[by].fillna("(none)").astype(str), sort=True):
        human_items = set(g.loc[g["source"] == "human", "item"])
        verdicts = judge_verdicts(g)
        for judge, a in human_judge_agreement(g)["by_judge"].items():
            items = len(set(verdicts.loc[verdicts["annotator"] == judge, "item"]) & human_items)
            if items:
                rows.append({by: value, "judge": judge, "items": items, **a})
    return pd.DataFrame(rows, columns=[by, *AGREEMENT_BY_COLUMNS])
