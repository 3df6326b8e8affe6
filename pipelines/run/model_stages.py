"""The model stages of a run: train a LoRA adapter on the run's export (``bactrian train``'s trainer, resuming from
its last checkpoint after a kill) and benchmark it (``bactrian bench``'s runner, whose response cache makes a
repeated item free)."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .flow import Flow, Stage, StagePlan

INPUTS_FILE = "run_inputs.txt"  # in the training folder: which inputs its checkpoints belong to


def _export_counts(flow: Flow) -> dict[str, int] | None:
    f = flow.run.export_dir / "counts.json"
    return json.loads(f.read_text("utf-8")) if f.is_file() else None


class Train(Stage):
    name = "train"

    def inputs(self, flow: Flow) -> dict[str, Any]:
        return {"export": flow.outputs["export"], "recipe": flow.run.train.to_dict()}

    def run(self, flow: Flow) -> dict[str, Any]:
        from pipelines.train.trainer import train

        from .state import digest

        recipe = flow.run.train
        run_dir = recipe.run_dir
        key = digest(self.inputs(flow))
        marker = run_dir / INPUTS_FILE
        if marker.is_file() and marker.read_text().strip() != key:  # checkpoints of other data or settings
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(key + "\n")
        command = f"bactrian run {flow.run.path}" if flow.run.path else "bactrian run"
        summary = train(recipe, resume=True, command=command, progress=flow.progress)
        return {k: summary.get(k) for k in ("steps", "train_loss", "eval_loss", "train_examples", "eval_examples",
                                            "adapter_dir", "data_fingerprint")}

    def output(self, flow: Flow) -> str | None:
        from bactrian.adapters import adapter_sha256

        folder = flow.run.train.adapter_dir
        return adapter_sha256(folder) if (folder / "bactrian_adapter.json").is_file() else None

    def plan(self, flow: Flow) -> StagePlan:
        from pipelines.data.ledger import estimate
        from pipelines.data.translate import translator_name

        r, d, t = flow.run.train, flow.run.train.data, flow.run.train.train
        data = flow.run.data
        rows = flow.data().sources.rows
        wanted = None if d.languages in ("all", ["all"]) else [d.languages] if isinstance(d.languages, str) else d.languages
        counts = _export_counts(flow)
        if counts is not None:
            basis = "rows in the export"
        else:
            counts = {lang: len(rows) for lang in data.work_languages}
            basis = "responses before filtering, an upper bound"
        chosen = {k: v for k, v in counts.items() if wanted is None or k in wanted}
        n = sum(min(v, d.max_examples) if d.max_examples else v for v in chosen.values())
        n_eval = min(int(round(n * d.eval_fraction)), d.eval_max, max(n - 1, 0))
        per_epoch = (n - n_eval) // t.batch_size
        steps = t.max_steps or max(1, math.ceil(t.epochs * per_epoch))
        full = estimate(rows, data.work_languages, data.respond.model, translator_name(data), data.respond.max_tokens)
        per_example = (full.prompt_tokens + full.completion_tokens) / max(full.calls, 1)
        tokens = steps * t.batch_size * per_example
        lines = [f"{r.name} on {r.base} (LoRA r {r.lora.r}): {n:,} examples in {len(chosen)} languages ({basis}), "
                 f"{n - n_eval:,} for training; batch {t.batch_size} -> {steps:,} steps; ~{_amount(tokens)} tokens seen "
                 f"(~{per_example:.0f} per example, 4 characters a token)"]
        e = flow.run.estimate
        gpu_hours = None
        if e.params:
            flops = 6 * e.params * tokens
            gpu_hours = flops / (e.gpu_tflops * 1e12 * e.mfu) / 3600
            cost = f", ${gpu_hours * e.gpu_hour_usd:,.0f}" if e.gpu_hour_usd else ""
            lines.append(f"compute: 6 x {e.params / 1e9:.2f}B parameters x tokens = {flops:.2e} FLOPs = ~{gpu_hours:,.0f} "
                         f"{e.gpu} GPU-hours at {e.mfu:.0%} of {e.gpu_tflops:g} TFLOP/s{cost}")
        return StagePlan(lines, gpu_hours=gpu_hours)


def _amount(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,.0f}"


def _variants(flow: Flow) -> list[tuple[str, str | None]]:
    """(label, adapter folder or None for the bare base) to benchmark."""
    out: list[tuple[str, str | None]] = [("adapter", str(flow.run.train.adapter_dir))]
    if flow.run.bench and flow.run.bench.compare_base:
        out.append(("base", None))
    return out


def _choices(name: str) -> int:
    return 3 if name == "sentimentx" else 2


def _items(name: str, language: str, b: Any) -> int | None:
    """Test items of one (benchmark, language) in local files, or None when not countable here."""
    from pipelines.bench import loaders

    if name == "sentimentx":
        return sum(1 for r in loaders.read_sentiment_file(b.sentimentx_file) if r["language"] == language)
    if b.source != "local":
        return None
    load = {"xcopa": loaders.load_xcopa, "xstorycloze": loaders.load_xstorycloze, "xwinograd": loaders.load_xwinograd}
    dd = load[name](language, data_root=b.data_root)
    return len(dd["eval" if name == "xstorycloze" else "test"])


class Bench(Stage):
    name = "bench"

    def enabled(self, flow: Flow) -> bool:
        return flow.run.bench is not None

    def files(self, flow: Flow) -> list[Path]:
        return [flow.run.bench_dir / f"{label}.json" for label, _ in _variants(flow)]

    def inputs(self, flow: Flow) -> dict[str, Any]:
        return {"adapter": flow.outputs["train"], "base": flow.run.train.base, "bench": asdict(flow.run.bench)}

    def run(self, flow: Flow) -> dict[str, Any]:
        from pipelines.bench.results import table4
        from pipelines.bench.runner import BenchRequest, evaluate, plan

        from .state import digest

        b, key = flow.run.bench, digest(self.inputs(flow))[:12]
        runs = []
        for (label, adapter), path in zip(_variants(flow), self.files(flow)):
            request = BenchRequest(
                model=flow.run.train.base, adapter=adapter, tasks=b.tasks, languages=b.languages, source=b.source,
                data_root=b.data_root, sentimentx_file=b.sentimentx_file, limit=b.limit, batch_size=b.batch_size,
                cache_dir=b.cache_dir, device=b.device, dtype=b.dtype)
            # the run id follows the inputs: a repeated stage gives the same rows, which the studio imports once
            result = evaluate(plan(request), run_id=f"{flow.run.name}-{key}-{label}")
            result.write(path)
            runs.append(result)
        return {"files": [str(p) for p in self.files(flow)], "table": table4(runs)}

    def output(self, flow: Flow) -> str | None:
        from .state import files_digest

        files = self.files(flow)
        return files_digest(flow.run.bench_dir, files) if all(f.is_file() for f in files) else None

    def plan(self, flow: Flow) -> StagePlan:
        from pipelines.bench.catalog import select

        b = flow.run.bench
        selections = select(b.tasks, b.languages, b.source, b.data_root, b.sentimentx_file)
        requests: int | None = 0
        for s in selections:
            n = _items(s.benchmark, s.language, b)
            requests = None if n is None or requests is None else requests + min(n, b.limit or n) * _choices(s.benchmark)
        variants = _variants(flow)
        size = "" if requests is None else f"; {requests:,} log-likelihood requests each"
        return StagePlan([f"{len(selections)} (task, language) pairs of {b.tasks}"
                          + (f", at most {b.limit} items each" if b.limit else " (full test sets)")
                          + f" x {len(variants)} variant(s) ({', '.join(label for label, _ in variants)}){size}; local"])
