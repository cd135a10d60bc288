"""Capping: the pooled percentile against numpy's ``percentile(method="linear")`` (Hyndman &
Fan type 7, the definition DuckDB's quantile_cont and PostgreSQL's percentile_cont share), the
cap against ``numpy.minimum``, and the rule's checks."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats.capping import CapRule, cap_value, capped, pooled_percentile


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.95, 0.99, 0.999, 0.0, 1.0])
def test_pooled_percentile_matches_numpy_linear(n, p):
    rng = np.random.default_rng(n)
    x = rng.lognormal(3.0, 1.2, size=n)
    assert_allclose(pooled_percentile(x, p), np.percentile(x, p * 100, method="linear"),
                    rtol=1e-12)


def test_pooled_percentile_of_ties_and_negatives():
    x = [-5.0, 0.0, 0.0, 0.0, 2.0, 2.0, 10.0]
    for p in (0.6, 0.75, 0.99):
        assert_allclose(pooled_percentile(x, p), np.percentile(x, p * 100, method="linear"),
                        rtol=1e-12)


def test_pooled_percentile_hand_computed():
    # Hyndman & Fan type 7 by hand: h = (5 - 1) * 0.9 = 3.6 -> x[3] + 0.6 (x[4] - x[3]).
    assert pooled_percentile([1, 2, 3, 4, 100], 0.9) == pytest.approx(4 + 0.6 * 96, rel=1e-12)


def test_capped_replaces_values_above_the_cap_only():
    x = np.array([-3.0, 0.0, 5.0, 10.0, 250.0])
    assert_allclose(capped(x, 10.0), np.minimum(x, 10.0), rtol=0)
    assert capped(x, 10.0).tolist() == [-3.0, 0.0, 5.0, 10.0, 10.0]


def test_cap_value_fixed_and_percentile():
    x = np.arange(101, dtype=float)
    assert cap_value(CapRule("fixed", 42.5)) == 42.5
    assert_allclose(cap_value(CapRule("percentile", 0.95), x), 95.0, rtol=1e-12)


def test_capping_reduces_the_variance_of_a_heavy_tail():
    rng = np.random.default_rng(7)
    x = rng.pareto(1.5, size=5_000)
    cap = pooled_percentile(x, 0.99)
    assert np.var(capped(x, cap)) < 0.5 * np.var(x)
    assert (capped(x, cap) > cap).sum() == 0
    assert math.isclose((x > cap).mean(), 0.01, abs_tol=0.001)


@pytest.mark.parametrize("kind, value, words", [
    ("fixed", 0.0, "above 0"),
    ("fixed", -1.0, "above 0"),
    ("fixed", math.inf, "finite"),
    ("fixed", math.nan, "finite"),
    ("percentile", 0.5, "strictly between 0.5 and 1"),
    ("percentile", 1.0, "strictly between 0.5 and 1"),
    ("percentile", 99.0, "e.g. 0.99"),
    ("median", 1.0, "'fixed' or 'percentile'"),
])
def test_cap_rule_refuses_bad_values(kind, value, words):
    with pytest.raises(ValueError, match=words):
        CapRule(kind, value)


def test_pooled_percentile_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        pooled_percentile([], 0.9)
    with pytest.raises(ValueError, match="finite"):
        pooled_percentile([1.0, math.inf], 0.9)
    with pytest.raises(ValueError, match="needs the values"):
        cap_value(CapRule("percentile", 0.9))


def test_cap_rule_label():
    assert CapRule("percentile", 0.99).label == "p99"
    assert CapRule("percentile", 0.995).label == "p99.5"
    assert CapRule("fixed", 123.4).label == "123.4"
