"""Benchmarks for core.stats, printed as ratios against named baselines (no timed asserts).

Run: ``python bench/bench_stats.py`` (``--tiny``: every part at a small size, in seconds;
tests/test_benches.py runs it so a broken bench fails CI)

(a) Planner, one plan per call (what the Planner page and the API ask for): CPU time of
    ``core.stats.sample_size_proportion`` and ``sample_size_mean`` on scalars (their fast path)
    vs statsmodels ``NormalIndPower`` / ``TTestIndPower`` ``solve_power`` for the same test
    (the Wald effect size d sqrt(1 + 1/r) / sqrt(p1 q1 + p2 q2 / r); delta / sd), both timed in
    this run, and their MDE for a sample (``mde_proportion``, ``mde_mean``) vs ``solve_power``
    for the effect size. Target: >= 50x faster, the same whole units.
(a') Planner, curves: a 1,000-point sample-size curve in one vectorised call vs statsmodels
    ``solve_power`` called once per point, for proportions (target: >= 100x faster) and means.
(b) Analysis: sufficient statistics + Welch test on 2 x 5,000,000 raw floats vs a bare numpy
    ``mean`` + ``var(ddof=1)`` pass over the same arrays. Target: <= 1.5x the bare pass.
(c) Per call: each two-sample test from sufficient statistics (Welch, Welch sequential,
    proportion on the Wald path and on the small-count MOVER path, ratio, quantile, CUPED) and the
    Bayesian readout, vs scipy ``stats.ttest_ind_from_stats`` per call (the baseline, timed in
    the same run), and the small-count path also vs scipy's exact (Clopper–Pearson) limits of
    both arms, ``binomtest(x, n).proportion_ci()`` twice, which it builds on. Target: < 40 us
    per call for every test, except the small-count path when an arm has millions of units
    (there each exact limit, an incomplete-beta inversion with parameters in the millions,
    costs about 40 us, and the p-value's root search needs several). Times are CPU time of this
    process (time.process_time), which waiting for a core on a busy machine does not inflate;
    the load average is printed alongside.
"""

from __future__ import annotations

import math
import os
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.stats import (  # noqa: E402
    SufficientStats,
    bayesian_readout,
    covariate_stats,
    mde_mean,
    mde_proportion,
    proportion_ztest,
    quantile_stats,
    quantile_test,
    ratio_stats,
    ratio_test,
    sample_size_mean,
    sample_size_proportion,
    sufficient_stats,
    welch_ttest,
    welch_ttest_cuped,
    welch_ttest_from_stats,
)

TINY = "--tiny" in sys.argv[1:]
"""Small sizes and few repetitions: the bench runs, its numbers mean little."""


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (time.perf_counter)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _wald_effect_size(baseline: float, p2: Any, ratio: float = 1.0) -> Any:
    """The effect size for which statsmodels ``NormalIndPower`` solves the engine's unpooled
    Wald z-test: d sqrt(1 + 1/r) / sqrt(p1 q1 + p2 q2 / r) (the same power equation)."""
    return (p2 - baseline) * np.sqrt(1 + 1 / ratio) / np.sqrt(
        baseline * (1 - baseline) + p2 * (1 - p2) / ratio)


def bench_planner_single() -> None:
    """One plan per call, the planner's everyday use (the Planner page, the API): the sample
    size for an effect, and the MDE for a sample (the page's fixed-duration mode)."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower

    baseline, rel = 0.10, 0.10
    es_prop = float(_wald_effect_size(baseline, baseline * (1 + rel)))
    sd, delta, n_mean, n_prop = 24.0, 1.0, 9043.0, 14749.0
    # (name, ours, statsmodels, calls timed each, what to compare: ours and statsmodels as
    # the same number - n, or the effect size delta / sd, or the Wald effect size)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any], tuple[int, int],
                      Callable[[], float]]] = [
        ("sample size, proportions (10%, +10% relative)",
         lambda: sample_size_proportion(baseline, rel, round_up=False),
         lambda: NormalIndPower().solve_power(effect_size=es_prop, alpha=0.05, power=0.8,
                                              ratio=1.0),
         (20000, 300), lambda: sample_size_proportion(baseline, rel, round_up=False)),
        ("sample size, means (sd 24, delta 1)",
         lambda: sample_size_mean(sd, delta, round_up=False),
         lambda: TTestIndPower().solve_power(effect_size=delta / sd, alpha=0.05, power=0.8,
                                             ratio=1.0),
         (10000, 300), lambda: sample_size_mean(sd, delta, round_up=False)),
        (f"MDE, proportions (10%, n {n_prop:,.0f})",
         lambda: mde_proportion(baseline, n_prop),
         lambda: NormalIndPower().solve_power(nobs1=n_prop, alpha=0.05, power=0.8, ratio=1.0),
         (20000, 300),
         lambda: float(_wald_effect_size(baseline, baseline + mde_proportion(baseline, n_prop)))),
        (f"MDE, means (sd 24, n {n_mean:,.0f})",
         lambda: mde_mean(sd, n_mean),
         lambda: TTestIndPower().solve_power(nobs1=n_mean, alpha=0.05, power=0.8, ratio=1.0),
         (10000, 300), lambda: mde_mean(sd, n_mean) / sd),
    ]
    load = os.getloadavg()
    print("(a) planner, one plan per call (two-sided, alpha 0.05, power 0.8, equal arms), CPU "
          "time per call")
    print(f"    load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} "
          "cores; baseline statsmodels solve_power for the same test, timed in this run")
    for name, ours, theirs, (n_ours, n_theirs), comparable in cases:
        ours()
        theirs()
        us_ours = per_call_us(ours, n_ours)
        us_theirs = per_call_us(theirs, n_theirs)
        a, b = float(comparable()), float(theirs())
        print(f"    {name:46s}: {us_ours:7.1f} us/call vs statsmodels {us_theirs:8.1f} us/call: "
              f"{us_theirs / us_ours:6.1f}x  (target >= 50x)")
        if name.startswith("sample size"):
            same = math.ceil(round(a, 9)) == math.ceil(round(b, 9))
            print(f"      n = {a:.9f} vs statsmodels {b:.9f} (relative difference "
                  f"{abs(a / b - 1):.1e}; whole units {'equal' if same else 'DIFFER'})")
        else:
            print(f"      effect size {a:.9f} vs statsmodels {b:.9f} (relative difference "
                  f"{abs(a / b - 1):.1e}; statsmodels' effect-size solve stops ~1e-6 short)")


def bench_planner(points: int = 1000) -> None:
    """A curve in one vectorised call (the Planner's plots) against statsmodels per point."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower

    baseline = 0.10
    rel_mde = np.linspace(0.02, 0.30, points)
    effect = _wald_effect_size(baseline, baseline * (1 + rel_mde))
    delta = np.linspace(0.05, 0.5, points)
    cases: list[tuple[str, Callable[[], Any], Callable[[], list[float]], str]] = [
        ("proportions (baseline 10%, relative MDE 2%..30%)",
         lambda: sample_size_proportion(baseline, rel_mde, round_up=False),
         lambda: [NormalIndPower().solve_power(effect_size=e, alpha=0.05, power=0.8, ratio=1.0)
                  for e in effect], "(target >= 100x)"),
        ("means (sd 1, delta 0.05..0.5)",
         lambda: sample_size_mean(1.0, delta, round_up=False),
         lambda: [TTestIndPower().solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1.0)
                  for d in delta], "(no target)"),
    ]
    print(f"(a') planner, a {points:,}-point sample-size curve in one vectorised call vs "
          "statsmodels solve_power per point (wall time)")
    for name, ours, theirs, target in cases:
        t_ours = best_of(ours, 5)
        t_theirs = best_of(theirs, 1)
        rel = np.abs(np.asarray(ours()) / np.array(theirs()) - 1)
        print(f"    {name:48s}: {t_ours / points * 1e6:8.3f} us/point vs statsmodels "
              f"{t_theirs / points * 1e6:9.1f} us/point: {t_theirs / t_ours:8.1f}x {target}; "
              f"max relative difference in n {rel.max():.1e}")


def bench_analysis(size: int = 5_000_000) -> None:
    rng = np.random.default_rng(2024)
    x_c = rng.normal(10.0, 3.0, size)
    x_t = rng.normal(10.1, 3.0, size)

    def bare() -> tuple[float, float, float, float]:
        return x_c.mean(), x_c.var(ddof=1), x_t.mean(), x_t.var(ddof=1)

    def ours() -> object:
        return welch_ttest_from_stats(sufficient_stats(x_c), sufficient_stats(x_t))

    bare()
    ours()  # warm caches
    t_bare = best_of(bare, 7)
    t_ours = best_of(ours, 7)
    r = ours()
    print(f"(b) analysis of 2 x {size:,} raw floats")
    print(f"    bare numpy mean + var(ddof=1)         : {t_bare * 1e3:8.2f} ms")
    print(f"    sufficient_stats x2 + Welch test       : {t_ours * 1e3:8.2f} ms")
    print(f"    ratio ours / bare                      : {t_ours / t_bare:8.2f}x  (target <= 1.5x)")
    print(f"    (diff = {r.diff:.5f}, p = {r.p_value:.3g})")  # type: ignore[attr-defined]


def per_call_us(fn: Callable[[], object], number: int) -> float:
    """Best of 7 timeit runs of ``number`` calls, in microseconds of this process's CPU time
    per call (time.process_time: on a shared machine, wall time also counts the waits for a
    core; CPU time does not)."""
    if TINY:
        number = max(1, number // 1000)
    runs = timeit.repeat(fn, number=number, repeat=7, timer=time.process_time)
    return min(runs) / number * 1e6


def bench_per_call() -> None:
    from scipy import stats

    rng = np.random.default_rng(7)
    c, t = SufficientStats(2000, 20000.0, 232000.0), SufficientStats(2100, 21420.0, 250000.0)
    rc = ratio_stats(rng.gamma(2.0, 1.0, 1000) * 2, 1.0 + rng.poisson(1.0, 1000))
    rt = ratio_stats(rng.gamma(2.1, 1.0, 1000) * 2, 1.0 + rng.poisson(1.0, 1000))
    qc = quantile_stats(rng.lognormal(6.0, 0.6, 2000), 0.9)
    qt = quantile_stats(rng.lognormal(6.05, 0.6, 2100), 0.9)
    cc = covariate_stats(rng.normal(size=1000), rng.normal(size=1000))
    ct = covariate_stats(rng.normal(size=1000), rng.normal(size=1000))
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("welch_ttest", lambda: welch_ttest(10.0, 4.0, 2000, 10.2, 4.1, 2100), 20000),
        ("welch_ttest_from_stats", lambda: welch_ttest_from_stats(c, t), 20000),
        ("welch_ttest sequential", lambda: welch_ttest(10.0, 4.0, 2000, 10.2, 4.1, 2100,
                                                       sequential=True, tuning_n=5000), 20000),
        ("proportion_ztest (Wald path)", lambda: proportion_ztest(1000, 10000, 1085, 10000),
         20000),
        ("ratio_test", lambda: ratio_test(rc, rt), 20000),
        ("quantile_test (p90)", lambda: quantile_test(qc, qt), 20000),
        ("welch_ttest_cuped (2 tests)", lambda: welch_ttest_cuped(cc, ct), 10000),
        ("bayesian_readout", lambda: bayesian_readout(0.02, 0.01), 20000),
        ("proportion_ztest (MOVER, 3/40 vs 9/40)", lambda: proportion_ztest(3, 40, 9, 40),
         2000),
        ("proportion_ztest (MOVER, 2/10 vs 1e6/1e8)",
         lambda: proportion_ztest(1_000_000, 100_000_000, 2, 10), 1000),
    ]
    base = per_call_us(lambda: stats.ttest_ind_from_stats(
        10.2, 4.1, 2100, 10.0, 4.0, 2000, equal_var=False), 5000)

    def limits(x_c: int, n_c: int, x_t: int, n_t: int) -> object:
        return (stats.binomtest(x_c, n_c).proportion_ci(),
                stats.binomtest(x_t, n_t).proportion_ci())

    limits_small = per_call_us(lambda: limits(3, 40, 9, 40), 300)
    limits_big = per_call_us(lambda: limits(1_000_000, 100_000_000, 2, 10), 100)
    load = os.getloadavg()
    print("(c) per-call CPU time of each test (best of 7 timeit runs, time.process_time)")
    print(f"    load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} "
          f"cores (CPU time excludes waiting for a core; the ratios carry over between machines)")
    print(f"    baseline scipy ttest_ind_from_stats (Welch): {base:8.1f} us/call")
    for name, fn, number in cases:
        us = per_call_us(fn, number)
        exempt = "1e8" in name
        verdict = "" if exempt else ("  < 40 us" if us < 40 else "  >= 40 us (over target)")
        line = f"    {name:42s}: {us:8.1f} us/call  {us / base:5.2f}x baseline{verdict}"
        print(line)
        if "MOVER" in name:
            ref = limits_big if exempt else limits_small
            print(f"      vs scipy binomtest exact limits of both arms (no p) {ref:8.1f} us/call: "
                  f"{us / ref:5.2f}x")


if __name__ == "__main__":
    bench_planner_single()
    print()
    bench_planner(50 if TINY else 1000)
    print()
    bench_analysis(50_000 if TINY else 5_000_000)
    print()
    bench_per_call()
