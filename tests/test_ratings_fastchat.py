"""Ratings equal FastChat's on the same battles (BT < 1 point after the common offset, online Elo identical)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval_studio.analysis import ratings
from tests.synthetic import synthetic_battles
from tests import ratings_fastchat_ref as fc

STRENGTHS = {"alpaca": 900.0, "bloom": 950.0, "bloomz": 1010.0, "bx-bloom": 1040.0, "bx-llama": 1090.0,
             "chatgpt": 1200.0}


@pytest.fixture(scope="module")
def battles() -> pd.DataFrame:
    return synthetic_battles(STRENGTHS, 4000, seed=3, tie_rate=0.15, both_bad_rate=0.05)


def _centred_diff(a: pd.Series, b: pd.Series) -> float:
    d = (a - b.reindex(a.index)).to_numpy()
    assert not np.isnan(d).any()
    return float(np.max(np.abs(d - d.mean())))


def test_bt_equals_fschat_0_2_36_unregularised(battles):
    ref = fc.compute_elo_mle_with_tie(fc.to_fastchat(battles), penalty=None)
    ours = ratings.bradley_terry(battles)
    assert _centred_diff(ours, ref) < 1.0
    assert list(ours.index) == list(ref.index)


def test_bt_equals_fastchat_rating_systems(battles):
    ref = fc.compute_bt(fc.to_fastchat(battles))
    ours = ratings.bradley_terry(battles)
    assert _centred_diff(ours, ref) < 0.01
    assert abs(ours.mean() - 1000.0) < 1e-6  # same centring as FastChat: mean rating = init


def test_small_set_unregularised_equal_regularised_not():
    """On few battles the 1-point check has teeth: sklearn's default L2 penalty misses it, penalty=None meets it."""
    small = synthetic_battles(STRENGTHS, 150, seed=4)
    l2 = fc.compute_elo_mle_with_tie(fc.to_fastchat(small), penalty="l2")
    none = fc.compute_elo_mle_with_tie(fc.to_fastchat(small), penalty=None)
    ours = ratings.bradley_terry(small)
    assert _centred_diff(ours, none) < 1.0
    assert _centred_diff(ours, l2) > 1.0


def test_bootstrap_matches_fastchat_draw_for_draw(battles):
    ours = ratings.bootstrap_bt(battles, 20, seed=0)
    ref = fc.compute_bootstrap_bt(fc.to_fastchat(battles), 20, num_cpu=1)
    for q in (0.025, 0.5, 0.975):
        assert np.max(np.abs(ours.quantile(q) - ref.quantile(q).reindex(ours.columns))) < 0.01


def test_online_elo_identical_in_same_order(battles):
    ref = fc.compute_elo(fc.to_fastchat(battles))
    ours = ratings.online_elo(battles)
    assert set(ours.index) == set(ref)
    for m, r in ref.items():
        assert ours[m] == r  # same arithmetic, same order: bit-identical


def test_elo_depends_on_order_bt_does_not(battles):
    rev = battles.iloc[::-1].reset_index(drop=True)
    assert _centred_diff(ratings.bradley_terry(battles), ratings.bradley_terry(rev)) < 1e-3
    assert _centred_diff(ratings.online_elo(battles), ratings.online_elo(rev)) > 0.1


def test_port_is_faithful_to_installed_fschat(battles):
    """When fschat 0.2.36 is installed (pip install --no-deps fschat==0.2.36), the port is the release's code."""
    try:
        from fastchat.serve.monitor import elo_analysis
    except Exception as e:  # noqa: BLE001 - fschat drags optional imports; any failure means "not available"
        pytest.skip(f"fschat not importable: {e}")
    fdf = fc.to_fastchat(battles)
    assert elo_analysis.compute_elo(fdf) == fc.compute_elo(fdf)
    real = elo_analysis.compute_elo_mle_with_tie(fdf)  # the release's default (L2) penalty
    port = fc.compute_elo_mle_with_tie(fdf, penalty="l2")
    assert np.allclose(real.to_numpy(), port.reindex(real.index).to_numpy())
