"""The per-language report: kept / dropped by reason, token-length statistics with the target base model's
tokenizer, and tokenizer fertility (tokens per word, tokens per character) -- as JSON and as a plotly page."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bactrian.languages import get_language

from .export import kept_records
from .filter import KEPT
from .recipe import Recipe
from .store import Store


class _RustTokenizer:
    """The ``tokenizer.json`` of a model folder through the ``tokenizers`` library, called like a transformers
    tokenizer (``tok(texts, add_special_tokens=False)["input_ids"]``).

    transformers' fast tokenizers wrap this same Rust object, so the ids are identical (checked in
    tests/test_data_filter.py); loading it this way skips importing transformers and torch, which was most of
    the report step's time (~10 s of a loaded 2-core box's wall clock for a 60-row report).
    """

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict[str, list[list[int]]]:
        return {"input_ids": [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)]}


def load_tokenizer(name: str) -> Any:
    """The tokenizer of an embedded base (``gemma-3-270m``), a local model folder or a Hub id."""
    from bactrian.models import materialize

    folder = materialize(name, progress=False)
    if (Path(folder) / "tokenizer.json").is_file():
        return _RustTokenizer(Path(folder) / "tokenizer.json")
    from transformers import AutoTokenizer  # slow (sentencepiece-only) tokenizers and Hub ids

    return AutoTokenizer.from_pretrained(str(folder))


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {"n": len(s), "mean": round(statistics.fmean(s), 2), "median": statistics.median(s),
            "p95": s[min(len(s) - 1, int(0.95 * len(s)))], "max": s[-1], "total": sum(s)}


def _words(text: str) -> int:
    return len(text.split())


def language_report(recipe: Recipe, store: Store, lang: str, rows_by_id: dict[str, Any], tok: Any) -> dict[str, Any]:
    decisions = store.decisions(lang)
    kept = sum(1 for k, _, _ in decisions.values() if k)
    dropped: dict[str, int] = {}
    kept_despite: dict[str, int] = {}
    for k, why, _ in decisions.values():
        if not k:
            dropped[why] = dropped.get(why, 0) + 1
        elif why != KEPT:
            kept_despite[why] = kept_despite.get(why, 0) + 1
    rep: dict[str, Any] = {"language": get_language(lang).name, "responses": len(decisions), "kept": kept,
                           "dropped": dropped, "kept_despite": kept_despite,
                           # which detector checked this language (lingua, py3langid), None: not checked
                           "langid_detector": store.get_meta("langid_detectors", {}).get(lang)}
    recs = kept_records(recipe, store, lang, rows_by_id)
    rep["untranslated_code_rows"] = sum(1 for r in recs if lang != "en" and not r["translated"])
    if tok is not None and recs:
        lengths: dict[str, list[int]] = {}
        for field in ("instruction", "input", "output"):
            texts = [r[field] for r in recs]
            ids = tok(texts, add_special_tokens=False)["input_ids"]
            lengths[field] = [len(x) for x in ids]
        rep["tokens"] = {f: _stats(v) for f, v in lengths.items()}
        out_words = sum(_words(r["output"]) for r in recs)
        out_chars = sum(len(r["output"]) for r in recs)
        out_tokens = sum(lengths["output"])
        # Words are whitespace-separated; for scripts without spaces (zh, ja, th, km, my) use tokens/char.
        rep["fertility"] = {
            "output_tokens_per_word": round(out_tokens / out_words, 3) if out_words else None,
            "output_tokens_per_char": round(out_tokens / out_chars, 3) if out_chars else None,
        }
    return rep


def _html(report: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    langs = list(report["languages"])
    reasons = sorted({r for v in report["languages"].values() for r in v["dropped"]})
    fig1 = go.Figure([go.Bar(name="kept", x=langs, y=[report["languages"][lg]["kept"] for lg in langs])] + [
        go.Bar(name=f"dropped: {r}", x=langs, y=[report["languages"][lg]["dropped"].get(r, 0) for lg in langs])
        for r in reasons])
    fig1.update_layout(barmode="stack", title="Responses kept and dropped by reason", yaxis_title="rows")
    tok_langs = [lg for lg in langs if "fertility" in report["languages"][lg]]
    fig2 = go.Figure([
        go.Bar(name="tokens per word", x=tok_langs,
               y=[report["languages"][lg]["fertility"]["output_tokens_per_word"] for lg in tok_langs]),
        go.Bar(name="tokens per character", x=tok_langs,
               y=[report["languages"][lg]["fertility"]["output_tokens_per_char"] for lg in tok_langs]),
    ])
    fig2.update_layout(barmode="group", title=f"Tokenizer fertility of outputs ({report.get('tokenizer')})")
    fig3 = go.Figure([
        go.Bar(name=f"{field} ({stat})", x=tok_langs,
               y=[report["languages"][lg]["tokens"][field].get(stat, 0) for lg in tok_langs])
        for field in ("instruction", "input", "output") for stat in ("median", "p95")])
    fig3.update_layout(barmode="group", title="Token lengths of kept rows", yaxis_title="tokens")
    parts = [fig1.to_html(full_html=False, include_plotlyjs=True)]  # inline: the page works offline
    parts += [f.to_html(full_html=False, include_plotlyjs=False) for f in (fig2, fig3)]
    cells = "".join(f"<tr><td>{lg}</td><td>{report['languages'][lg].get('langid_detector') or 'not checked'}</td></tr>"
                    for lg in langs)
    parts.append(f"<h2>Language identification</h2><table id='langid-detectors'><tr><th>language</th>"
                 f"<th>detector</th></tr>{cells}</table>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Data report</title></head><body>"
            f"<h1>Data report: {report['recipe']}</h1>" + "".join(parts) + "</body></html>")


def run_report(recipe: Recipe, store: Store, rows: list[Any], progress: bool = True) -> dict[str, Any]:
    tok = load_tokenizer(recipe.report.tokenizer) if recipe.report.tokenizer else None
    by_id = {r.id: r for r in rows}
    report = {
        "recipe": recipe.name, "tokenizer": recipe.report.tokenizer, "respond_model": recipe.respond.model,
        "sources": {"rows": len(rows), "malformed": store.get_meta("malformed", {})},
        "languages": {lang: language_report(recipe, store, lang, by_id, tok) for lang in recipe.work_languages},
    }
    folder = recipe.out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), "utf-8")
    (folder / "report.html").write_text(_html(report), "utf-8")
    return report


def report_paths(recipe: Recipe) -> tuple[Path, Path]:
    return recipe.out / "report" / "report.json", recipe.out / "report" / "report.html"
