"""One way to write a number for people: pages, reports, the planner's sentences and CSV exports.

Every function accepts ``None`` and non-finite floats and then returns :data:`MISSING` ("—"), so
no page ever shows ``None``, ``nan`` or ``inf`` where a number should be. Percentages take
fractions (``0.123`` → ``"12.3%"``). CSV exports use :func:`csv_number`: plain digits a
spreadsheet parses, missing values left empty; every CSV export is written by :func:`csv_text`,
which keeps a spreadsheet from reading text as a formula (:func:`spreadsheet_safe`).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from core.types import Tone

MISSING = "—"
TONE_COLOURS: dict[Tone, str] = {"good": "#1a7f37", "bad": "#cf222e", "inconclusive": "#6e7781"}
"""Colour meaning shared by every chart: green good, red bad, grey inconclusive
(:func:`core.analysis.verdict.tone` says which)."""
SERIES_COLOURS = ("#0969da", "#8250df", "#bf8700", "#1b7c83", "#953800", "#57606a")
"""Colours of series that carry no such meaning (variants, treatments, planner curves): neither
green nor red, which mean better and worse."""
MINUS = "−"
"""U+2212, the typographic minus: lines up with "+" in tables."""


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _minus(text: str) -> str:
    return text.replace("-", MINUS, 1) if text.startswith("-") else text


def _trim(text: str) -> str:
    """'12.50' -> '12.5', '3.00' -> '3' (only after a decimal point)."""
    if "." not in text:
        return text
    text = text.rstrip("0")
    return text[:-1] if text.endswith(".") else text


def percent(
    x: float | None, digits: int = 1, *, trim: bool = False, sig: int | None = None
) -> str:
    """A fraction as a percentage: ``percent(0.1234)`` → ``"12.3%"``.

    ``trim=True`` drops trailing zeros, so a value the user typed as 5% reads "5%", not "5.0%".
    ``sig`` asks for significant digits instead of decimals (``percent(0.0347, sig=2)`` →
    ``"3.5%"``), trimmed: the planner's computed effects read as people say them.
    """
    value = _finite(x)
    if value is None:
        return MISSING
    if sig is not None:
        scaled = abs(value * 100)
        digits = 0 if scaled == 0 else max(0, sig - 1 - math.floor(math.log10(scaled)))
        trim = True
    text = f"{value * 100:.{digits}f}"
    if trim:
        text = _trim(text)
    if float(text) == 0:
        text = text.lstrip("-")
    return _minus(text) + "%"


def signed_percent(x: float | None, digits: int = 1) -> str:
    """A relative lift with its sign: ``0.012`` → ``"+1.2%"``, ``-0.03`` → ``"−3.0%"``."""
    value = _finite(x)
    if value is None:
        return MISSING
    text = f"{value * 100:+.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"
    return _minus(text) + "%"


def pvalue(p: float | None) -> str:
    """A p-value: 3 significant digits (``"0.0492"``), ``"<0.001"`` below 0.001, ``"1"`` near 1."""
    value = _finite(p)
    if value is None:
        return MISSING
    if value < 0.001:
        return "<0.001"
    if value >= 0.9995:
        return "1"
    return _trim(f"{value:.3g}")


def p_is(p: float | None) -> str:
    """A p-value after "p" in a sentence: ``"= 0.0492"``, or ``"< 0.001"`` (never "p = <0.001")."""
    value = _finite(p)
    if value is not None and value < 0.001:
        return "< 0.001"
    return f"= {pvalue(p)}"


def number(x: float | None, sig: int = 4) -> str:
    """A measured value with ``sig`` significant digits and thousands separators.

    ``number(37333.3333)`` → ``"37,333"``; ``number(9.75321)`` → ``"9.753"``; whole numbers
    stay whole (``96000.0`` → ``"96,000"``).
    """
    value = _finite(x)
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e15:
        return _minus(f"{int(value):,}")
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, sig - 1 - magnitude)
    if abs(value) >= 1e15 or abs(value) < 1e-6:
        return _minus(f"{value:.{sig - 1}e}")
    return _minus(_trim(f"{value:,.{decimals}f}"))


def signed_number(x: float | None, sig: int = 4) -> str:
    """An absolute difference with its sign: ``0.25`` → ``"+0.25"``, ``-3`` → ``"−3"``."""
    value = _finite(x)
    if value is None:
        return MISSING
    text = number(value, sig)
    return text if value < 0 or text == "0" else "+" + text


def shared_decimals(*values: float | None, sig: int = 3) -> int:
    """Decimals that give the largest finite ``|value|`` ``sig`` significant digits: one
    precision for an estimate and its interval (``+1.51 [−0.24, +3.26]``, not
    ``+1.51 [−0.2359, +3.256]``)."""
    finite = [abs(v) for v in (_finite(x) for x in values) if v is not None and v != 0]
    if not finite:
        return 0
    return max(0, sig - 1 - math.floor(math.log10(max(finite))))


def signed_fixed(x: float | None, decimals: int) -> str:
    """A signed number with a fixed number of decimals and thousands separators:
    ``signed_fixed(1.5061, 2)`` → ``"+1.51"``, ``signed_fixed(-0.2359, 2)`` → ``"−0.24"``."""
    value = _finite(x)
    if value is None:
        return MISSING
    text = f"{value:+,.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        text = f"{0:.{decimals}f}"
    return _minus(text)


def count(n: int | float | None) -> str:
    """A count of units, days or rows: ``12345`` → ``"12,345"``."""
    value = _finite(n)
    if value is None:
        return MISSING
    return _minus(f"{round(value):,}")


def plural(n: int, word: str, plural_word: str | None = None) -> str:
    """``plural(1, "day")`` → ``"1 day"``, ``plural(3, "day")`` → ``"3 days"``."""
    return f"{count(n)} {word if n == 1 else (plural_word or word + 's')}"


def money(x: float | None, currency: str = "$") -> str:
    """An amount of money with two decimals: ``1234.5`` → ``"$1,234.50"``."""
    value = _finite(x)
    if value is None:
        return MISSING
    sign = MINUS if value < 0 else ""
    return f"{sign}{currency}{abs(value):,.2f}"


def metric_value(kind: str, x: float | None) -> str:
    """A metric's value per unit: a conversion rate as a percentage (2 decimals), else a number."""
    if kind == "binomial":
        return percent(x, 2)
    return number(x)


def _bound(x: float | None, fmt: Any, side: int) -> str:
    if x is not None and isinstance(x, float) and math.isinf(x):
        return f"{MINUS}∞" if x < 0 else "+∞"
    if x is None and side:
        return f"{MINUS}∞" if side < 0 else "+∞"
    return str(fmt(x))


def interval(
    low: float | None, high: float | None, fmt: Any = signed_percent, *, open_ends: bool = False
) -> str:
    """A confidence interval: ``"[−1.2%, +3.4%]"``.

    ``fmt`` formats each bound (default :func:`signed_percent`). A one-sided interval has an
    infinite bound, shown as ``"−∞"`` / ``"+∞"`` with an open bracket; with ``open_ends=True``
    a ``None`` bound is read as that infinite end too. Without either bound it is :data:`MISSING`.
    """
    low_inf = low is None and open_ends or isinstance(low, float) and math.isinf(low)
    high_inf = high is None and open_ends or isinstance(high, float) and math.isinf(high)
    if (low is None and not low_inf) or (high is None and not high_inf) or (low_inf and high_inf):
        return MISSING
    left = f"({MINUS}∞" if low_inf else "[" + _bound(low, fmt, 0)
    right = "+∞)" if high_inf else _bound(high, fmt, 0) + "]"
    return f"{left}, {right}"


def effect(
    estimate: float | None, low: float | None, high: float | None, *, relative: bool, ci: str,
    open_ends: bool = False,
) -> str:
    """An effect with its interval, without nested brackets:
    ``"lift +5.2%, 95% CI [−5.6%, +16.1%]"`` or ``"difference +0.25, 95% CI [+0.1, +0.4]"``.

    ``relative`` chooses a lift (fractions shown as signed percentages) or an absolute
    difference; ``ci`` is the interval's label (:func:`ci_label`); ``open_ends`` reads a missing
    bound as the infinite end of a one-sided interval (see :func:`interval`).
    """
    if _finite(estimate) is None:
        return "no estimate"
    if relative:
        return f"lift {signed_percent(estimate)}, {ci} {interval(low, high, open_ends=open_ends)}"
    bounds = interval(low, high, signed_number, open_ends=open_ends)
    return f"difference {signed_number(estimate)}, {ci} {bounds}"


def ci_label(alpha: float, sequential: bool = False) -> str:
    """``"95% CI"`` or ``"95% always-valid CI"`` for a test at ``alpha``."""
    level = _trim(f"{(1 - alpha) * 100:.4f}")
    return f"{level}% always-valid CI" if sequential else f"{level}% CI"


def lift_axis(rows: Any) -> tuple[float, float]:
    """The lift axis of a forest plot (fractions) for rows with ``lift``, ``lift_ci_low`` and
    ``lift_ci_high``: every lift, -5 % to +5 %, every finite interval end down to -100 %, and an
    8 % margin. An open end (a one-sided interval) runs off the edge, and so does a lower end
    below -100 % (a small sample's wide interval), so one such bar does not squash every other
    to a dot; the tables give the numbers."""
    lifts = [x for x in (_finite(r.lift) for r in rows) if x is not None]
    ends = [x for r in rows for x in (_finite(r.lift_ci_low), _finite(r.lift_ci_high))
            if x is not None]
    low = min([max(min([*ends, -0.05]), -1.0), *lifts, -0.05])  # a point is never off the axis
    high = max([*ends, *lifts, 0.05])
    margin = (high - low) * 0.08
    return low - margin, high + margin


def day(d: date | datetime | None) -> str:
    """An ISO date, ``"2026-12-02"``."""
    if d is None:
        return MISSING
    if isinstance(d, datetime):
        d = d.astimezone(UTC).date() if d.tzinfo else d.date()
    return d.isoformat()


def period(start: date | datetime | None, end: date | datetime | None, *,
           none: str = "not started") -> str:
    """A span of days: ``"2026-12-01 → 2026-12-14"``, ``"2026-12-01 → running"`` without an
    end, `none` without a start (never "— to ongoing")."""
    if start is None:
        return none if end is None else f"{MISSING} → {day(end)}"
    return f"{day(start)} → {day(end) if end is not None else 'running'}"


def timestamp(dt: datetime | date | None) -> str:
    """A moment in UTC, ``"2026-12-02 13:45 UTC"`` (a plain date stays a date)."""
    if dt is None:
        return MISSING
    if not isinstance(dt, datetime):
        return dt.isoformat()
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def label(name: str) -> str:
    """A snake_case code as words for people: ``"too_early"`` → ``"Too early"``."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def csv_number(x: float | None) -> str:
    """A number for a CSV export: 6 significant digits, no separators, empty when missing."""
    value = _finite(x)
    return "" if value is None else f"{value:.6g}"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection")."""
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(cell: Any) -> Any:
    """A CSV cell a spreadsheet shows as text and never runs: text starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return gets a leading single quote, as OWASP's "CSV
    Injection" recommends. Numbers, and text that is only a number (``-0.25``, what
    :func:`csv_number` writes), are left as they are, so negative values stay numbers."""
    if (isinstance(cell, str) and cell.startswith(FORMULA_STARTS)
            and not _PLAIN_NUMBER.fullmatch(cell)):
        return "'" + cell
    return cell


CSV_BOM = "\ufeff"
"""UTF-8's byte-order mark, first in every CSV export (the file is then "utf-8-sig")."""


def csv_text(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, lineterminator: str = "\r\n"
) -> str:
    """The CSV of ``rows`` under ``header``, every cell through :func:`spreadsheet_safe`: the one
    writer of every CSV export (the registry, audit, results and portfolio downloads of the
    app and the API). It starts with a byte-order mark (:data:`CSV_BOM`): without one, Excel on
    Windows reads UTF-8 as its local code page and garbles "🎁" or "−"."""
    out = io.StringIO()
    out.write(CSV_BOM)
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return out.getvalue()
