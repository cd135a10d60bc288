"""Automatic segment scan: every slice against the rest of the experiment, Holm across every
slice of every dimension; a seeded A/A simulation keeps the share of experiments with any slice
flagged at alpha, and a planted heterogeneous effect is found. SRM per dimension value: the
sequential test Holm-adjusted over the dimension's values."""

from __future__ import annotations

from datetime import date

import numpy as np
from numpy.testing import assert_allclose
from statsmodels.stats.multitest import multipletests

from core.analysis import segments
from core.analysis.results import ExperimentSetup, SetupMetric
from core.stats import MetricStats, effect_difference_test, sequential_srm_test
from db.metric_repository import SliceAssignmentRow as Assigned
from db.metric_repository import SliceStatRow as Row

DAY = date(2026, 3, 2)
SETUP = ExperimentSetup(id=1, name="x", mode="fixed", correction="holm", alpha=0.05,
                        planned=100, variants=((1, "control", 0.5), (2, "treatment", 0.5)),
                        metrics=(SetupMetric(7, "revenue", "mean", "primary", True),))
DIMENSIONS = {"country": ["US", "DE", "FR", "GB", "ES"], "platform": ["ios", "android", "web"]}
SHARES = {"country": [0.4, 0.25, 0.15, 0.12, 0.08], "platform": [0.5, 0.3, 0.2]}


def experiment(rng: np.random.Generator, n: int, planted: float = 0.0
               ) -> tuple[list[segments.SegmentBreakdown], dict[str, list[Row]]]:
    """Unit data summed per dimension value and arm (what ingestion stores); ``planted`` adds
    that much to the treatment's values in country = DE only."""
    arm = rng.integers(0, 2, n)
    codes = {d: rng.choice(len(v), size=n, p=SHARES[d]) for d, v in DIMENSIONS.items()}
    y = rng.lognormal(0.0, 0.7, n)
    y = y + planted * arm * (codes["country"] == 1)
    breakdowns, stats_of = [], {}
    for dim, values in DIMENSIONS.items():
        rows: list[Row] = []
        assigned: list[Assigned] = []
        for code, value in enumerate(values):
            for a, vid in enumerate((1, 2)):
                m = (codes[dim] == code) & (arm == a)
                rows.append(Row(vid, 7, DAY, dim, value, MetricStats(
                    int(m.sum()), float(y[m].sum()), float((y[m] ** 2).sum()))))
                assigned.append(Assigned(vid, DAY, dim, value, int(m.sum())))
        stats_of[dim] = rows
        breakdowns.append(segments.breakdown(SETUP, dim, rows, assigned))
    return breakdowns, stats_of


def test_segment_scan_matches_the_effect_difference_of_slice_and_complement() -> None:
    rng = np.random.default_rng(5)
    breakdowns, stats_of = experiment(rng, 6_000, planted=0.3)
    result = segments.scan(SETUP, breakdowns, stats_of)
    assert result.tested == 8 and result.correction == "holm"
    de = next(f for f in result.findings if (f.dimension, f.value) == ("country", "DE"))
    # independent: pool DE's arms and the other countries' arms by hand, Welch per side
    rows = stats_of["country"]
    inside = {v: sum((r.stats for r in rows if r.value == "DE" and r.variant_id == v),
                     MetricStats(0, 0.0, 0.0)) for v in (1, 2)}
    rest = {v: sum((r.stats for r in rows if r.value != "DE" and r.variant_id == v),
                   MetricStats(0, 0.0, 0.0)) for v in (1, 2)}

    def diff_se(arms: dict[int, MetricStats]) -> tuple[float, float]:
        c, t = arms[1], arms[2]
        var = [(s.sum_squares - s.sum ** 2 / s.n) / (s.n - 1) / s.n for s in (c, t)]
        return t.sum / t.n - c.sum / c.n, float(np.sqrt(sum(var)))

    expected = effect_difference_test(*diff_se(inside), *diff_se(rest))
    assert_allclose((de.difference, de.p_value), (expected.difference, expected.p_value),
                    rtol=1e-9)
    assert (de.slice_units, de.rest_units) == (inside[1].n + inside[2].n,
                                               rest[1].n + rest[2].n)
    raw = [f.p_value for f in result.findings]
    assert_allclose([f.adjusted_p_value for f in result.findings],
                    multipletests(raw, method="holm")[1], rtol=1e-12)


def test_segment_scan_finds_a_planted_heterogeneous_effect() -> None:
    rng = np.random.default_rng(8)
    breakdowns, stats_of = experiment(rng, 20_000, planted=0.25)
    result = segments.scan(SETUP, breakdowns, stats_of)
    flagged = {(f.dimension, f.value) for f in result.worth_a_look}
    assert ("country", "DE") in flagged
    assert result.findings[0].value == "DE" and result.note.startswith("Worth a look, not")


def test_segment_scan_aa_false_flag_rate_stays_at_alpha() -> None:
    # 600 A/A experiments, 8 slices each (5 countries, 3 platforms; the slices of the two
    # dimensions overlap): the share with ANY slice worth a look must stay <= alpha + 0.01.
    rng = np.random.default_rng(20261207)
    runs = 600
    any_flag = sum(bool(segments.scan(SETUP, *experiment(rng, 3_000)).worth_a_look)
                   for _ in range(runs))
    assert any_flag / runs <= SETUP.alpha + 0.01, any_flag / runs


def test_segments_srm_per_value_is_sequential_and_holm_adjusted_over_values() -> None:
    rows = [Row(v, 7, DAY, "country", c, MetricStats(n, 0.0, 0.0))
            for c, ns in {"DE": (5000, 5800), "FR": (2000, 2010), "US": (900, 880)}.items()
            for v, n in zip((1, 2), ns, strict=True)]
    assigned = [Assigned(r.variant_id, DAY, "country", r.value, r.stats.n) for r in rows]
    b = segments.breakdown(SETUP, "country", rows, assigned)
    seq = {s.value: sequential_srm_test(list(ns), [0.5, 0.5]).p_value
           for s, ns in zip(b.slices, [(5000, 5800), (2000, 2010), (900, 880)], strict=True)}
    assert_allclose([s.srm_sequential_p_value for s in b.slices],
                    [seq[s.value] for s in b.slices], rtol=1e-12)
    assert_allclose([s.srm_adjusted_p_value for s in b.slices],
                    multipletests(list(seq.values()), method="holm")[1], rtol=1e-12)
    assert [s.srm_flagged for s in b.slices] == [
        a < 0.001 for a in multipletests(list(seq.values()), method="holm")[1]]
    assert b.slices[0].value == "DE" and b.slices[0].srm_flagged
