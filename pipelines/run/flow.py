"""What the stages share: the run recipe, the data step's context (sources + store), and the output digests of the
stages before them. A stage says what its inputs are, runs, digests its output and plans (for ``--dry-run``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .recipe import RunRecipe
from .state import digest


@dataclass
class StagePlan:
    lines: list[str]  # what the stage will do, with counts
    usd: float | None = None  # paid API cost still to spend (None: nothing paid, or unknown)
    paid: bool = False  # whether the stage calls a paid API
    gpu_hours: float | None = None


class Stage:
    name = ""

    def enabled(self, flow: "Flow") -> bool:
        return True

    def inputs(self, flow: "Flow") -> dict[str, Any]:
        """Everything the output depends on: the recipe section and the output digests of earlier stages."""
        raise NotImplementedError

    def run(self, flow: "Flow") -> dict[str, Any]:
        """Do the work (resuming what a killed run left); returns a short summary."""
        raise NotImplementedError

    def output(self, flow: "Flow") -> str | None:
        """The digest of what the stage produced, or None when it is missing or incomplete."""
        raise NotImplementedError

    def plan(self, flow: "Flow") -> StagePlan:
        raise NotImplementedError


@dataclass
class Flow:
    run: RunRecipe
    progress: bool = True
    planning: bool = False  # --dry-run: write nothing, tolerate sources that cannot be loaded offline
    outputs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _ctx: Any = None
    _sources_digest: str | None = None

    @property
    def workdir(self) -> Path:
        return self.run.workdir

    def data(self) -> Any:
        """The data step's Context (``pipelines.data.pipeline``), opened once."""
        if self._ctx is None:
            from pipelines.data.pipeline import Context, open_run
            from pipelines.data.store import Store

            recipe = self.run.data
            if not self.planning:
                self._ctx = open_run(recipe, progress=self.progress)
            else:
                db = recipe.out / "work.db"
                self._ctx = Context(recipe, Store(db if db.is_file() else ":memory:"), self._plan_sources(), False)
        return self._ctx

    def _plan_sources(self) -> Any:
        from pipelines.data.sources import LoadResult, load_source

        result = LoadResult()
        for spec in self.run.data.sources:
            try:
                load_source(spec, result)
            except Exception as e:  # noqa: BLE001 - e.g. a Hub source while offline: planned without it
                where = spec.path or spec.hub or spec.kind
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                self.notes.append(f"source {spec.kind} ({where}) could not be loaded here and is NOT counted: {first}")
        return result

    def sources_digest(self) -> str:
        if self._sources_digest is None:
            rows = self.data().sources.rows
            self._sources_digest = digest([[r.id, r.instruction, r.input, r.output, r.source, r.category] for r in rows])
        return self._sources_digest

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.store.close()
            self._ctx = None
