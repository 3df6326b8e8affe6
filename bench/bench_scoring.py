"""How much `bactrian bench`'s scorer saves over lm-eval's plain HFLM, and that it changes no number.

Both wrap the same loaded model (the embedded Gemma, optionally with an adapter) and run the same lm-eval tasks
with the cache off; every loglikelihood the two return is compared, and the accuracies per language too.
The plain HFLM projects every input position onto Gemma's 262K-token vocabulary; ContinuationScoringHFLM only the
trailing positions that are scored. Prints one table; the ratio comes from one run, the two passes back to back.

    python bench/bench_scoring.py --tasks xcopa,xstorycloze,xwinograd --limit 10
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "benchmarks"


def _captured(lm, sink: list) -> None:
    """Record what ``_loglikelihood_tokens`` returns, in lm-eval's order."""
    inner = lm._loglikelihood_tokens

    def wrapped(requests, **kw):
        out = inner(requests, **kw)
        sink.extend(out)
        return out

    lm._loglikelihood_tokens = wrapped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--adapter")
    ap.add_argument("--tasks", default="xcopa,xstorycloze,xwinograd")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--data-root", default=str(SHARED))
    args = ap.parse_args()
    if not Path(args.data_root).is_dir():
        print(f"error: benchmark data not found at {args.data_root}", file=sys.stderr)
        return 2

    from lm_eval.models.huggingface import HFLM

    from pipelines.bench.runner import BenchRequest, build_lm, evaluate, plan

    label = args.model + (f" + {args.adapter}" if args.adapter else "")
    print(f"scoring: {label}, limit {args.limit} per language, batch {args.batch_size}, {platform.machine()}")
    print("| task | requests | plain HFLM s | ContinuationScoringHFLM s | speed-up | identical (ll, greedy) "
          "| max abs diff | same accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    fast = plain = None
    failed = 0
    for task in args.tasks.split(","):
        p = plan(BenchRequest(model=args.model, adapter=args.adapter, tasks=task, data_root=args.data_root,
                              limit=args.limit, batch_size=args.batch_size, cache_dir=""))
        if fast is None:
            fast = build_lm(p)
            plain = HFLM(pretrained=fast.model, tokenizer=fast.tokenizer, batch_size=args.batch_size)
        scores: dict[str, list] = {"plain": [], "fast": []}
        seconds, accs = {}, {}
        for name, lm in (("fast", fast), ("plain", plain)):
            sink = scores[name]
            _captured(lm, sink)
            t0 = time.perf_counter()
            run = evaluate(p, lm=lm)
            seconds[name] = time.perf_counter() - t0
            accs[name] = {(r.task, r.language): r.value for r in run.records}
            del lm._loglikelihood_tokens  # back to the class method for the next task
        a, b = scores["fast"], scores["plain"]
        identical = sum(x == y for x, y in zip(a, b, strict=True))
        worst = max(abs(x[0] - y[0]) for x, y in zip(a, b, strict=True))
        same_acc = sum(accs["fast"][k] == accs["plain"][k] for k in accs["plain"])
        failed += same_acc != len(accs["plain"])
        print(f"| {task} | {len(b)} | {seconds['plain']:.1f} | {seconds['fast']:.1f} | "
              f"{seconds['plain'] / seconds['fast']:.2f}x | {identical}/{len(b)} | {worst:.2e} | "
              f"{same_acc}/{len(accs['plain'])} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
