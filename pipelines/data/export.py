"""The export step: one ``datasets.DatasetDict`` per language (config = language code), saved to disk and as
parquet in the Hub's multi-config layout, a generated dataset card, and an optional ``push_to_hub``.

Layout under ``<output>/export``:  ``disk/<lang>/`` (``save_to_disk``), ``hub/<lang>/train.parquet`` +
``hub/README.md`` (loadable with ``load_dataset(".../hub", "<lang>")``).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from bactrian.languages import get_language

from .filter import candidates
from .recipe import Recipe
from .store import Store

COLUMNS = ("id", "instruction", "input", "output", "lang", "source", "category", "translated", "model")


def kept_records(recipe: Recipe, store: Store, lang: str, rows_by_id: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the filter kept for ``lang``, in source order."""
    decisions = store.decisions(lang)
    order = {rid: i for i, rid in enumerate(rows_by_id)}
    out = []
    for c in candidates(recipe, store, lang, rows_by_id):
        d = decisions.get(c.row_id)
        if d is None or not d[0]:
            continue
        src = rows_by_id[c.row_id]
        out.append({"id": c.row_id, "instruction": c.instruction, "input": c.input, "output": c.output.strip(),
                    "lang": lang, "source": src.source, "category": src.category,
                    "translated": lang != "en" and not c.untranslated, "model": recipe.respond.model})
    return sorted(out, key=lambda r: order[r["id"]])


def _card(recipe: Recipe, counts: dict[str, int], report: dict[str, Any] | None) -> str:
    template = resources.files("pipelines.data.resources").joinpath("dataset_card.md").read_text("utf-8")
    configs = "\n".join(
        f"- config_name: {lang}\n  data_files:\n  - split: train\n    path: {lang}/train.parquet" for lang in counts)
    stats = ["| language | code | rows | dropped | tokens/word (output) |", "|---|---|---|---|---|"]
    for lang, n in counts.items():
        rep = (report or {}).get("languages", {}).get(lang, {})
        dropped = sum(v for k, v in rep.get("dropped", {}).items())
        fert = rep.get("fertility", {}).get("output_tokens_per_word")
        stats.append(f"| {get_language(lang).name} | {lang} | {n:,} | {dropped:,} | {'' if fert is None else f'{fert:.2f}'} |")
    return template.format(
        pretty_name=recipe.export.pretty_name, configs=configs, languages="\n".join(f"- {lang}" for lang in counts),
        n_languages=len(counts), total=f"{sum(counts.values()):,}", model=recipe.respond.model,
        translator=recipe.translate.backend + (f" ({recipe.translate.model})" if recipe.translate.model else ""),
        stats="\n".join(stats), recipe=recipe.name,
    )


def run_export(recipe: Recipe, store: Store, rows: list[Any], progress: bool = True) -> dict[str, int]:
    """Write every language's DatasetDict; returns {lang: rows}."""
    import datasets
    from datasets import Dataset, DatasetDict, Features, Value
    from tqdm.auto import tqdm

    if not progress:
        datasets.disable_progress_bars()

    features = Features({c: Value("bool") if c == "translated" else Value("string") for c in COLUMNS})
    root = recipe.out / "export"
    by_id = {r.id: r for r in rows}
    counts: dict[str, int] = {}
    for lang in tqdm(recipe.work_languages, desc="export", unit="lang", disable=not progress):
        recs = kept_records(recipe, store, lang, by_id)
        ds = Dataset.from_list(recs, features=features) if recs else Dataset.from_dict(
            {c: [] for c in COLUMNS}, features=features)
        dd = DatasetDict({"train": ds})
        if recipe.export.save_to_disk:
            dd.save_to_disk(str(root / "disk" / lang))
        if recipe.export.parquet:
            (root / "hub" / lang).mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(root / "hub" / lang / "train.parquet"))
        counts[lang] = len(ds)
    report_path = recipe.out / "report" / "report.json"
    report = json.loads(report_path.read_text("utf-8")) if report_path.is_file() else None
    card = _card(recipe, counts, report)
    (root / "hub").mkdir(parents=True, exist_ok=True)
    (root / "hub" / "README.md").write_text(card, "utf-8")
    (root / "counts.json").write_text(json.dumps(counts, indent=1), "utf-8")
    if recipe.export.push_to_hub:
        push(recipe.export.push_to_hub, root / "hub")
    return counts


def push(repo: str, folder: Path, private: bool | None = None) -> None:
    """Upload the hub folder (parquet per config + card); the token comes from ``HF_TOKEN`` (never written)."""
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset")
