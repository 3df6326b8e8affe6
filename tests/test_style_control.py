"""Style control (Arena's method) against an independent fit: statsmodels' logistic regression of the outcome on
model indicators and the standardised style differences, ties as half a win each (two weighted rows)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from eval_studio.analysis.style_control import ALPHA, style_control
from eval_studio.battle_table import markdown_counts

MODELS = ["alpha", "beta", "gamma", "delta"]


def _battles(n: int = 400, seed: int = 7) -> pd.DataFrame:
    """Battles where longer, list-heavy answers win more often than the models' strength alone says."""
    rng = np.random.default_rng(seed)
    strength = {"alpha": 0.6, "beta": 0.2, "gamma": -0.1, "delta": -0.7}
    rows = []
    for i in range(n):
        a, b = rng.choice(MODELS, 2, replace=False)
        la, lb = rng.integers(20, 800, 2)
        lists_a, lists_b = rng.integers(0, 6, 2)
        bold_a, bold_b = rng.integers(0, 3, 2)
        z = strength[a] - strength[b] + 1.2 * (la - lb) / (la + lb) + 0.4 * np.tanh(int(lists_a) - int(lists_b))
        u = rng.random()
        p = 1 / (1 + np.exp(-z))
        winner = "tie" if abs(u - p) < 0.05 else ("a" if u < p else "b")
        rows.append({"battle_id": f"b{i}", "model_a": a, "model_b": b, "winner": winner, "len_a": la, "len_b": lb,
                     "headers_a": 0, "headers_b": 0, "lists_a": lists_a, "lists_b": lists_b, "bold_a": bold_a,
                     "bold_b": bold_b})
    return pd.DataFrame(rows)


def _independent(df: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """statsmodels GLM (binomial, logit link, no intercept): model coefficients relative to the first model (on
    the Elo scale) and the style coefficients, ties as two half-weighted rows."""
    import statsmodels.api as sm

    feats = {}
    for name, (ca, cb) in {"length": ("len_a", "len_b"), "lists": ("lists_a", "lists_b"), "bold": ("bold_a", "bold_b")}.items():
        a, b = df[ca].to_numpy(float), df[cb].to_numpy(float)
        d = np.where(a + b == 0, 0.0, (a - b) / np.where(a + b == 0, 1, a + b))
        feats[name] = (d - d.mean()) / d.std()
    models = sorted(set(df["model_a"]) | set(df["model_b"]))
    x, y, w = [], [], []
    for i, r in enumerate(df.itertuples(index=False)):
        ind = [(1.0 if r.model_a == m else -1.0 if r.model_b == m else 0.0) for m in models[1:]]
        row = ind + [feats[k][i] for k in feats]
        outs = {"a": [(1, 1.0)], "b": [(0, 1.0)], "tie": [(1, 0.5), (0, 0.5)]}[r.winner]
        for yy, ww in outs:
            x.append(row), y.append(yy), w.append(ww)
    fit = sm.GLM(np.array(y), np.array(x), family=sm.families.Binomial(), freq_weights=np.array(w)).fit(tol=1e-12)
    coef = fit.params
    rel = {m: 0.0 for m in models}
    rel.update({m: coef[i] / ALPHA for i, m in enumerate(models[1:])})
    return rel, {k: coef[len(models) - 1 + j] for j, k in enumerate(feats)}


def test_style_control_matches_statsmodels():
    df = _battles()
    table = style_control(df)
    rel, beta = _independent(df)
    ours = table.set_index("model")["rating"]
    first = sorted(MODELS)[0]
    for m in MODELS:
        assert ours[m] - ours[first] == pytest.approx(rel[m], abs=0.05)
    assert table.attrs["features"] == ["length", "lists", "bold"]  # headers never vary: left out
    for k, v in beta.items():
        assert table.attrs["coefficients"][k] == pytest.approx(v, abs=1e-4)
    assert table.attrs["coefficients"]["length"] > 0.3  # longer answers do win more here
    assert ours.mean() == pytest.approx(1000.0)
    assert set(table["battles"]) and table["battles"].sum() == 2 * len(df)


def test_raw_rating_is_the_plain_fit_and_bootstrap_gives_intervals():
    df = _battles(200)
    table = style_control(df, rounds=20, seed=1)
    assert (table["lower"] <= table["rating"] + 1e-9).all() and (table["rating"] <= table["upper"] + 1e-9).all()
    assert np.allclose(table["delta"], table["rating"] - table["raw_rating"])
    # without style columns only length is a covariate; without lengths either, style control is the raw fit
    plain = style_control(df.drop(columns=["headers_a", "headers_b", "lists_a", "lists_b", "bold_a", "bold_b",
                                           "len_a", "len_b"]))
    assert plain.attrs["features"] == [] and np.allclose(plain["rating"], plain["raw_rating"])


def test_markdown_counts():
    text = "# Title\nSome **bold** text and __more__.\n\n- one\n- two\n1. first\n2) second\n## Sub\nnot#header"
    assert markdown_counts(text) == {"headers": 2, "lists": 4, "bold": 2}
    assert markdown_counts("") == {"headers": 0, "lists": 0, "bold": 0}


def test_cli_style_control(tmp_path):
    path = tmp_path / "battles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _battles(120).to_dict("records")), "utf-8")
    done = subprocess.run([sys.executable, "-m", "bactrian.cli", "studio", "ratings", "--battles", str(path),
                           "--style-control", "--rounds", "5", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["method"] == "style-control" and {r["model"] for r in out["ratings"]} == set(MODELS)
    assert set(out["coefficients"]) == {"length", "lists", "bold"}
    text = subprocess.run([sys.executable, "-m", "bactrian.cli", "studio", "ratings", "--battles", str(path),
                           "--style-control", "--rounds", "0"], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0 and "style coefficients" in text.stdout and "raw_rating" in text.stdout
