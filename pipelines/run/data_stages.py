"""The data stages of a run: the steps of ``bactrian data`` (translate, respond, filter, report, export) on the run's
store, each with a digest of what it produced. Translate and respond resume item by item from the store, so a
stage cut short by a kill sends only what is not stored yet."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .flow import Flow, Stage, StagePlan
from .recipe import RunError
from .state import digest, tree_digest


def _step(flow: Flow, name: str) -> dict[str, Any]:
    from pipelines.data.pipeline import RUNNERS

    return RUNNERS[name](flow.data())


def _first_error(stats: dict[str, Any]) -> str:
    errors = stats.get("errors") or []
    return f" (first: {errors[0]})" if errors else ""


class Translate(Stage):
    name = "translate"

    def inputs(self, flow: Flow) -> dict[str, Any]:
        r = flow.run.data
        return {"sources": flow.sources_digest(), "languages": list(r.languages), "translate": asdict(r.translate)}

    def run(self, flow: Flow) -> dict[str, Any]:
        stats = _step(flow, "translate")
        if stats["failed"]:
            raise RunError(f"translate: {stats['failed']} row(s) failed{_first_error(stats)}; "
                           "rerun the same command to retry only those")
        return {k: stats[k] for k in ("pending", "translated", "code_rows", "marker_fallbacks")}

    def _pending(self, flow: Flow) -> dict[str, list[Any]]:
        from pipelines.data.translate import src_hash, translator_name

        ctx = flow.data()
        done = ctx.store.translation_keys(translator_name(ctx.recipe))
        return {lang: [r for r in ctx.sources.rows if (r.id, lang, src_hash(r)) not in done]
                for lang in ctx.recipe.languages if lang != "en"}

    def output(self, flow: Flow) -> str | None:
        from pipelines.data.translate import src_hash, translator_name

        ctx = flow.data()
        parts = []
        for lang in (x for x in ctx.recipe.languages if x != "en"):
            stored = ctx.store.translations(translator_name(ctx.recipe), lang)
            for r in ctx.sources.rows:
                t = stored.get(r.id)
                if t is None or t["src_hash"] != src_hash(r):
                    return None
                parts.append([r.id, lang, t["instruction"], t["input"], t["untranslated"]])
        return digest(parts)

    def plan(self, flow: Flow) -> StagePlan:
        from pipelines.data.ledger import estimate
        from pipelines.data.translate import translator_name

        r = flow.run.data
        name = translator_name(r)
        pending = self._pending(flow)
        pairs = sum(len(v) for v in pending.values())
        costs = [estimate(rows, [lang], r.respond.model, name, r.respond.max_tokens) for lang, rows in pending.items() if rows]
        chars = sum(e.translate_chars for e in costs)
        usd = None if any(e.translate_usd is None for e in costs) else sum(e.translate_usd for e in costs)
        paid = _paid(r.translate.backend in ("google", "llm"), r.translate.api_key_env, r.translate.backend == "google")
        price = "" if not pairs else f", ${usd:,.2f}" if usd is not None else ", price n/a (not in the price table)"
        n_rows = len(flow.data().sources.rows)
        return StagePlan([f"{n_rows:,} rows x {len(pending)} languages: {pairs:,} (row, language) pairs to translate "
                          f"with {name}, {chars:,} characters{price}"], usd if pairs else 0.0, paid and pairs > 0)


def _paid(remote: bool, key_env: str | None, keyed_service: bool) -> bool:
    """A call costs money when it goes to a service that takes a key (a local `bactrian serve` needs none)."""
    return remote and (keyed_service or bool(key_env))


class Respond(Stage):
    name = "respond"

    def inputs(self, flow: Flow) -> dict[str, Any]:
        r = flow.run.data
        return {"sources": flow.sources_digest(), "translate": flow.outputs["translate"], "respond": asdict(r.respond),
                "work_languages": r.work_languages}

    def run(self, flow: Flow) -> dict[str, Any]:
        stats = _step(flow, "respond")
        if stats["failed"]:
            raise RunError(f"respond: {stats['failed']} call(s) failed{_first_error(stats)}; "
                           "rerun the same command to retry only those")
        return {k: stats[k] for k in ("planned", "already_done", "requested", "stored", "prompt_tokens",
                                      "completion_tokens", "spend")}

    def output(self, flow: Flow) -> str | None:
        from pipelines.data.respond import plan

        ctx = flow.data()
        p = plan(ctx.recipe, ctx.store, ctx.sources.rows)
        if p.pending or p.missing_translation:
            return None
        wanted = {(it.row_id, it.lang, it.prompt_hash) for it in p.items}
        parts = []
        for lang in ctx.recipe.work_languages:
            for x in ctx.store.responses(ctx.recipe.respond.model, lang):
                if (x["row_id"], lang, x["prompt_hash"]) in wanted:
                    parts.append([x["row_id"], lang, x["prompt_hash"], x["response"], x["finish_reason"]])
        return digest(sorted(parts, key=lambda p: (p[1], p[0])))

    def plan(self, flow: Flow) -> StagePlan:
        from pipelines.data.pipeline import dry_run

        e = dry_run(flow.data())
        batch = flow.run.data.respond.use_batch_api
        usd = e.chat_usd_batch if batch else e.chat_usd
        price = "price n/a (model not in the price table)" if usd is None else (
            f"${usd:,.2f}" + (" with the Batch API" if batch else f" online (${e.chat_usd_batch:,.2f} with the Batch API)"))
        spec = flow.run.data.respond
        return StagePlan([f"{e.calls:,} chat calls to {e.model} ({e.rows:,} rows x {e.languages} languages, less those "
                          f"stored): ~{e.prompt_tokens:,} prompt + {e.completion_tokens:,} completion tokens, {price}"],
                         usd if e.calls else 0.0, _paid(True, spec.api_key_env, spec.base_url is None) and e.calls > 0)


class Filter(Stage):
    name = "filter"

    def inputs(self, flow: Flow) -> dict[str, Any]:
        return {"respond": flow.outputs["respond"], "filter": asdict(flow.run.data.filter)}

    def run(self, flow: Flow) -> dict[str, Any]:
        return {lang: c.get("kept_total", 0) for lang, c in _step(flow, "filter").items()}

    def output(self, flow: Flow) -> str | None:
        ctx = flow.data()
        parts = []
        for lang in ctx.recipe.work_languages:
            decisions = ctx.store.decisions(lang)
            if not decisions and ctx.store.responses(ctx.recipe.respond.model, lang):
                return None
            parts.append([lang, sorted([k, *v] for k, v in decisions.items())])
        return digest(parts)

    def plan(self, flow: Flow) -> StagePlan:
        f = flow.run.data.filter
        checks = ["empty", "refusal", "length"] + (["language id (lingua)"] if f.langid else []) + (
            ["duplicates"] if f.dedupe else [])
        return StagePlan([f"keep or drop each response per language ({', '.join(checks)}); local"])


class Report(Stage):
    name = "report"

    def inputs(self, flow: Flow) -> dict[str, Any]:
        return {"filter": flow.outputs["filter"], "report": asdict(flow.run.data.report)}

    def run(self, flow: Flow) -> dict[str, Any]:
        return _step(flow, "report")

    def output(self, flow: Flow) -> str | None:
        folder = flow.run.data.out / "report"
        return tree_digest(folder) if (folder / "report.json").is_file() else None

    def plan(self, flow: Flow) -> StagePlan:
        return StagePlan([f"per-language report (kept/dropped, token lengths with {flow.run.data.report.tokenizer}) -> "
                          f"{flow.run.data.out / 'report'}; local"])


class Export(Stage):
    name = "export"

    def inputs(self, flow: Flow) -> dict[str, Any]:
        return {"filter": flow.outputs["filter"], "report": flow.outputs["report"],
                "export": asdict(flow.run.data.export), "model": flow.run.data.respond.model}

    def run(self, flow: Flow) -> dict[str, Any]:
        return _step(flow, "export")

    def output(self, flow: Flow) -> str | None:
        root = flow.run.export_dir
        # state.json holds a random fingerprint of the in-memory dataset; the data files and card are the content
        return tree_digest(root, skip_names=("state.json",)) if (root / "counts.json").is_file() else None

    def plan(self, flow: Flow) -> StagePlan:
        counts = flow.run.export_dir / "counts.json"
        have = f" (now: {json.loads(counts.read_text('utf-8'))})" if counts.is_file() else ""
        return StagePlan([f"a DatasetDict per language (save_to_disk + parquet + card) -> {flow.run.export_dir}{have}; local"])


DATA_STAGES = (Translate(), Respond(), Filter(), Report(), Export())
