"""MetricStats, the one record of a metric's sums: pooling with ``+`` against numpy's sums over
the pooled units, the views the tests take, and a key that holds every field."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats import (
    EMPTY_STATS,
    MetricStats,
    covariate_stats,
    ratio_stats,
    sufficient_stats,
)
from core.stats.covariates import CovariateSums
from core.stats.metric_stats import COVARIATE_SUMS, FIELDS, RATIO_SUMS, SUM_FIELDS

RNG = np.random.default_rng(20)


def _record(y: np.ndarray, x: np.ndarray | None = None, den: np.ndarray | None = None
            ) -> MetricStats:
    """The record of unit values y (covariate x, denominator den), summed with numpy."""
    cov = {} if x is None else {"sum_x": x.sum(), "sum_x2": x @ x, "sum_xy": x @ y}
    ratio = {} if den is None else {"sum_den": den.sum(), "sum_den_squares": den @ den,
                                    "sum_num_den": den @ y}
    return MetricStats(y.size, y.sum(), y @ y, **cov, **ratio)


def test_metric_stats_key_holds_every_field_so_a_fingerprint_misses_none() -> None:
    assert tuple(f.name for f in fields(MetricStats)) == FIELDS
    assert set(FIELDS) >= {"n", "sum", "sum_squares", *COVARIATE_SUMS, *RATIO_SUMS}
    assert (*SUM_FIELDS, "covariates") == FIELDS
    base = MetricStats(10, 5.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    for i, name in enumerate(SUM_FIELDS):
        changed = replace(base, **{name: getattr(base, name) + 1})
        assert changed.key() != base.key() and changed.key()[i] == base.key()[i] + 1
    vec = CovariateSums(("pre",), (1.0,), (2.0,), (3.0,), (4.0,))
    with_vec = replace(base, covariates=vec)
    assert with_vec.key() != base.key() and with_vec.key()[-1] == vec.key()
    assert replace(base, covariates=replace(vec, sum_xden=(5.0,))).key() != with_vec.key()


def test_metric_stats_add_pools_the_units_like_numpy() -> None:
    y, x, den = RNG.normal(3, 1, 500), RNG.normal(2, 1, 500), RNG.poisson(3, 500) + 1.0
    a, b = slice(0, 180), slice(180, 500)
    cov = _record(y[a], x=x[a]) + _record(y[b], x=x[b])
    assert_allclose([v for v in cov.key() if v is not None],
                    [v for v in _record(y, x=x).key() if v is not None], rtol=1e-12)
    assert cov.has_covariate and not cov.has_ratio
    ratio = _record(y[a], den=den[a]) + _record(y[b], den=den[b])
    assert_allclose([v for v in ratio.key() if v is not None],
                    [v for v in _record(y, den=den).key() if v is not None], rtol=1e-12)
    assert ratio.sum_x is None and not ratio.has_covariate and ratio.has_ratio


def test_metric_stats_part_survives_pooling_only_when_every_unit_carries_it() -> None:
    y, x = RNG.normal(size=40), RNG.normal(size=40)
    with_cov, without = _record(y[:20], x=x[:20]), _record(y[20:])
    assert (with_cov + without).covariate is None
    assert (with_cov + without).n == 40
    assert EMPTY_STATS + with_cov == with_cov == with_cov + EMPTY_STATS
    assert sum([with_cov, _record(y[20:], x=x[20:])], EMPTY_STATS).covariate is not None


def test_metric_stats_views_equal_the_stats_of_the_unit_values() -> None:
    y, x, den = RNG.normal(3, 1, 300), RNG.normal(2, 1, 300), RNG.poisson(2, 300) + 1.0
    assert _record(y).sufficient == sufficient_stats(y)
    cov = _record(y, x=x).covariate
    assert cov is not None
    assert_allclose([cov.n, cov.sum_y, cov.sum_y2, cov.sum_x, cov.sum_x2, cov.sum_xy],
                    [getattr(covariate_stats(y, x), k) for k in
                     ("n", "sum_y", "sum_y2", "sum_x", "sum_x2", "sum_xy")], rtol=1e-12)
    r = _record(y, den=den).ratio
    assert r is not None
    assert_allclose(r.ratio, ratio_stats(y, den).ratio, rtol=1e-12)
    assert _record(y).covariate is None and _record(y).ratio is None


@pytest.mark.parametrize("part", [COVARIATE_SUMS, RATIO_SUMS])
def test_metric_stats_refuses_a_part_given_in_pieces(part: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="give all of"):
        MetricStats(3, 1.0, 1.0, **{part[0]: 1.0})
