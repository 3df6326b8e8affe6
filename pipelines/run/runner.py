"""Walk the stages in order: skip each one that is current, run the others, record each as it finishes; or, for
``--dry-run``, say for each whether it is current and what it would do and cost."""

from __future__ import annotations

import time
from typing import Any, Callable

from .data_stages import DATA_STAGES
from .flow import Flow, Stage, StagePlan
from .model_stages import Bench, Train
from .publish_stages import PUBLISH_STAGES
from .recipe import STAGES, RunError, RunRecipe
from .state import State, digest, locked

ALL: tuple[Stage, ...] = (*DATA_STAGES, Train(), Bench(), *PUBLISH_STAGES)
assert tuple(s.name for s in ALL) == STAGES


def _selected(until: str | None) -> tuple[Stage, ...]:
    return ALL if until is None else ALL[: STAGES.index(until) + 1]


def _current(stage: Stage, flow: Flow, state: State, force: set[str]) -> tuple[str, str | None]:
    """(input digest, recorded output digest if the stage is current now, else None)."""
    key = digest(stage.inputs(flow))
    recorded = state.current(stage.name, key)
    if stage.name in force or recorded is None:
        return key, None
    return key, recorded if stage.output(flow) == recorded else None


def execute(run: RunRecipe, *, force: tuple[str, ...] = (), until: str | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage that is not current; returns {stage: "skipped" | "ran" | "disabled"} and the outputs."""
    done: dict[str, str] = {}
    with locked(run.workdir):
        state, flow = State(run.workdir), Flow(run, progress=progress)
        try:
            for stage in _selected(until):
                if not stage.enabled(flow):
                    done[stage.name] = "disabled"
                    continue
                key, recorded = _current(stage, flow, state, set(force))
                if recorded is not None:
                    flow.outputs[stage.name] = recorded
                    done[stage.name] = "skipped"
                    log(f"[run] {stage.name}: current, skipped")
                    continue
                log(f"[run] {stage.name}: running")
                t0 = time.perf_counter()
                summary = stage.run(flow)
                out = stage.output(flow)
                if out is None:
                    raise RunError(f"{stage.name}: finished, but its output is missing or incomplete")
                state.record(stage.name, key, out, summary, time.perf_counter() - t0)
                flow.outputs[stage.name] = out
                done[stage.name] = "ran"
                log(f"[run] {stage.name}: done in {time.perf_counter() - t0:.1f} s {_short(summary)}")
                if summary.get("table"):
                    log(summary["table"])
        finally:
            flow.close()
    return {"stages": done, "workdir": str(run.workdir), "adapter": str(run.train.adapter_dir)}


def _short(summary: dict[str, Any]) -> str:
    import json

    text = json.dumps({k: v for k, v in summary.items() if k != "table"}, ensure_ascii=False, default=str)
    return text if len(text) <= 400 else text[:400] + "..."


def plan(run: RunRecipe, *, force: tuple[str, ...] = (), until: str | None = None) -> str:
    """The dry run: each stage's status, what it would do, and the cost still to spend. Writes nothing."""
    state, flow = State(run.workdir), Flow(run, planning=True)
    lines = [f"bactrian run {run.path or run.name}: workdir {run.workdir}"]
    pending_from: str | None = None
    paid = 0.0
    paid_known = True
    gpu_hours = 0.0
    try:
        for stage in _selected(until):
            if not stage.enabled(flow):
                lines.append(f"- {stage.name}: off (not configured in the recipe)")
                continue
            status = f"to run (after {pending_from})" if pending_from else "to run"
            if pending_from is None:
                key, recorded = _current(stage, flow, state, set(force))
                if recorded is not None:
                    flow.outputs[stage.name] = recorded
                    lines.append(f"- {stage.name}: current, will be skipped")
                    continue
                pending_from = stage.name
            try:
                p = stage.plan(flow)
            except Exception as e:  # noqa: BLE001 - a plan that cannot be made is shown, not fatal
                p = StagePlan([f"cannot plan: {type(e).__name__}: {e}"])
            lines.append(f"- {stage.name}: {status}")
            lines += [f"    {line}" for line in p.lines]
            if p.paid:
                paid_known = paid_known and p.usd is not None
                paid += p.usd or 0.0
            gpu_hours += p.gpu_hours or 0.0
        lines.insert(1, f"sources: {len(flow.data().sources.rows):,} rows")
    finally:
        flow.close()
    lines += [f"note: {n}" for n in flow.notes]
    total = f"${paid:,.2f}" if paid_known else f"${paid:,.2f} + the calls whose price is unknown"
    lines.append(f"total still to spend on paid APIs: {total}"
                 + (f"; training ~{gpu_hours:,.0f} GPU-hours" if gpu_hours else ""))
    return "\n".join(lines)
