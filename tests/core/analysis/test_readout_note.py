"""One readout, one answer (issue 22, item 6): when the Bayesian readout and the decision
disagree, :func:`core.analysis.verdict.readout_note` says why in one sentence, naming what
differs in design; when they agree it says nothing. Readouts are built with
:func:`core.stats.bayesian_readout` (checked against a seeded Monte Carlo in test_bayesian)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.analysis.verdict import readout_note
from core.stats import bayesian_readout
from tests.core.analysis.test_verdict import comparison, snapshot

ALWAYS_VALID = ("the decision's interval is always-valid (it holds however often the results "
                "are looked at, so it is wider than a one-look interval, above all before the "
                "planned sample)")


def test_readout_note_explains_the_issues_guardrail() -> None:
    """The issue's numbers: a lower-is-better guardrail at +14.1%, "no significant harm" with
    the always-valid interval [-4.6%, +inf), and a flat-prior posterior N(0.141, 0.067^2):
    chance to beat control Phi(-0.141 / 0.067) = 1.8%, 95% credible interval [+1.0%, +27.3%]."""
    readout = bayesian_readout(0.141, 0.067, higher_is_better=False)
    assert round(readout.chance_to_beat_control, 3) == 0.018
    assert (round(readout.ci_low, 3), round(readout.ci_high, 3)) == (0.010, 0.272)
    row = comparison("load_ms", "guardrail", "too_early", lift=0.141, higher_is_better=False,
                     alternative="greater", sequential=True, lift_ci_low=-0.046,
                     lift_ci_high=None, lift_p_value=0.2, adjusted_p_value=0.2,
                     bayesian=readout)
    note = readout_note(row, snapshot(row))
    assert note == (f"The Bayesian readout differs from the decision because {ALWAYS_VALID}, "
                    "while the Bayesian readout reads the data as a single look.")


def test_readout_note_is_silent_when_both_say_the_same() -> None:
    better = comparison(bayesian=bayesian_readout(0.1, 0.03))  # significant, CI above 0
    flat = comparison(state="not_significant", lift=0.01,
                      bayesian=bayesian_readout(0.01, 0.03))
    assert readout_note(better, snapshot(better)) is None
    assert readout_note(flat, snapshot(flat)) is None
    assert readout_note(comparison(), snapshot(comparison())) is None  # no readout at all


def test_readout_note_names_the_fixed_horizon_wait() -> None:
    row = comparison(state="too_early", lift=0.1, lift_p_value=0.003, adjusted_p_value=0.003,
                     bayesian=bayesian_readout(0.1, 0.03))
    assert readout_note(row, snapshot(row)) == (
        "The Bayesian readout differs from the decision because a fixed-horizon decision is "
        "read only once the planned sample is reached, while the Bayesian readout uses the data "
        "so far.")


def test_readout_note_names_the_adjustment_and_its_family() -> None:
    rows = [comparison(state="not_significant", lift=0.07, lift_p_value=0.02,
                       adjusted_p_value=0.06, bayesian=bayesian_readout(0.07, 0.03)),
            comparison("revenue", "secondary", "not_significant", lift_p_value=0.03,
                       adjusted_p_value=0.06),
            comparison("aov", "secondary", "not_significant", lift_p_value=0.5,
                       adjusted_p_value=0.5),
            comparison("refunds", "guardrail", "not_significant", adjusted_p_value=0.7)]
    assert readout_note(rows[0], snapshot(*rows)) == (
        "The Bayesian readout differs from the decision because its p-value is Holm-adjusted "
        "over the 3 primary and secondary comparisons, while the Bayesian readout is not "
        "adjusted.")


def test_readout_note_names_a_one_sided_test_and_an_exact_test() -> None:
    """A guardrail breach at one-sided p = 0.03 (z = 1.88 > 1.645) whose two-sided 95%
    credible interval still reaches 0 (z < 1.96), on the small-count (MOVER) path."""
    row = comparison("refunds", "guardrail", "guardrail_breach", lift=0.094,
                     higher_is_better=False, alternative="greater", lift_p_value=0.03,
                     adjusted_p_value=0.03, test="mover_cp",
                     bayesian=bayesian_readout(0.094, 0.05, higher_is_better=False))
    assert row.bayesian is not None and row.bayesian.ci_low < 0 < row.bayesian.ci_high
    assert readout_note(row, snapshot(row)) == (
        "The Bayesian readout differs from the decision because it is a one-sided test at "
        "alpha 0.05; it uses the small-count MOVER test (Clopper–Pearson limits), while the "
        "Bayesian readout gives a two-sided 95% interval and uses a normal approximation.")


def test_readout_note_names_the_plans_prior() -> None:
    readout = bayesian_readout(0.1, 0.045, prior_mean=0.0, prior_sd=0.05)
    assert readout.ci_low < 0  # shrunk toward 0 by the prior
    row = comparison(lift_p_value=0.026, adjusted_p_value=0.026, bayesian=readout)
    assert readout_note(row, snapshot(row)) == (
        "The Bayesian readout differs from the decision because the decision is a test at "
        "alpha 0.05, while the Bayesian readout shrinks the lift toward the plan's prior (mean "
        "0.0%, sd 5.0%).")


@pytest.mark.parametrize("field", ["blocked", "untestable"])
def test_readout_note_says_nothing_without_effects(field: str) -> None:
    row = comparison(state="too_early", bayesian=bayesian_readout(0.1, 0.03))
    hidden = replace(row, **{field: True if field == "blocked" else "no_variation"})
    assert readout_note(hidden, snapshot(hidden)) is None
