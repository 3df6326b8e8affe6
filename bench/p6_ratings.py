"""P6: Bradley-Terry + bootstrap CIs on 100K battles — this project vs FastChat, same battles, same numbers?

Compared with two FastChat references (faithful ports in tests/ratings_fastchat_ref.py, citing their sources):
- "FastChat rating_systems" (current Arena code @ 2bdb2e0c: scipy L-BFGS, multinomial bootstrap, process pool),
  seeded like ours, so its bootstrap draws are the very same samples;
- "fschat 0.2.36" (the PyPI release: sklearn LogisticRegression with penalty=None, pandas resampling). It is
  slow, so it runs ``--legacy-rounds`` rounds and its 100-round time is extrapolated (marked "est.").

Run: ``python bench/p6_ratings.py [--battles 100000] [--rounds 100] [--legacy-rounds 5]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from eval_studio.analysis import ratings
from tests.synthetic import synthetic_battles
from tests import ratings_fastchat_ref as fc


def spread(a, b) -> float:
    """Max |a - b| over models after removing the common offset."""
    d = (a - b.reindex(a.index)).to_numpy()
    return float(np.max(np.abs(d - d.mean())))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--battles", type=int, default=100_000)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--legacy-rounds", type=int, default=5, help="fschat 0.2.36 rounds actually run (0 = skip)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    args = ap.parse_args()

    strengths = {f"model-{i}": 1000.0 + 50.0 * (i - args.models / 2) for i in range(args.models)}
    df = synthetic_battles(strengths, args.battles, seed=7)
    fdf = fc.to_fastchat(df)
    rows = []

    t = time.perf_counter()
    ours = ratings.compute_ratings(df, rounds=args.rounds, seed=0, prior=0.0).set_index("model")  # FastChat's: no prior
    t_ours = time.perf_counter() - t
    rows.append(("bactrian (this project)", t_ours, "", 0.0, 0.0))

    t = time.perf_counter()
    cur_point = fc.compute_bt(fdf)
    cur_boot = fc.compute_bootstrap_bt(fdf, args.rounds, num_cpu=args.cpus)
    t_cur = time.perf_counter() - t
    ci_cur = max(float(np.max(np.abs(ours["lower"] - cur_boot.quantile(0.025).reindex(ours.index)))),
                 float(np.max(np.abs(ours["upper"] - cur_boot.quantile(0.975).reindex(ours.index)))))
    rows.append(("FastChat rating_systems", t_cur, "", spread(ours["rating"], cur_point), ci_cur))

    if args.legacy_rounds:
        t = time.perf_counter()
        old_point = fc.compute_elo_mle_with_tie(fdf, penalty=None)
        t_fit = time.perf_counter() - t
        t = time.perf_counter()
        old_boot = fc.get_bootstrap_result(fdf, lambda b: fc.compute_elo_mle_with_tie(b, penalty=None),
                                           args.legacy_rounds)
        t_boot = time.perf_counter() - t
        est = t_fit + t_boot * args.rounds / args.legacy_rounds
        # its resamples are unseeded pandas draws (and few): CIs are not comparable, only the point fit
        rows.append(("fschat 0.2.36 (sklearn, penalty=None)", est, f"est. from {args.legacy_rounds} rounds",
                     spread(ours["rating"], old_point), float("nan")))
        assert len(old_boot) == args.legacy_rounds

    t = time.perf_counter()
    elo = ratings.online_elo(df)
    t_elo = time.perf_counter() - t
    t = time.perf_counter()
    elo_ref = fc.compute_elo(fdf)
    t_elo_ref = time.perf_counter() - t
    elo_diff = max(abs(elo[m] - elo_ref[m]) for m in elo_ref)

    print(f"P6: {args.battles} battles, {args.models} models, BT + {args.rounds} bootstrap rounds, "
          f"{args.cpus} CPU(s) for FastChat's pool")
    print(f"{'implementation':42s} {'time s':>9s} {'speed-up':>9s} {'max |d rating|':>15s} {'max |d CI|':>11s}  note")
    for name, secs, note, d_r, d_ci in rows:
        print(f"{name:42s} {secs:9.2f} {secs / t_ours:8.1f}x {d_r:15.4f} {d_ci:11.4f}  {note}")
    print("(speed-up = that implementation's time / ours; d = max difference to ours after removing the common "
          "offset; CIs compared only where the bootstrap draws are the same samples)")
    print(f"online Elo: ours {t_elo:.2f}s, fschat 0.2.36 compute_elo {t_elo_ref:.2f}s, max |difference| {elo_diff:.3g}")
    print(ours.round(1).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
