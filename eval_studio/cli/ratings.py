"""``bactrian studio ratings | agreement | report``: ``register(studio_subparsers)`` adds the three sub-commands.

Battles come from the studio database (``--db URL``) or a JSONL file of battle rows (``--battles FILE``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

from eval_studio.battle_table import (
    BOTH_BAD_MODES,
    KINDS,
    TIE_MODES,
    blended_judge_prompts,
    filter_battles,
    read_battles_jsonl,
)


def register(studio_subparsers: Any) -> None:
    p = studio_subparsers.add_parser("ratings", help="leaderboard ratings (Bradley-Terry or Elo) with bootstrap CIs")
    _common(p)
    p.add_argument("--by", choices=["language", "category"], help="one leaderboard per language or category")
    p.add_argument("--style-control", action="store_true",
                   help="Arena's style control: Bradley-Terry with answer length and markdown counts (headers, "
                        "lists, bold) as covariates, beside the raw fit of the same battles (no prior)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_ratings)

    p = studio_subparsers.add_parser("agreement", help="annotator kappas, human-judge agreement, position consistency")
    _common(p)
    p.add_argument("--by", choices=["language", "category"],
                   help="also human-judge agreement per language or category (a table)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_agreement)

    p = studio_subparsers.add_parser("report", help="write one standalone HTML report with every chart")
    _common(p)
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--title", default="Bactrian-X Studio leaderboard")
    p.add_argument("--bench", action="append", default=[], metavar="FILE.json",
                   help="`bactrian bench` results to show (repeatable); default with --db: the ingested ones")
    p.set_defaults(func=_report)


def _common(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--db", metavar="URL", help="studio database URL (default: $BACTRIAN_STUDIO_DB or "
                                                 "sqlite:///$BACTRIAN_HOME/studio.db)")
    src.add_argument("--battles", metavar="FILE.jsonl", help="a JSONL file of battle rows")
    f = p.add_argument_group("filters")
    f.add_argument("--language", help="comma-separated language codes")
    f.add_argument("--group", choices=["G1", "G2", "G3", "G4"], help="the paper's language group")
    f.add_argument("--category", help="comma-separated question categories")
    f.add_argument("--source", choices=["human", "judge", "both"], default="both")
    f.add_argument("--annotator", help="comma-separated annotator / judge names")
    f.add_argument("--kind", help=f"comma-separated kinds of evidence: {', '.join(KINDS)} (default: all)")
    f.add_argument("--judge-prompt", help="comma-separated judge prompts whose verdicts count (ratings and the "
                                          "report need one per judge model)")
    f.add_argument("--since", help="first date (UTC), e.g. 2024-05-01")
    f.add_argument("--until", help="last date (UTC, inclusive)")
    o = p.add_argument_group("rating options")
    o.add_argument("--method", choices=["bt", "elo"], default="bt", help="Bradley-Terry (default) or online Elo")
    o.add_argument("--rounds", type=int, default=100, help="bootstrap rounds (default 100)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--ties", choices=TIE_MODES, default="half", help="a tie is half a win each, or dropped")
    o.add_argument("--both-bad", choices=BOTH_BAD_MODES, default="tie", help="'both bad' counts as a tie, or dropped")
    o.add_argument("--prior", type=float, default=None, metavar="GAMES",
                   help="Bradley-Terry prior: virtual tie games of each model against an anchor rated 1000 "
                        "(default: eval_studio.analysis.ratings.PRIOR_GAMES = 2; 0 = unregularised, as FastChat)")
    o.add_argument("--min-battles", type=int, default=None, metavar="N",
                   help="models with fewer battles are marked provisional (default: ratings.MIN_BATTLES = 10)")


def _load(args: argparse.Namespace, judge_calls: bool = False) -> pd.DataFrame:
    """The filtered battle table; ``judge_calls``: the judges' per-call rows (both orders) from the store instead."""
    if args.battles:
        df = read_battles_jsonl(args.battles)
    else:
        from eval_studio.store.battles import load_battles  # the store is only needed with a database
        from eval_studio.store.db import default_url

        url = args.db or default_url()
        df = load_battles(url, source="judge", merge_orders=False) if judge_calls else load_battles(url)
    return filter_battles(df, language=args.language, group=args.group, category=args.category, source=args.source,
                          annotator=args.annotator, since=args.since, until=args.until, kind=args.kind,
                          judge_prompt=args.judge_prompt)


def _one_prompt_per_judge(df: pd.DataFrame) -> None:
    """Ratings count each judge verdict as a battle: one pair judged under two prompts must not count twice."""
    blended = blended_judge_prompts(df)
    if blended:
        which = "; ".join(f"{j}: {', '.join(p)}" for j, p in sorted(blended.items()))
        raise ValueError(f"judge verdicts from several judge prompts ({which}) would count each pair more than "
                         "once: choose one with --judge-prompt (or --source human)")


def _filters_text(args: argparse.Namespace) -> str:
    names = ("language", "group", "category", "annotator", "kind", "judge_prompt", "since", "until")
    parts = [f"{n}={getattr(args, n)}" for n in names if getattr(args, n)]
    if args.source != "both":
        parts.append(f"source={args.source}")
    return ", ".join(parts)


def _run(fn: Any, args: argparse.Namespace) -> int:
    if args.rounds < 0:
        print("error: --rounds must be 0 or more", file=sys.stderr)
        return 2
    try:
        return fn(args, _load(args))
    except (OSError, ValueError, TypeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a database that cannot be opened or read is bad input too, not a crash
        if not type(e).__module__.startswith("sqlalchemy"):
            raise
        print(f"error: cannot read the studio database: {e}", file=sys.stderr)
        return 2


def _records(table: pd.DataFrame) -> list[dict]:
    return json.loads(table.to_json(orient="records"))  # NaN -> null


def _rating_kwargs(args: argparse.Namespace) -> dict:
    return {"method": args.method, "rounds": args.rounds, "seed": args.seed, "ties": args.ties, "both_bad": args.both_bad,
            **{k: v for k, v in (("prior", args.prior), ("min_battles", args.min_battles)) if v is not None}}


def _ratings(args: argparse.Namespace) -> int:
    def body(args: argparse.Namespace, df: pd.DataFrame) -> int:
        from eval_studio.analysis.ratings import compute_ratings, ratings_by

        _one_prompt_per_judge(df)
        head = {"method": args.method, "rounds": args.rounds, "seed": args.seed, "battles": len(df), "by": args.by}
        if args.style_control:
            return _style_control(args, df, head)
        if args.by:
            table = ratings_by(df, args.by, **_rating_kwargs(args))
            groups = {str(k): _records(g.drop(columns=[args.by])) for k, g in table.groupby(args.by, sort=True)}
            out = {**head, "ratings": groups}
        else:
            table = compute_ratings(df, **_rating_kwargs(args))
            out = {**head, "ratings": _records(table)}
        if args.json:
            print(json.dumps(out, ensure_ascii=False, indent=2))
        elif table.empty:
            print("no battles match")
        else:
            print(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
        return 0

    return _run(body, args)


def _style_control(args: argparse.Namespace, df: pd.DataFrame, head: dict) -> int:
    from eval_studio.analysis.style_control import style_control

    groups = dict(df.groupby(df[args.by].fillna("(none)"), sort=True)) if args.by else {None: df}
    kw = {"rounds": args.rounds, "seed": args.seed, "ties": args.ties, "both_bad": args.both_bad}
    tables = {k: style_control(g, **kw) for k, g in groups.items()}
    if args.json:
        body = {str(k): {"ratings": _records(t), "coefficients": t.attrs["coefficients"]} for k, t in tables.items()}
        out = {**head, "method": "style-control", **(body[str(None)] if not args.by else {"ratings": body})}
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    for key, table in tables.items():
        if args.by:
            print(f"{args.by} {key}:")
        if table.empty:
            print("no battles match")
            continue
        print(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
        coefs = ", ".join(f"{k} {v:+.3f}" for k, v in table.attrs["coefficients"].items()) or "none"
        print(f"style coefficients (log-odds per standard deviation): {coefs}")
    return 0


def _agreement(args: argparse.Namespace) -> int:
    def body(args: argparse.Namespace, df: pd.DataFrame) -> int:
        from eval_studio.analysis.agreement import agreement_summary
        from eval_studio.analysis.report import json_safe

        both_bad = "tie" if args.both_bad == "tie" else "keep"
        calls = None if args.battles else _load(args, judge_calls=True)  # file rows are per call already
        out = json_safe(agreement_summary(df, both_bad=both_bad, calls=calls))
        by_table = None
        if args.by:
            from eval_studio.analysis.agreement import human_judge_by

            by_table = human_judge_by(df, args.by, both_bad)
            out[f"human_judge_by_{args.by}"] = _records(by_table)
        for warning in out["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        if args.json:
            print(json.dumps(out, ensure_ascii=False, indent=2))
            return 0
        print("Cohen's kappa (human annotator pairs):")
        for pair, v in out["cohen_kappa"].items():
            print(f"  {pair.replace('|', ' vs ')}: {_num(v['kappa'])} over {v['n_items']} items")
        fk = out["fleiss_kappa"]
        print(f"Fleiss' kappa: {_num(fk['kappa'])} ({fk['n_items']} items with {fk['raters_per_item']} labels)")
        for key, name in (("human_judge_agreement", "human-judge"), ("human_human_agreement", "human-human")):
            a = out[key]
            print(f"{name} agreement: with ties {_num(a['with_ties'])} (n={a['n_with_ties']}), "
                  f"without ties {_num(a['without_ties'])} (n={a['n_without_ties']})")
        pc = out["position_consistency"]
        print(f"judge position consistency: {_num(pc['consistency'])} over {pc['n_pairs']} both-order pairs "
              f"(biased to first {_num(pc['biased_to_first'])}, to second {_num(pc['biased_to_second'])})")
        raters = out["human_judge_agreement"]["by_judge"]
        if len(raters) > 1:  # each (judge model, prompt) is its own rater
            for name, a in raters.items():
                print(f"  {name}: human-judge with ties {_num(a['with_ties'])} (n={a['n_with_ties']}), "
                      f"consistency {_num(out['position_consistency']['by_judge'].get(name, {}).get('consistency'))}")
        if by_table is not None:
            print(f"human-judge agreement per {args.by}:")
            print(by_table.to_string(index=False, float_format=lambda x: f"{x:.3f}") if len(by_table)
                  else "  no item has both a judge verdict and a human vote")
        return 0

    return _run(body, args)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _report(args: argparse.Namespace) -> int:
    def body(args: argparse.Namespace, df: pd.DataFrame) -> int:
        from eval_studio.analysis.report import write_report

        from eval_studio.store.bench import bench_file_rows, list_bench

        _one_prompt_per_judge(df)
        calls = None if args.battles else _load(args, judge_calls=True)  # per-call rows: position consistency
        if args.bench:
            bench = [row for path in args.bench for row in bench_file_rows(path)]
        elif not args.battles:  # benchmark results live in the database (bactrian studio import-bench)
            from eval_studio.store.db import default_url

            bench = list_bench(args.db or default_url())
        else:
            bench = None
        path = write_report(df, args.out, title=args.title, filters=_filters_text(args), bench=bench, calls=calls,
                            **_rating_kwargs(args))
        print(f"wrote {path} ({len(df)} battles" + (f", {len(bench)} benchmark metrics" if bench else "") + ")")
        return 0

    return _run(body, args)
