"""``bactrian studio eval RECIPE``: the paper's evaluation protocol (``eval_studio.protocol``) from the command line.

Prints each step's counts as it finishes, then the paper's views: average judge score per model overall, per
language and per category, and win / tie / loss per language.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(studio_subparsers: Any) -> None:
    from eval_studio.protocol import STEPS

    p = studio_subparsers.add_parser(
        "eval", help="the paper's evaluation: answers from several variants over a question set, every pair judged "
                     "in both orders (Bactrian-X 0-10 prompt), wins and scores per language and category")
    p.add_argument("recipe", help="YAML recipe (see recipes/eval/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set judge.base_url=http://127.0.0.1:8000/v1")
    p.add_argument("--until", choices=STEPS, default="views", help="stop after this step (default: views)")
    p.add_argument("--db", default=None, metavar="URL", help="studio database (default: the recipe's db, else the studio's)")
    p.add_argument("--json", action="store_true", help="print the views as JSON")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from bactrian.recipes import RecipeError

    from eval_studio.protocol import load_protocol_recipe, run_protocol
    from eval_studio.store.db import open_store
    from eval_studio.store.repo import StoreError

    try:
        recipe = load_protocol_recipe(args.recipe, args.set)
        db = open_store(args.db or recipe.db)
        t0 = time.monotonic()

        def show(step: str, result: dict[str, Any]) -> None:
            print(f"{step}: {json.dumps(result, ensure_ascii=False)}", file=sys.stderr)

        results = run_protocol(recipe, db, until=args.until, log_step=show)
    except (RecipeError, StoreError, OSError, ValueError, KeyError) as e:
        print(f"error: {str(e).strip(chr(39))}", file=sys.stderr)
        return 2
    print(f"{recipe.name}: {', '.join(results)} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if "views" in results:
        _print_views(recipe, db, args.json)
    judge = results.get("judge")
    failed = results.get("answers", {}).get("failed", 0)
    return 0 if failed == 0 and (judge is None or judge["status"] == "done") else 1


def _print_views(recipe: Any, db: Any, as_json: bool) -> None:
    from eval_studio.analysis.paper_views import paper_tables, pivot
    from eval_studio.protocol import judged_battles

    tables = paper_tables(judged_battles(recipe, db))
    if as_json:
        print(json.dumps({k: json.loads(t.to_json(orient="records")) for k, t in tables.items()},
                         ensure_ascii=False, indent=1))
        return
    fmt = {"float_format": lambda x: f"{x:.2f}"}
    if tables["score_averages"].empty:
        print("no judge verdicts yet (every call failed or did not parse?)")
        return
    print("average judge score (0-10):\n" + tables["score_averages"].to_string(index=False, **fmt))
    for by in ("language", "category"):
        wide = pivot(tables[f"scores_by_{by}"], by, "mean_score")
        print(f"\naverage score per {by}:\n" + wide.to_string(**fmt))
    wins = tables["wins_by_language"]
    print("\nwin / tie / loss per language:\n" + wins.to_string(index=False))
