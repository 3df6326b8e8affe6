"""``bactrian run RECIPE``: raw sources -> translate -> respond -> filter -> report -> export -> train -> bench ->
studio import (-> Hub push), one resumable command; ``--dry-run`` prints every stage's plan and cost."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .recipe import STAGES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="the whole flow, resumable: data -> adapter -> benchmarks -> studio (-> Hub)",
        description="Run every stage of a run recipe (recipes/run/) that is not current; a rerun after a crash or "
                    "kill continues where it stopped.")
    p.add_argument("recipe", help="YAML run recipe (see recipes/run/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value: data.respond.base_url=..., train.train.max_steps=20, bench.limit=50")
    p.add_argument("--dry-run", action="store_true", help="print each stage's status, plan and cost, then stop")
    p.add_argument("--yes", action="store_true", help="do not ask before spending (non-interactive runs)")
    p.add_argument("--force", action="append", default=[], choices=STAGES, metavar="STAGE",
                   help="redo this stage even when it is current (repeatable)")
    p.add_argument("--until", choices=STAGES, metavar="STAGE", help="stop after this stage")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from bactrian.models import ModelError
    from pipelines.bench.catalog import BenchError
    from pipelines.data.limits import PermanentError
    from pipelines.data.recipe import RecipeError, parse_overrides
    from pipelines.train.data import DataError
    from pipelines.train.trainer import TrainError

    from .recipe import RunError, load_run
    from .runner import execute, plan

    try:
        recipe = load_run(args.recipe, parse_overrides(args.set))
        force, until = tuple(args.force), args.until
        if args.dry_run:
            print(plan(recipe, force=force, until=until))
            return 0
        if sys.stdin.isatty() and not args.yes:
            print(plan(recipe, force=force, until=until))
            if input("go on? [y/N] ").strip().lower() not in ("y", "yes"):
                return 1
        result = execute(recipe, force=force, until=until, progress=not args.no_progress,
                         log=lambda s: print(s, file=sys.stderr, flush=True))
    except (RecipeError, RunError, PermanentError, DataError, TrainError, BenchError, ModelError, OSError) as e:
        return _err(str(e))
    print(json.dumps(result))
    return 0
