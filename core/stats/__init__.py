"""ExperimentOS statistical engine: pure numpy/scipy, no IO.

Tests (fixed-horizon or always-valid sequential), sufficient statistics, CUPED, the planner,
sample-ratio-mismatch checks and multiple-comparison corrections. Imports only numpy, scipy,
the standard library and :mod:`core.types`.
"""

from core.stats import sequential
from core.stats.corrections import adjust_pvalues
from core.stats.cuped import (
    CupedAdjustment,
    CupedTestResult,
    cuped_adjust,
    welch_ttest_cuped,
)
from core.stats.planner import (
    duration_days,
    mde_mean,
    mde_proportion,
    power_mean,
    power_proportion,
    sample_size_mean,
    sample_size_proportion,
)
from core.stats.proportion import (
    ProportionTestResult,
    proportion_ztest,
    proportion_ztest_from_stats,
)
from core.stats.srm import SrmResult, srm_test
from core.stats.sufficient import (
    CovariateStats,
    SufficientStats,
    covariate_stats,
    sufficient_stats,
)
from core.stats.welch import WelchTestResult, welch_ttest, welch_ttest_from_stats

__all__ = [
    "CovariateStats",
    "CupedAdjustment",
    "CupedTestResult",
    "ProportionTestResult",
    "SrmResult",
    "SufficientStats",
    "WelchTestResult",
    "adjust_pvalues",
    "covariate_stats",
    "cuped_adjust",
    "duration_days",
    "mde_mean",
    "mde_proportion",
    "power_mean",
    "power_proportion",
    "proportion_ztest",
    "proportion_ztest_from_stats",
    "sample_size_mean",
    "sample_size_proportion",
    "sequential",
    "srm_test",
    "sufficient_stats",
    "welch_ttest",
    "welch_ttest_cuped",
    "welch_ttest_from_stats",
]
