"""core.format: the one way numbers are written for people."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from core import format as fmt


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, "x"])
def test_format_missing_values_read_as_a_dash(value: object) -> None:
    for f in (fmt.percent, fmt.signed_percent, fmt.pvalue, fmt.number, fmt.signed_number,
              fmt.count, fmt.money):
        assert f(value) == fmt.MISSING  # type: ignore[arg-type]
    assert fmt.csv_number(value) == ""  # type: ignore[arg-type]


def test_format_percent_and_signed_percent() -> None:
    assert fmt.percent(0.1234) == "12.3%"
    assert fmt.percent(0.05, 2) == "5.00%"
    assert fmt.percent(0.05, 4, trim=True) == "5%"
    assert fmt.percent(0.0125, 4, trim=True) == "1.25%"
    assert fmt.percent(-0.02) == "−2.0%"
    assert fmt.percent(0.0347, sig=2) == "3.5%"
    assert fmt.percent(0.05, sig=2) == "5%"
    assert fmt.percent(0.0035, sig=2) == "0.35%"
    assert fmt.percent(0.1234, sig=3) == "12.3%"
    assert fmt.percent(-0.00001) == "0.0%"
    assert fmt.signed_percent(0.012) == "+1.2%"
    assert fmt.signed_percent(-0.03) == "−3.0%"
    assert fmt.signed_percent(-0.00001) == "0.0%"


def test_format_pvalue() -> None:
    assert fmt.pvalue(0.0492) == "0.0492"
    assert fmt.pvalue(0.05) == "0.05"
    assert fmt.pvalue(0.5) == "0.5"
    assert fmt.pvalue(0.0012) == "0.0012"
    assert fmt.pvalue(0.0044) == "0.0044"
    assert fmt.pvalue(0.00049) == "<0.001"
    assert fmt.pvalue(0.99999) == "1"


def test_format_numbers_counts_money() -> None:
    assert fmt.number(96000.0) == "96,000"
    assert fmt.number(37333.3333) == "37,333"
    assert fmt.number(9.75321) == "9.753"
    assert fmt.number(0.012345) == "0.01235"
    assert fmt.number(-2.5) == "−2.5"
    assert fmt.number(0.0) == "0"
    assert fmt.number(1.5e-9) == "1.500e-09"
    assert fmt.signed_number(0.25) == "+0.25"
    assert fmt.signed_number(-3.0) == "−3"
    assert fmt.count(12345) == "12,345"
    assert fmt.count(12345.0) == "12,345"
    assert fmt.plural(1, "day") == "1 day"
    assert fmt.plural(1200, "user") == "1,200 users"
    assert fmt.money(1234.5) == "$1,234.50"
    assert fmt.money(-3, "€") == "−€3.00"
    assert fmt.metric_value("binomial", 0.1234) == "12.34%"
    assert fmt.metric_value("mean", 9.75321) == "9.753"


def test_format_interval_closed_and_one_sided() -> None:
    assert fmt.interval(-0.012, 0.034) == "[−1.2%, +3.4%]"
    assert fmt.interval(-0.012, math.inf) == "[−1.2%, +∞)"
    assert fmt.interval(-math.inf, 0.034) == "(−∞, +3.4%]"
    assert fmt.interval(None, 0.034, open_ends=True) == "(−∞, +3.4%]"
    assert fmt.interval(None, 0.034) == fmt.MISSING
    assert fmt.interval(1.5, 2.25, fmt.signed_number) == "[+1.5, +2.25]"


def test_format_effect_reads_without_nested_brackets() -> None:
    assert fmt.effect(0.052, -0.056, 0.161, relative=True, ci="95% CI") == (
        "lift +5.2%, 95% CI [−5.6%, +16.1%]")
    assert fmt.effect(0.25, 0.1, math.inf, relative=False, ci="95% CI") == (
        "difference +0.25, 95% CI [+0.1, +∞)")
    assert fmt.effect(0.276, 0.101, None, relative=True, ci="95% CI", open_ends=True) == (
        "lift +27.6%, 95% CI [+10.1%, +∞)")
    assert fmt.effect(None, None, None, relative=True, ci="95% CI") == "no estimate"


def test_format_labels_dates_and_csv() -> None:
    assert fmt.ci_label(0.05) == "95% CI"
    assert fmt.ci_label(0.1, True) == "90% always-valid CI"
    assert fmt.ci_label(0.025) == "97.5% CI"
    assert fmt.day(date(2026, 12, 2)) == "2026-12-02"
    later = datetime(2026, 12, 2, 14, 45, tzinfo=timezone(timedelta(hours=1)))
    assert fmt.timestamp(later) == "2026-12-02 13:45 UTC"
    assert fmt.timestamp(datetime(2026, 12, 2, 13, 45, tzinfo=UTC)) == "2026-12-02 13:45 UTC"
    assert fmt.label("too_early") == "Too early"
    assert fmt.csv_number(0.123456789) == "0.123457"
    assert fmt.csv_number(3.0) == "3"


# ----------------------------------------------------------- the lift axis of forest plots


@dataclass
class Row:
    """The fields of MetricComparison the range reads."""

    lift: float | None
    lift_ci_low: float | None
    lift_ci_high: float | None


def _range(*rows: Row) -> list[float]:
    return list(fmt.lift_axis(rows))


def test_forest_range_covers_every_lift_interval_and_zero() -> None:
    low, high = _range(Row(0.134, 0.043, 0.226), Row(0.054, 0.003, 0.104))
    assert low == pytest.approx(-0.05 - 0.276 * 0.08)
    assert high == pytest.approx(0.226 + 0.276 * 0.08)


def test_forest_range_lets_an_open_end_run_off_the_edge() -> None:
    # a one-sided guardrail [-10.4 %, +inf) beside a two-sided primary: the axis ends near the
    # primary's upper bound, not 100 % beyond the guardrail's lift
    low, high = _range(Row(0.134, 0.043, 0.226), Row(0.029, -0.104, math.inf))
    assert high == pytest.approx(0.226 + (0.226 + 0.104) * 0.08)
    assert low == pytest.approx(-0.104 - (0.226 + 0.104) * 0.08)


def test_forest_range_stops_at_minus_100_percent() -> None:
    # 1,000 users per arm, always-valid interval [-283 %, +inf): the bar runs off the left edge
    low, high = _range(Row(-0.007, -0.221, 0.207), Row(0.0, -2.832, math.inf))
    assert low == pytest.approx(-1.0 - 1.207 * 0.08)
    assert high == pytest.approx(0.207 + 1.207 * 0.08)


def test_forest_range_of_small_lifts_is_at_least_minus_to_plus_5_percent() -> None:
    low, high = _range(Row(0.004, 0.001, 0.007), Row(None, None, None))
    assert low == pytest.approx(-0.05 - 0.1 * 0.08)
    assert high == pytest.approx(0.05 + 0.1 * 0.08)


@pytest.mark.parametrize(("p", "text"), [
    (0.0492, "= 0.0492"), (0.001, "= 0.001"), (0.000999, "< 0.001"), (4e-12, "< 0.001"),
    (0.99999, "= 1"), (None, "= —"), (math.nan, "= —"),
])
def test_p_is_reads_in_a_sentence(p: float | None, text: str) -> None:
    assert fmt.p_is(p) == text
    assert "= <" not in f"p {fmt.p_is(p)}"


def test_lift_axis_of_no_estimate_at_all_is_minus_to_plus_5_percent() -> None:
    # a page may draw the plot before any lift exists: no row, or rows without numbers
    for rows in ([], [Row(None, None, None)]):
        low, high = fmt.lift_axis(rows)
        assert (low, high) == pytest.approx((-0.058, 0.058))


@pytest.mark.parametrize(("cell", "exported"), [
    ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("-", "'-"), ("-inf", "'-inf"),
    ("plain", "plain"), ("a=1", "a=1"), ("", ""), ("-0.25", "-0.25"), ("+3", "+3"),
    ("-1.5e-07", "-1.5e-07"), (-0.25, -0.25), (3, 3), (None, None),
])
def test_format_spreadsheet_safe_quotes_formula_text_only(cell: object, exported: object) -> None:
    """OWASP "CSV Injection": text a spreadsheet would read as a formula gets a leading quote;
    numbers, and text that is just a number, are left alone."""
    assert fmt.spreadsheet_safe(cell) == exported


def test_format_csv_text_writes_every_text_cell_safe() -> None:
    text = fmt.csv_text(("name", "lift"), [("=cmd", -0.5), ("ok", "-0.25")], lineterminator="\n")
    assert text == "\ufeffname,lift\n'=cmd,-0.5\nok,-0.25\n"


def test_format_csv_text_starts_with_a_byte_order_mark_excel_reads_as_utf8() -> None:
    """Excel on Windows reads a CSV without a BOM in its code page: "🎁" and "−" garble."""
    data = fmt.csv_text(("name",), [("Gift 🎁 −5%",)]).encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig") == "name\r\nGift 🎁 −5%\r\n"


def test_format_shared_decimals_give_an_estimate_and_its_interval_one_precision() -> None:
    """Issue 23: the segment table read "+1.51" beside "[−0.2359, +3.256]"."""
    d = fmt.shared_decimals(1.5061, -0.2359, 3.256)
    assert d == 2
    assert [fmt.signed_fixed(x, d) for x in (1.5061, -0.2359, 3.256)] == [
        "+1.51", "−0.24", "+3.26"]
    assert fmt.interval(-0.2359, 3.256, lambda x: fmt.signed_fixed(x, d)) == "[−0.24, +3.26]"
    assert fmt.shared_decimals(1520.4, 1210.0, 1830.9) == 0
    assert fmt.signed_fixed(1520.4, 0) == "+1,520"
    assert fmt.signed_fixed(-0.0001, 2) == "0.00" and fmt.signed_fixed(None, 2) == fmt.MISSING
    assert fmt.shared_decimals(None, 0.0) == 0


def test_format_period_never_reads_dash_to_ongoing() -> None:
    """Issue 23: "Actual: — to ongoing" for an experiment that has not started."""
    assert fmt.period(None, None) == "not started"
    assert fmt.period(None, None, none="no dates") == "no dates"
    assert fmt.period(date(2026, 12, 1), None) == "2026-12-01 → running"
    assert fmt.period(date(2026, 12, 1), date(2026, 12, 14)) == "2026-12-01 → 2026-12-14"
