"""The last stages of a run: the benchmark rows into the studio, and (optionally) the dataset and adapter to the Hub.

``pipelines`` never imports ``eval_studio``: the studio stage runs the registered ``bactrian studio import-bench``
command, found like every subcommand through the ``bactrian.commands`` entry points (``bactrian.cli``). The Hub
uploads reuse the data export's and the trainer's ``push`` functions (token from ``HF_TOKEN``, never written).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict
from typing import Any

from .flow import Flow, Stage, StagePlan
from .model_stages import Bench
from .recipe import RunError
from .state import digest


class Studio(Stage):
    name = "studio"

    def enabled(self, flow: Flow) -> bool:
        return flow.run.studio is not None and flow.run.bench is not None

    def argv(self, flow: Flow) -> list[str]:
        db = flow.run.studio.db
        return ["studio", "import-bench", *map(str, Bench().files(flow)), *(["--db", db] if db else [])]

    def inputs(self, flow: Flow) -> dict[str, Any]:
        return {"bench": flow.outputs["bench"], "studio": asdict(flow.run.studio)}

    def run(self, flow: Flow) -> dict[str, Any]:
        from bactrian.cli import main

        argv = self.argv(flow)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the run's own summary
            code = main(argv)
        if code:
            raise RunError(f"`bactrian {' '.join(argv)}` exited with {code}")
        return {"command": "bactrian " + " ".join(argv)}

    def output(self, flow: Flow) -> str | None:
        # The import is idempotent and lives in the studio's database, which this package does not read:
        # it is current once recorded for these inputs (--force studio imports again).
        return digest(self.inputs(flow))

    def plan(self, flow: Flow) -> StagePlan:
        return StagePlan([f"`bactrian {' '.join(self.argv(flow))}` (the leaderboard's benchmark rows); local"])


class Push(Stage):
    name = "push"

    def enabled(self, flow: Flow) -> bool:
        p = flow.run.push
        return p is not None and bool(p.dataset or p.adapter)

    def inputs(self, flow: Flow) -> dict[str, Any]:
        p = flow.run.push
        return {"push": asdict(p), "export": flow.outputs["export"] if p.dataset else None,
                "adapter": flow.outputs["train"] if p.adapter else None}

    def run(self, flow: Flow) -> dict[str, Any]:
        from pipelines.data.export import push as push_dataset
        from pipelines.train.output import push_to_hub

        p, out = flow.run.push, {}
        if p.dataset:
            push_dataset(p.dataset, flow.run.export_dir / "hub", private=p.private)
            out["dataset"] = p.dataset
        if p.adapter:
            out["adapter"] = p.adapter
            out["adapter_commit"] = push_to_hub(flow.run.train.adapter_dir, p.adapter, p.private)
        return out

    def output(self, flow: Flow) -> str | None:
        return digest(self.inputs(flow))  # uploads are checked by the Hub, not re-read here

    def plan(self, flow: Flow) -> StagePlan:
        p = flow.run.push
        lines = []
        if p.dataset:
            lines.append(f"dataset {flow.run.export_dir / 'hub'} -> hf.co/datasets/{p.dataset}")
        if p.adapter:
            lines.append(f"adapter {flow.run.train.adapter_dir} -> hf.co/{p.adapter}")
        lines.append(("private" if p.private else "public") + " repos; token from HF_TOKEN")
        return StagePlan(lines)


PUBLISH_STAGES = (Studio(), Push())
