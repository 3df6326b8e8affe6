"""`bactrian bench` end to end on a tiny model: XCOPA + XWinograd from the shared data, SentimentX, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.cli import main
from pipelines.bench.results import SCHEMA, read_run, table4
from pipelines.bench.runner import BenchRequest, evaluate, plan


def _cache_entries(cache_dir: Path) -> dict[str, int]:
    from sqlitedict import SqliteDict

    out = {}
    for db in sorted(cache_dir.glob("*.db")):
        with SqliteDict(str(db)) as d:
            out[db.name] = len(d)
    return out


@pytest.mark.shared
def test_xcopa_and_xwinograd_on_a_tiny_model(tmp_path, tiny_base, tiny_adapters, shared_data, capsys):
    out, cache = tmp_path / "r.json", tmp_path / "cache"
    argv = ["bench", "--model", str(tiny_base), "--tasks", "xcopa,xwinograd", "--languages", "et,zh,en",
            "--limit", "5", "--batch-size", "4", "--data-root", str(shared_data / "benchmarks"), "--cache-dir", str(cache)]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| model | xcopa | xwinograd |" in printed

    data = json.loads(out.read_text("utf-8"))
    assert data["schema"] == SCHEMA and data["limit"] == 5 and data["adapter"] is None and data["run_id"]
    got = {(r["task"], r["language"]) for r in data["records"]}
    assert got == {("xcopa", "et"), ("xcopa", "zh"), ("xwinograd", "en"), ("xwinograd", "zh")}
    for r in data["records"]:
        assert set(r) >= {"model", "adapter", "task", "language", "metric", "value", "n", "run_id", "created"}
        assert r["metric"] == "acc" and r["n"] == 5 and r["run_id"] == data["run_id"]
        assert 0.0 <= r["value"] <= 1.0 and abs(r["value"] * 5 - round(r["value"] * 5)) < 1e-9  # k of 5 right
    for avg in data["averages"]:
        langs = [r["value"] for r in data["records"] if r["task"] == avg["task"]]
        assert avg["language"] == "avg" and avg["n"] == 10 and avg["value"] == pytest.approx(sum(langs) / 2)

    # lm-eval's response cache: 20 docs x 2 choices were scored once; a rerun reads them back unchanged.
    entries = _cache_entries(cache)
    assert list(entries.values()) == [40]
    again = tmp_path / "again.json"
    assert main([*argv, "--out", str(again)]) == 0
    assert _cache_entries(cache) == entries
    first = {(r["task"], r["language"]): r["value"] for r in data["records"]}
    assert {(r.task, r.language): r.value for r in read_run(again).records} == first

    # the same with an adapter: labelled, cached apart from the base
    with_adapter = tmp_path / "adapter.json"
    assert main([*argv, "--adapter", str(tiny_adapters["alpha"]), "--out", str(with_adapter)]) == 0
    run_a = read_run(with_adapter)
    assert {r.adapter for r in run_a.records} == {"alpha"} and len(_cache_entries(cache)) == 2

    runs = [read_run(out), run_a]
    table = table4(runs)
    assert f"| {Path(tiny_base).resolve()} + alpha |" in table

    # the files as the studio sees them: ingested into a real SQLite store (bactrian studio import-bench)
    from eval_studio.analysis.bench_views import bench_frame, language_figure
    from eval_studio.store.bench import list_bench

    db = f"sqlite:///{tmp_path / 'studio.db'}"
    assert main(["studio", "import-bench", str(out), str(with_adapter), "--db", db]) == 0
    frame = bench_frame(list_bench(db))
    fig = language_figure(frame, "xcopa")
    assert [list(bar.x) for bar in fig.data] == [["et", "zh"], ["et", "zh"]]
    assert [bar.name for bar in fig.data][1].endswith("+ alpha")
    assert [list(bar.y) for bar in fig.data] == [[100 * r.value for r in run.records if r.task == "xcopa"] for run in runs]
    with pytest.raises(ValueError, match="no results for task 'xstorycloze'"):
        language_figure(frame, "xstorycloze")


def _loglikelihood(model, tok, context: str, continuation: str) -> float:
    """Sum of log-probabilities of ``continuation`` after ``context``, tokenised the way lm-eval's HFLM does."""
    import torch

    whole = tok.encode(context + continuation)
    ctx = tok.encode(context)
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].log_softmax(-1)
    return float(sum(logits[i - 1, whole[i]] for i in range(len(ctx), len(whole))))


def test_sentimentx_is_weighted_f1_per_language(tmp_path, tiny_base):
    from sklearn.metrics import f1_score

    from bactrian.models import load_base

    rows = [("I love this film", "positive", "en"), ("Terrible service, never again", "negative", "en"),
            ("It is a table", "neutral", "en"), ("Great value", "positive", "en"),
            ("Me encanta", "positive", "es"), ("Horrible", "negative", "es"), ("Es una mesa", "neutral", "es")]
    path = tmp_path / "sentimentx.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab, "language": g}) + "\n" for t, lab, g in rows), "utf-8")
    run = evaluate(plan(BenchRequest(model=str(tiny_base), tasks="sentimentx", sentimentx_file=str(path), cache_dir="")))
    assert {(r.language, r.metric, r.n) for r in run.records} == {("en", "f1", 4), ("es", "f1", 3)}

    base = load_base(str(tiny_base))
    labels = ["negative", "neutral", "positive"]
    for lang in ("en", "es"):
        gold, pred = [], []
        for text, label, g in rows:
            if g != lang:
                continue
            ctx = f"{text}\nSentiment (negative, neutral or positive):"
            scores = [_loglikelihood(base.model, base.tokenizer, ctx, f" {c}") for c in labels]
            gold.append(labels.index(label))
            pred.append(max(range(3), key=scores.__getitem__))
        expected = f1_score(gold, pred, average="weighted")
        got = next(r.value for r in run.records if r.language == lang)
        assert got == pytest.approx(expected), lang
