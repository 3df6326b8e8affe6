"""``bactrian studio ...``: store maintenance, imports, exports and judging from the command line.

Other parts add their own sub-commands to the same ``studio`` parser through ``register(studio_sub)`` in the
modules listed in ``EXTENSIONS`` (ratings, the app's ``serve``), when those modules exist.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import os
import sys
from typing import Any

# (module, command shown if it is broken, what it adds): each module's ``register(studio_sub)`` adds its own
# sub-commands; one that fails to import (a missing extra) is listed as unavailable.
EXTENSIONS = (
    ("eval_studio.cli.ratings", "ratings", "ratings, agreement, report"),
    ("eval_studio.cli.protocol", "eval", "the paper's evaluation protocol: eval"),
)


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, metavar="URL",
                   help="SQLAlchemy URL (default: $BACTRIAN_DB, as the app, or sqlite:///$BACTRIAN_HOME/studio.db)")


def _skip_invalid(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-invalid", action="store_true",
                   help="import the valid lines and list the invalid ones (default: one invalid line refuses the file)")


def _engine(args: argparse.Namespace):  # noqa: ANN202
    from eval_studio.store.db import open_store

    return open_store(args.db)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from eval_studio.store.db import default_url
    from eval_studio.store.migrate import upgrade_to_head

    print(f"database at revision {upgrade_to_head(args.db or default_url())}")
    return 0


def cmd_import_pairs(args: argparse.Namespace) -> int:
    from eval_studio.io import import_pairs_file

    r = import_pairs_file(_engine(args), args.file, task=args.task, overlap=args.overlap, skip_invalid=args.skip_invalid)
    print(f"pairs: {r.added} added, {r.unchanged} already present; labels: {r.labels_added} added")
    _print_skipped(r.skipped)
    return 0


def _print_skipped(skipped: tuple[str, ...]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} invalid line(s):")
        for line in skipped:
            print(f"  {line}")


def cmd_import_answers(args: argparse.Namespace) -> int:
    from eval_studio.io.pairing import pairs_from_answer_files, pairs_from_examples
    from eval_studio.store.tasks import import_pairs

    if bool(args.examples) == bool(args.questions):
        return _fail("give either --questions with --answers, or --examples")
    if args.examples:
        pairs = pairs_from_examples(args.examples)
    else:
        if not args.answers:
            return _fail("--questions needs at least one --answers file")
        pairs = pairs_from_answer_files(args.questions, args.answers, language=args.language)
    r = import_pairs(_engine(args), pairs, task=args.task, overlap=args.overlap)
    print(f"pairs: {r.added} added, {r.unchanged} already present")
    return 0


def cmd_import_judgments(args: argparse.Namespace) -> int:
    from eval_studio.io.judgments import import_judgments_file

    if bool(args.questions) != bool(args.answers) and args.questions:
        return _fail("--questions needs the --answers files")
    r = import_judgments_file(_engine(args), args.file, args.format, task=args.task, questions=args.questions,
                              answer_files=args.answers, language=args.language, judge_model=args.judge_model,
                              judge_prompt=args.judge_prompt, skip_invalid=args.skip_invalid)
    print(f"judgments: {r.added} added, {r.unchanged} already present (judge verdicts, not human votes)")
    _print_skipped(r.skipped)
    return 0


def cmd_import_questions(args: argparse.Namespace) -> int:
    from eval_studio.io import import_question_file

    r = import_question_file(_engine(args), args.file, name=args.name, language=args.language)
    print(f"questions: {r.added} added, {r.unchanged} already present")
    return 0


def cmd_import_bench(args: argparse.Namespace) -> int:
    from eval_studio.store.bench import ingest_bench_file

    engine = _engine(args)
    for path in args.files:
        added, unchanged = ingest_bench_file(engine, path)
        print(f"{path}: {added} metrics added, {unchanged} already present")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from eval_studio.io import export

    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    for path in export(_engine(args), args.format, args.out, tables):
        print(path)
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from eval_studio.judge import JudgeConfig, judge_pairs

    config = JudgeConfig(
        prompt=args.prompt, model=args.model, base_url=args.base_url, api_key_env=args.api_key_env,
        temperature=args.temperature, max_tokens=args.max_tokens, concurrency=args.concurrency,
        use_cache=not args.no_cache, cache_errors=args.cache_errors, price_in=args.price_in, price_out=args.price_out,
    )

    def show(p: Any) -> None:
        if sys.stderr.isatty() or p.status != "running":
            print(f"\r[{p.status}] {p.done}/{p.total} calls, {p.errors} errors", end="\n" if p.status != "running" else "", file=sys.stderr)

    engine = _engine(args)
    task = args.task
    if args.source == "battles":  # the arena battles people voted on, copied as pairs into a task of their own
        from eval_studio.store.battle_pairs import BATTLE_TASK, copy_battles_to_task

        task = task or BATTLE_TASK
        copied = copy_battles_to_task(engine, task, language=args.language, voted_only=not args.all_battles)
        print(f"battles: {copied.added} copied into task {task!r}, {copied.unchanged} already there", file=sys.stderr)
    runner = judge_pairs(engine, config, task=task, language=args.language, limit=args.limit, on_progress=show)
    try:
        status = runner.join()
    except KeyboardInterrupt:  # join() cancelled the run: nothing more was sent, the calls in flight finished
        from eval_studio.store.judging import run_status

        status = run_status(engine, runner.run_id)
        print(f"run {status.id}: {status.status}: {status.message}")
        return 130
    print(f"run {status.id}: {status.status}: {status.message}")
    return 0 if status.status == "done" else 1


def cmd_add_user(args: argparse.Namespace) -> int:
    from eval_studio.auth import add_user

    password = os.environ.get(args.password_env) if args.password_env else getpass.getpass(f"password for {args.name}: ")
    if not password:
        return _fail("no password given" + (f" (${args.password_env} is empty)" if args.password_env else ""))
    add_user(args.users_file, args.name, password, args.role)
    print(f"{args.name} ({args.role}) written to {args.users_file}")
    return 0


def _run(func):  # noqa: ANN001, ANN202
    """Turn the store's and the importers' input errors into `error: ...` and exit code 1."""

    def wrapped(args: argparse.Namespace) -> int:
        from eval_studio.auth import AuthError
        from eval_studio.store.repo import StoreError

        try:
            return func(args)
        except (StoreError, AuthError, KeyError, ValueError, OSError) as e:
            return _fail(str(e).strip("'\""))

    return wrapped


def register(subparsers: Any) -> None:
    # what needs the studio extra is imported before any parser is added: a missing extra leaves nothing half-made
    from eval_studio.io.exports import FORMATS, TABLES
    from eval_studio.io.judgments import FORMATS as JUDGMENT_FORMATS
    from eval_studio.judge.prompts import prompt_names

    studio = subparsers.add_parser("studio", help="evaluation studio: store, imports, exports, LLM judges")
    sub = studio.add_subparsers(dest="studio_command", metavar="STUDIO_COMMAND")
    studio.set_defaults(func=lambda _a: (studio.print_help(), 2)[1])

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    _db(p)
    p.set_defaults(func=_run(cmd_migrate))

    p = sub.add_parser("import-pairs", help="import answer pairs (JSONL: id, question, answer_a, answer_b, model_a, model_b, language, category, labels?)")
    p.add_argument("file")
    p.add_argument("--task", default=None, help="annotation task (default: each row's task, else 'default')")
    p.add_argument("--overlap", type=int, default=None, help="k: annotators per pair for the task")
    _skip_invalid(p)
    _db(p)
    p.set_defaults(func=_run(cmd_import_pairs))

    p = sub.add_parser("import-answers", help="make pairs from model answers (Vicuna-80 answer files, or the Bactrian-X examples) and import them")
    p.add_argument("--questions", help="Vicuna-style question file")
    p.add_argument("--answers", nargs="+", default=[], help="answer files {question_id, model_id, text}, one per model")
    p.add_argument("--examples", help="the Bactrian-X examples file (one column per model)")
    p.add_argument("--language", default="en", help="language of --questions (default: en)")
    p.add_argument("--task", default=None)
    p.add_argument("--overlap", type=int, default=None)
    _db(p)
    p.set_defaults(func=_run(cmd_import_answers))

    p = sub.add_parser("import-judgments", help="import published judge outputs (FastChat GPT-4 reviews, MT-bench "
                       "judgments) as judge verdicts with scores, never as human votes")
    p.add_argument("file")
    p.add_argument("--format", choices=JUDGMENT_FORMATS, default=None, help="default: recognised from the first row")
    p.add_argument("--questions", help="question file (Vicuna-80 or MT-bench): with --answers, the pairs are made and imported first")
    p.add_argument("--answers", nargs="+", default=[], help="answer files, one per model (FastChat answer_*.jsonl, MT-bench "
                   "model_answer/*.jsonl); fastchat-review needs them (reviews name answers by id)")
    p.add_argument("--language", default="en", help="language of --questions (default: en)")
    p.add_argument("--task", default=None, help="the pairs' task (default: new pairs go to 'default'; judgments match pairs in every task)")
    p.add_argument("--judge-model", default=None, help="record this judge model (default: the file's reviewer_id / judge)")
    p.add_argument("--judge-prompt", default=None, help="record this prompt name (default: the file's, or fastchat-review)")
    _skip_invalid(p)
    _db(p)
    p.set_defaults(func=_run(cmd_import_judgments))

    p = sub.add_parser("import-questions", help="import a question set (Vicuna-80, LLMZoo 10-language, MT-bench, Bactrian-X examples, own)")
    p.add_argument("file")
    p.add_argument("--name", default=None, help="question set name (default: the file name)")
    p.add_argument("--language", default=None, help="language of the questions when the file does not say")
    _db(p)
    p.set_defaults(func=_run(cmd_import_questions))

    p = sub.add_parser("import-bench", help="ingest `bactrian bench` results JSON files")
    p.add_argument("files", nargs="+")
    _db(p)
    p.set_defaults(func=_run(cmd_import_bench))

    p = sub.add_parser("export", help="export votes, judgments, conversations and pairs")
    p.add_argument("--format", choices=FORMATS, default="jsonl")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated subset of {','.join(TABLES)}")
    _db(p)
    p.set_defaults(func=_run(cmd_export))

    p = sub.add_parser("judge", help="judge stored pairs with an LLM through an OpenAI-compatible endpoint")
    p.add_argument("--prompt", choices=prompt_names(), default="bactrian-x")
    p.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1 (bactrian serve)")
    p.add_argument("--model", required=True)
    p.add_argument("--api-key-env", default=None, metavar="VAR", help="environment variable with the API key (default: OPENAI_API_KEY for api.openai.com, none otherwise)")
    p.add_argument("--source", choices=("pairs", "battles"), default="pairs",
                   help="pairs: the stored annotation pairs (default); battles: the arena battles people voted on, "
                        "copied as pairs into --task (default 'arena-battles') so human-judge agreement covers them")
    p.add_argument("--all-battles", action="store_true", help="with --source battles: also battles nobody voted on")
    p.add_argument("--task", default=None)
    p.add_argument("--language", default=None)
    p.add_argument("--limit", type=int, default=None, help="judge at most this many pairs")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--no-cache", action="store_true", help="always call the endpoint")
    p.add_argument("--cache-errors", action="store_true",
                   help="also cache (and replay) outputs that do not parse (default: such calls are asked again)")
    p.add_argument("--price-in", type=float, default=None, help="USD per 1M prompt tokens (ledger)")
    p.add_argument("--price-out", type=float, default=None, help="USD per 1M completion tokens (ledger)")
    _db(p)
    p.set_defaults(func=_run(cmd_judge))

    p = sub.add_parser("add-user", help="add an annotator/admin to a users file (stores a scrypt hash only)")
    p.add_argument("name")
    p.add_argument("--users-file", required=True)
    p.add_argument("--role", choices=("annotator", "admin"), default="annotator")
    p.add_argument("--password-env", default=None, metavar="VAR", help="read the password from this variable instead of a prompt")
    p.set_defaults(func=_run(cmd_add_user))

    for module, name, what in EXTENSIONS:
        _extend(sub, module, name, what)


def _extend(sub: Any, module: str, name: str, what: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module or (e.name and module.startswith(e.name + ".")):
            return  # that part is not there (yet)
        _unavailable(sub, module, name, what, e)
        return
    except ImportError as e:
        _unavailable(sub, module, name, what, e)
        return
    mod.register(sub)


def _unavailable(sub: Any, module: str, name: str, what: str, err: Exception) -> None:
    p = sub.add_parser(name, help=f"({what}: unavailable: {err})")
    p.set_defaults(func=lambda _a: _fail(f"{module} is unavailable: {err}"))
