"""Synthetic battle tables with known model strengths: a test double for tests and benchmarks (not shipped).

Outcomes follow a Bradley-Terry model with ties (Rao-Kupper style: a tie takes a fixed share of the mass), so the
true order of the models is known and rating code can be checked against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_LANGUAGES = ("es", "fr", "pt", "ar", "id", "zh", "de", "it", "ru", "ja", "ko", "tr")
DEFAULT_CATEGORIES = ("generic", "knowledge", "roleplay", "common-sense", "fermi", "counterfactual", "coding",
                      "math", "writing")


def synthetic_battles(
    strengths: dict[str, float],
    n: int,
    *,
    seed: int = 0,
    tie_rate: float = 0.1,
    both_bad_rate: float = 0.05,
    judge_share: float = 0.0,
    annotators: tuple[str, ...] = ("ann1", "ann2", "ann3"),
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
    categories: tuple[str, ...] = DEFAULT_CATEGORIES,
    questions: int = 80,
    length_bias: float = 0.0,
    long_models: tuple[str, ...] = (),
) -> pd.DataFrame:
    """``n`` battles between random pairs; ``strengths`` are on the Elo scale (400 points = 10:1 odds).

    ``length_bias`` adds that many logits per standardised length difference (a judge that likes long answers);
    ``long_models`` answer about twice as long as the others.
    """
    if len(strengths) < 2:
        raise ValueError("need at least two models")
    rng = np.random.default_rng(seed)
    models = np.array(list(strengths))
    s = np.array([strengths[m] for m in models], dtype=float)
    ia = rng.integers(0, len(models), n)
    ib = (ia + rng.integers(1, len(models), n)) % len(models)  # never a self-battle
    base_len = np.where(np.isin(models, list(long_models)), 1400.0, 700.0)
    len_a = np.maximum(20, rng.normal(base_len[ia], 150)).round()
    len_b = np.maximum(20, rng.normal(base_len[ib], 150)).round()
    diff = (len_a - len_b) / max(np.std(len_a - len_b), 1e-9)
    logit = (s[ia] - s[ib]) * np.log(10) / 400 + length_bias * np.tanh(diff)
    p_a = 1 / (1 + np.exp(-logit))
    u = rng.random(n)
    decisive = 1 - tie_rate - both_bad_rate
    winner = np.where(u < decisive * p_a, "a", np.where(u < decisive, "b",
                      np.where(u < decisive + tie_rate, "tie", "both_bad")))
    is_judge = rng.random(n) < judge_share
    # judge scores 1-10 loosely tied to strength (the paper's single-answer grading view)
    score_a = np.clip(np.round(6 + (s[ia] - s.mean()) / 100 + rng.normal(0, 1, n)), 1, 10)
    score_b = np.clip(np.round(6 + (s[ib] - s.mean()) / 100 + rng.normal(0, 1, n)), 1, 10)
    q = rng.integers(0, questions, n)
    return pd.DataFrame({
        "battle_id": [f"b{i:07d}" for i in range(n)],
        "question_id": [f"q{j:03d}" for j in q],
        "model_a": models[ia],
        "model_b": models[ib],
        "winner": winner,
        "source": np.where(is_judge, "judge", "human"),
        "annotator": np.where(is_judge, "gpt-4", np.array(annotators)[rng.integers(0, len(annotators), n)]),
        "language": np.array(languages)[q % len(languages)],
        "category": np.array(categories)[q % len(categories)],
        "tstamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.integers(0, 90 * 86400, n)), unit="s"),
        "score_a": np.where(is_judge, score_a, np.nan),
        "score_b": np.where(is_judge, score_b, np.nan),
        "len_a": len_a.astype(int),
        "len_b": len_b.astype(int),
        "judge_prompt": np.where(is_judge, "pair-v2", None),
    })
