"""``bactrian data run|translate|respond|filter|report|export|estimate RECIPE``."""

from __future__ import annotations

import argparse
import json
import sys

from .recipe import RecipeError, load_recipe, parse_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="build the multilingual instruction dataset (translate, respond, filter, export)")
    steps = p.add_subparsers(dest="data_command", metavar="STEP", required=True)
    helps = {
        "run": "every step in order (translate, respond, filter, report, export)",
        "translate": "translate instructions and inputs (resumable)",
        "respond": "generate responses (resumable; --dry-run prints the estimate only)",
        "filter": "language id, refusals, length outliers, duplicates",
        "report": "per-language JSON + HTML report",
        "export": "DatasetDict per language, parquet, dataset card, optional push_to_hub",
        "estimate": "dry run: calls, tokens and dollars still to spend",
    }
    for name, text in helps.items():
        sp = steps.add_parser(name, help=text)
        sp.add_argument("recipe", help="YAML recipe (see recipes/data/)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set respond.base_url=http://127.0.0.1:8000/v1")
        sp.add_argument("--output", help="output folder (overrides the recipe's)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        if name in ("run", "respond"):
            sp.add_argument("--dry-run", action="store_true", help="print the estimate and stop")
        if name == "run":
            sp.add_argument("--yes", action="store_true", help="do not ask before spending (non-interactive runs)")
        sp.set_defaults(func=run, step=name)
    sp = steps.add_parser("translate-questions", help="translate a question set (Vicuna-80 or any JSONL with id, "
                          "category, question) into the recipe's languages, ids and categories aligned (resumable)")
    sp.add_argument("recipe", help="YAML question-set recipe (see recipes/questions/)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe value, e.g. --set translate.base_url=http://127.0.0.1:8000/v1")
    sp.add_argument("--output", help="output folder (overrides the recipe's)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")
    sp.add_argument("--dry-run", action="store_true", help="print what would be translated and stop")
    sp.set_defaults(func=run_questions)


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run_questions(args: argparse.Namespace) -> int:
    from .limits import PermanentError
    from .questions import load_question_recipe, plan, translate_questions

    try:
        overrides = parse_overrides(args.set)
        if args.output:
            overrides["output"] = args.output
        recipe = load_question_recipe(args.recipe, overrides)
        print(json.dumps({"plan": plan(recipe)}, ensure_ascii=False))
        if args.dry_run:
            return 0
        result = translate_questions(recipe, progress=not args.no_progress)
    except (RecipeError, PermanentError, OSError, ValueError) as e:
        return _err(str(e))
    print(json.dumps(result, ensure_ascii=False))
    if result["failed"]:
        print(f"error: {result['failed']} translation(s) failed ({'; '.join(result['errors'])}); rerun the same "
              "command to retry only those", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from .ledger import format_estimate
    from .limits import PermanentError
    from .pipeline import STEPS, dry_run, open_run, run_steps

    try:
        overrides = parse_overrides(args.set)
        if args.output:
            overrides["output"] = args.output
        recipe = load_recipe(args.recipe, overrides)
    except RecipeError as e:
        return _err(str(e))
    try:
        ctx = open_run(recipe, progress=not args.no_progress)
    except (OSError, ValueError) as e:
        return _err(str(e))
    try:
        if args.step == "estimate" or getattr(args, "dry_run", False):
            print(format_estimate(dry_run(ctx)))
            return 0
        if args.step == "run" and sys.stdin.isatty() and not args.yes:
            print(format_estimate(dry_run(ctx)))
            if input("go on? [y/N] ").strip().lower() not in ("y", "yes"):
                return 1
        steps = STEPS if args.step == "run" else (args.step,)
        results = run_steps(ctx, steps, log=lambda s: print(s, file=sys.stderr))
    except PermanentError as e:
        return _err(str(e))
    finally:
        ctx.store.close()
    failed = sum(results.get(s, {}).get("failed", 0) for s in ("translate", "respond"))
    print(json.dumps({"output": str(recipe.out), **{k: v for k, v in results.items() if k == "export"}}))
    if failed:
        print(f"error: {failed} item(s) failed (see the failures table in {recipe.out / 'work.db'}); "
              "rerun the same command to retry only those", file=sys.stderr)
        return 1
    return 0
