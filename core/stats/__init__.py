"""ExperimentOS statistical engine: pure numpy/scipy, no IO.

Tests (fixed-horizon or always-valid sequential) for means (Welch, CUPED), proportions (Wald z;
MOVER intervals from exact Clopper–Pearson limits for small counts), ratio metrics (delta
method) and quantile metrics (the order-statistic interval, :class:`QuantileStats`);
regression adjustment on several covariates (Lin 2013) and post-stratification (Miratrix
et al. 2013) for means, proportions and ratios; a Bayesian readout of the relative lift;
sufficient statistics (:class:`MetricStats` is the one record of a metric's sums that the
rest of ExperimentOS stores and reads; :class:`QuantileStats` its sibling for quantiles,
which do not add up), the planner, sample-ratio-mismatch checks, multiple-comparison
corrections and the top-N grouping of segment slices. Imports only numpy, scipy, the
standard library and :mod:`core.types`.

Every two-sample result (WelchTestResult, CupedTestResult, ProportionTestResult,
RatioTestResult, QuantileTestResult) is a :class:`TwoSampleResult`: ``control_mean``,
``treatment_mean``, ``n_c``,
``n_t``, ``diff``, ``diff_se``, ``diff_ci_low``, ``diff_ci_high``, ``p_value``, ``significant``
(difference), ``lift``, ``lift_se``, ``lift_ci_low``, ``lift_ci_high``, ``lift_p_value``,
``lift_significant`` (relative lift), ``statistic``, ``alpha``, ``alternative``, ``sequential``,
``tuning_n``, ``margin``, ``diff_null``, ``lift_null`` and ``method`` (a
:data:`core.types.TestMethod`). Each interval excludes its null exactly when its own p-value
is below alpha; one-sided alternatives get one-sided intervals (an infinite end).
"""

from core.stats import sequential
from core.stats._validation import InsufficientDataError
from core.stats.bayesian import BayesianReadout, bayesian_readout, bayesian_readout_from_result
from core.stats.corrections import adjust_pvalues
from core.stats.covariates import CovariateSums, covariate_sums
from core.stats.cuped import (
    CupedAdjustment,
    CupedTestResult,
    cuped_adjust,
    welch_ttest_cuped,
)
from core.stats.metric_stats import EMPTY_STATS, MetricStats, unit_metric_stats
from core.stats.planner import (
    BudgetExceeded,
    duration_days,
    mde_mean,
    mde_proportion,
    power_mean,
    power_proportion,
    sample_size_mean,
    sample_size_proportion,
    time_budget,
)
from core.stats.proportion import (
    EXACT_BELOW,
    ProportionTestResult,
    proportion_ztest,
    proportion_ztest_from_stats,
)
from core.stats.quantile import (
    QuantileStats,
    QuantileTestResult,
    order_statistic_index,
    quantile_levels,
    quantile_stats,
    quantile_test,
)
from core.stats.ratio import RatioStats, RatioTestResult, ratio_stats, ratio_test
from core.stats.regression import (
    AdjustedTestResult,
    RegressionAdjustment,
    post_strata,
    post_stratified_test,
    regression_adjust,
    regression_adjusted_test,
)
from core.stats.segments import (
    OTHER,
    EffectDifferenceResult,
    effect_difference_test,
    top_n_groups,
)
from core.stats.srm import (
    DEFAULT_CONCENTRATION,
    SequentialSrmResult,
    SrmResult,
    dirichlet_multinomial_log_bayes_factor,
    sequential_srm_test,
    srm_test,
)
from core.stats.sufficient import (
    CovariateStats,
    SufficientStats,
    covariate_stats,
    sufficient_stats,
)
from core.stats.two_sample import TwoSampleResult
from core.stats.welch import WelchTestResult, welch_ttest, welch_ttest_from_stats

__all__ = [
    "AdjustedTestResult",
    "CovariateSums",
    "RegressionAdjustment",
    "covariate_sums",
    "post_strata",
    "post_stratified_test",
    "regression_adjust",
    "regression_adjusted_test",
    "unit_metric_stats",
    "DEFAULT_CONCENTRATION",
    "EMPTY_STATS",
    "EXACT_BELOW",
    "OTHER",
    "BayesianReadout",
    "BudgetExceeded",
    "CovariateStats",
    "CupedAdjustment",
    "CupedTestResult",
    "EffectDifferenceResult",
    "InsufficientDataError",
    "MetricStats",
    "ProportionTestResult",
    "QuantileStats",
    "QuantileTestResult",
    "RatioStats",
    "RatioTestResult",
    "SequentialSrmResult",
    "SrmResult",
    "SufficientStats",
    "TwoSampleResult",
    "WelchTestResult",
    "adjust_pvalues",
    "bayesian_readout",
    "bayesian_readout_from_result",
    "covariate_stats",
    "cuped_adjust",
    "dirichlet_multinomial_log_bayes_factor",
    "duration_days",
    "effect_difference_test",
    "mde_mean",
    "mde_proportion",
    "order_statistic_index",
    "power_mean",
    "power_proportion",
    "proportion_ztest",
    "proportion_ztest_from_stats",
    "quantile_levels",
    "quantile_stats",
    "quantile_test",
    "ratio_stats",
    "ratio_test",
    "sample_size_mean",
    "sample_size_proportion",
    "sequential",
    "sequential_srm_test",
    "srm_test",
    "sufficient_stats",
    "time_budget",
    "top_n_groups",
    "welch_ttest",
    "welch_ttest_cuped",
    "welch_ttest_from_stats",
]
