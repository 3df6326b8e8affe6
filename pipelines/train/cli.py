"""``bactrian train RECIPE [RECIPE ...] [--resume] [--set section.key=value ...]``.

The same entry point runs on one process, under ``torchrun`` and under ``accelerate launch``
(``-m bactrian.cli train ...``). Several recipes train one after another; all are read and checked first.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train LoRA adapters from YAML recipes",
        description="Train LoRA adapters (peft + accelerate) from YAML recipes; see recipes/README.md.",
    )
    p.add_argument("recipes", nargs="+", metavar="RECIPE", help="YAML recipe file(s), trained in order")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set train.max_steps=20 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.set_defaults(func=run)


def rebuild_command(recipe_path: str, overrides: list[str]) -> str:
    """The command that trains this one recipe again, as recorded in the adapter's manifest."""
    parts = ["bactrian", "train", recipe_path]
    for o in overrides:
        parts += ["--set", o]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from bactrian.models import ModelError

    from .data import DataError
    from .recipe import RecipeError, load_recipe
    from .trainer import TrainError, train

    try:
        recipes = [(path, load_recipe(path, args.overrides)) for path in args.recipes]
        names = [r.name for _, r in recipes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise RecipeError(f"several recipes share the name {', '.join(dupes)}; their outputs would collide")
        for path, recipe in recipes:
            summary = train(recipe, resume=args.resume, command=rebuild_command(path, args.overrides),
                            progress=not args.no_progress)
            if summary.get("adapter_dir"):
                ev = summary.get("eval_loss")
                print(f"{recipe.name}: {summary['steps']} steps, train loss {summary['train_loss']:.4f}"
                      + (f", eval loss {ev:.4f}" if ev is not None else "") + f" -> {summary['adapter_dir']}")
    except (RecipeError, DataError, TrainError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
