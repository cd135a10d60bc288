"""CovariateSums as flat columns (one number a column, what a SQL GROUP BY returns): the names
:func:`covariate_columns` gives, the round trip, and every malformed set of columns refused
with a message naming the column. Reference for the sums: numpy's ``X.T @ X`` on the same
unit rows."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from core.stats.covariates import CovariateSums, covariate_columns, covariate_sums


def test_covariate_columns_name_every_sum_in_field_order() -> None:
    assert covariate_columns(("pre", "age"), ratio=False) == (
        "sum_x__pre", "sum_x__age", "sum_xx__pre__pre", "sum_xx__pre__age", "sum_xx__age__age",
        "sum_xy__pre", "sum_xy__age")
    assert covariate_columns(("a",), ratio=True) == (
        "sum_x__a", "sum_xx__a__a", "sum_xy__a", "sum_xden__a")


@pytest.mark.parametrize("ratio", [False, True])
def test_covariate_columns_round_trip_equals_numpy(ratio: bool) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    y = rng.normal(size=50)
    den = rng.integers(1, 5, 50).astype(float) if ratio else None
    sums = covariate_sums(x, y, ("revenue_pre", "cov_tenure", "cov_tenure_missing"), den)
    flat = sums.columns()
    xx = x.T @ x
    assert_allclose(flat["sum_xx__revenue_pre__cov_tenure"], xx[0, 1], rtol=1e-12)
    assert_allclose(flat["sum_xy__cov_tenure_missing"], x[:, 2] @ y, rtol=1e-12)
    if den is not None:
        assert_allclose(flat["sum_xden__cov_tenure"], x[:, 1] @ den, rtol=1e-12)
    again = CovariateSums.from_columns({**flat, "n": 50.0, "sum": 1.0}, ratio=ratio)
    assert again == sums


def test_covariate_columns_take_a_pair_in_either_order_and_ignore_empty_rows() -> None:
    flat = {"sum_x__a": 1.0, "sum_x__b": 2.0, "sum_xx__a__a": 3.0, "sum_xx__b__a": 4.0,
            "sum_xx__b__b": 5.0, "sum_xy__a": 6.0, "sum_xy__b": 7.0}
    sums = CovariateSums.from_columns(flat, ratio=False)
    assert sums is not None and sums.sum_xx == (3.0, 4.0, 5.0)
    assert CovariateSums.from_columns({k: None for k in flat}, ratio=False) is None
    assert CovariateSums.from_columns({"sum": 2.0}, ratio=False) is None


@pytest.mark.parametrize(("flat", "ratio", "message"), [
    ({"sum_x__a": 1.0, "sum_x__b": 1.0, "sum_xx__a__a": 1.0, "sum_xx__b__b": 1.0,
      "sum_xy__a": 1.0, "sum_xy__b": None}, False, "missing sum_xy__b, sum_xx__a__b"),
    ({"sum_x__a": 1.0, "sum_xx__a__a": 1.0, "sum_xy__a": 1.0}, True, "missing sum_xden__a"),
    ({"sum_x__a": 1.0, "sum_xx__a__a": 1.0, "sum_xy__a": 1.0, "sum_xden__a": 1.0}, False,
     "sum_xden__ columns belong to ratio metrics only"),
    ({"sum_x__a": 1.0, "sum_xx__a__a": 1.0, "sum_xy__a": 1.0, "sum_xy__z": 1.0}, False,
     "sum_xy__z name(s) no covariate of the sum_x__ columns (a)"),
    ({"sum_x__a": 1.0, "sum_xx__a__a": float("nan"), "sum_xy__a": 1.0}, False,
     "sum_xx__a__a must be finite numbers"),
    ({"sum_x__a": 1.0, "sum_x__b": 1.0, "sum_xx__a__a": 1.0, "sum_xx__b__b": 1.0,
      "sum_xx__a__b": 1.0, "sum_xx__b__a": 1.0, "sum_xy__a": 1.0, "sum_xy__b": 1.0}, False,
     "sum_xx__a__b and sum_xx__b__a are the same sum: give one"),
    ({"sum_xy__a": 1.0}, False, "give each covariate's sum_x__<name> column"),
    ({"sum_x__a": 1.0, "sum_xx__a__a": -1.0, "sum_xy__a": 1.0}, False,
     "sum of squares cannot be negative"),
])
def test_covariate_columns_malformed_are_refused_naming_the_column(
        flat: dict[str, float | None], ratio: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CovariateSums.from_columns(flat, ratio=ratio)
