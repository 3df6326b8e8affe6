"""Run the steps of a recipe, alone or all together, against the run's store in ``<output>/work.db``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from .ledger import estimate, spend
from .recipe import Recipe
from .sources import LoadResult, load_sources
from .store import Store
from .translate import run_translate, translator_name

STEPS = ("translate", "respond", "filter", "report", "export")


@dataclass
class Context:
    recipe: Recipe
    store: Store
    sources: LoadResult
    progress: bool = True


def open_run(recipe: Recipe, progress: bool = True) -> Context:
    """Load the sources, open the store, write the recipe snapshot (no secrets: recipes only name env vars)."""
    recipe.out.mkdir(parents=True, exist_ok=True)
    (recipe.out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1), "utf-8")
    sources = load_sources(recipe.sources)
    store = Store(recipe.out / "work.db")
    store.set_meta("malformed", dict(sources.malformed))
    store.set_meta("malformed_examples", sources.examples)
    return Context(recipe, store, sources, progress)


def dry_run(ctx: Context) -> Any:
    from .respond import plan

    p = plan(ctx.recipe, ctx.store, ctx.sources.rows)
    done = len(p.items) - len(p.pending)
    return estimate(ctx.sources.rows, ctx.recipe.work_languages, ctx.recipe.respond.model, translator_name(ctx.recipe),
                    ctx.recipe.respond.max_tokens, already_done=done)


def _translate(ctx: Context) -> dict[str, Any]:
    return run_translate(ctx.recipe, ctx.store, ctx.sources.rows, ctx.progress).__dict__


def _respond(ctx: Context) -> dict[str, Any]:
    from .respond import run_respond

    stats = run_respond(ctx.recipe, ctx.store, ctx.sources.rows, ctx.progress).as_dict()
    stats["spend"] = spend(ctx.store, ctx.recipe.respond.model)["total"]
    (ctx.recipe.out / "ledger.json").write_text(json.dumps(spend(ctx.store, ctx.recipe.respond.model), indent=1), "utf-8")
    return stats


def _filter(ctx: Context) -> dict[str, Any]:
    from .filter import run_filter

    return run_filter(ctx.recipe, ctx.store, ctx.sources.rows, ctx.progress)


def _report(ctx: Context) -> dict[str, Any]:
    from .report import run_report

    rep = run_report(ctx.recipe, ctx.store, ctx.sources.rows, ctx.progress)
    return {lang: {"kept": v["kept"], "dropped": v["dropped"]} for lang, v in rep["languages"].items()}


def _export(ctx: Context) -> dict[str, Any]:
    from .export import run_export

    return run_export(ctx.recipe, ctx.store, ctx.sources.rows, ctx.progress)


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "translate": _translate, "respond": _respond, "filter": _filter, "report": _report, "export": _export,
}


def run_steps(ctx: Context, steps: tuple[str, ...] = STEPS, log: Callable[[str], None] = print) -> dict[str, Any]:
    results: dict[str, Any] = {}
    bad = dict(ctx.sources.malformed)
    log(f"sources: {len(ctx.sources.rows):,} rows" + (f"; malformed rows skipped: {bad}" if bad else ""))
    for step in steps:
        results[step] = RUNNERS[step](ctx)
        log(f"{step}: {json.dumps(results[step], ensure_ascii=False, default=str)[:600]}")
    return results
