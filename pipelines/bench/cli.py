"""``bactrian bench``: zero-shot XCOPA / XStoryCloze / XWinograd / SentimentX through lm-evaluation-harness."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench", help="zero-shot benchmarks (XCOPA, XStoryCloze, XWinograd, SentimentX) via lm-eval",
        description="Evaluate a base model, with or without a LoRA adapter, on the paper's zero-shot benchmarks.",
    )
    p.add_argument("--model", default="gemma-3-270m", help="embedded base name, local model folder or Hub id")
    p.add_argument("--adapter", help="adapter folder, adapter name (the shipped demo adapters, $BACTRIAN_HOME/adapters) or Hub id")
    p.add_argument("--adapters-dir", action="append", default=[], help="another folder of adapters (repeatable)")
    p.add_argument("--tasks", default="xcopa,xstorycloze,xwinograd", help="comma list of xcopa,xstorycloze,xwinograd,sentimentx")
    p.add_argument("--languages", help="comma list of language codes (default: all a task has)")
    p.add_argument("--source", choices=("local", "hub"), default="local",
                   help="local files under --data-root (default) or the Hugging Face Hub datasets")
    p.add_argument("--data-root", help="folder with xcopa/, xwinograd/, xstorycloze/ (e.g. ../shared/data/benchmarks)")
    p.add_argument("--sentimentx-file", help="3-way sentiment file (.jsonl/.csv/.tsv: text, label, language)")
    p.add_argument("--limit", type=int, help="at most N examples per language (default: the full test set)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto",
                   help="auto (CUDA, else Apple mps, else CPU), cpu, cuda, cuda:N or mps (default: %(default)s)")
    p.add_argument("--dtype", default="auto",
                   help="auto (bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU/mps), "
                        "float32, bfloat16 or float16 (default: %(default)s)")
    p.add_argument("--cache-dir", help="lm-eval response cache folder (default: $BACTRIAN_HOME/bench/cache)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--out", help="write the results JSON here")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .catalog import BenchError
    from .loaders import BenchDataError
    from .results import language_table, table4
    from .runner import BenchRequest, evaluate, plan

    if args.out and Path(args.out).exists() and not args.force:
        print(f"error: {args.out} exists (pass --force to overwrite)", file=sys.stderr)
        return 2
    request = BenchRequest(
        model=args.model, adapter=args.adapter, tasks=args.tasks, languages=args.languages, source=args.source,
        data_root=args.data_root, sentimentx_file=args.sentimentx_file, limit=args.limit, batch_size=args.batch_size,
        cache_dir="" if args.no_cache else args.cache_dir, device=args.device, dtype=args.dtype, adapters_dirs=tuple(args.adapters_dir),
    )
    try:
        checked = plan(request)  # every input checked before the model loads
        result = evaluate(checked)
    except (BenchError, BenchDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(language_table(result))
    print()
    print(table4([result]))
    if args.out:
        print(f"\nwrote {result.write(args.out)}")
    return 0
