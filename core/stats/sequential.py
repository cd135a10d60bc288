"""Always-valid (anytime) inference: the asymptotic confidence sequence GrowthBook uses.

Method
------
Asymptotic confidence sequences (Waudby-Smith, Arnold, Wu, Howard, Ramdas, "Time-uniform central
limit theory and asymptotic confidence sequences", arXiv:2103.06476)
with the two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2)),
in the form GrowthBook documents for its frequentist engine (docs "Sequential Testing"):

    half-width = sigma_N * sqrt( 2 (N rho^2 + 1) / (N^2 rho^2) * log( sqrt(N rho^2 + 1) / alpha ) )
    rho        = sqrt( (-2 log(alpha) + log(-2 log(alpha) + 1)) / N* )

where N is the total number of units in the comparison (n_c + n_t), sigma_N^2 = N * Var(estimate)
and N* is the tuning total at which the sequence is tightest. Writing the half-width as
``multiplier * SE`` with SE = sqrt(Var(estimate)) gives

    multiplier^2 = 2 (N rho^2 + 1) / (N rho^2) * log( sqrt(N rho^2 + 1) / alpha ).

Why this one and not the mixture SPRT (Johari et al. 2017): it needs only the estimate and its
standard error, so the same code serves absolute and relative effects and CUPED-adjusted means;
it reduces to a closed-form interval; and it is what GrowthBook ships, so results can be checked
against a widely used implementation.

Always-valid p-value: the smallest alpha' at which the sequence (rho held at its value tuned for
the nominal alpha, so that the mixture stays fixed and Ville's inequality applies) excludes 0.
Solving ``|z| = multiplier(alpha')`` for alpha' gives the closed form

    p = min(1, sqrt(N rho^2 + 1) * exp( -z^2 * N rho^2 / (2 (N rho^2 + 1)) )),

so ``p < alpha`` exactly when the confidence sequence at level alpha excludes 0.

One-sided p-value: the two-sided mixture martingale M equals (M+ + M-)/2, with M+ the half-normal
mixture (itself a test martingale) and M- <= 1 whenever the running sum is positive; hence
M >= 1/a with a positive sum implies M+ >= 2/a - 1, and Ville's inequality bounds that event by
a/(2 - a). The one-sided always-valid p-value is therefore p2/(2 - p2) when the estimate points
the alternative's way (p2 being the two-sided value above) and 1 otherwise.

One-sided confidence sequence: inverting the one-sided p-value, the bound (e.g. the lower one
for "greater") is ``estimate - multiplier(alpha') * SE`` with alpha' = 2 alpha / (1 + alpha)
(so that alpha' / (2 - alpha') = alpha) and rho still tuned for alpha; hence the one-sided bound
excludes the null exactly when the one-sided always-valid p-value is below alpha.

Validity at every look requires N* fixed in advance: the tests require ``tuning_n`` (the
planned sample size per variant) whenever ``sequential=True``; tuning to the current sample
at each look is not valid across looks.
"""

from __future__ import annotations

import math

from core.types import Alternative


def rho(alpha: float, tuning_total: float) -> float:
    """Mixture parameter making the boundary tightest at ``tuning_total`` units (GrowthBook)."""
    la = -2.0 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1.0)) / tuning_total)


def cs_multiplier(
    n_total: float, tuning_total: float, alpha: float, one_sided: bool = False
) -> float:
    """Half-width of the confidence sequence in units of the estimate's standard error.

    Args:
        n_total: units in the comparison so far (n_c + n_t), > 0.
        tuning_total: total units at which the sequence is tightest (2 * tuning_n), > 0.
        alpha: level of the sequence, in (0, 1).
        one_sided: the multiplier of a one-sided bound at level alpha (evaluated at
            alpha' = 2 alpha / (1 + alpha) with rho tuned for alpha; module docstring).

    Returns:
        The multiplier m with CI = estimate +/- m * SE (compare 1.96 for a fixed 95% interval),
        or the one-sided bound estimate - m * SE ("greater") / estimate + m * SE ("less").
    """
    nr2 = n_total * rho(alpha, tuning_total) ** 2
    level = 2.0 * alpha / (1.0 + alpha) if one_sided else alpha
    return math.sqrt(2.0 * (nr2 + 1.0) / nr2 * math.log(math.sqrt(nr2 + 1.0) / level))


def cs_p_value(
    z: float, n_total: float, tuning_total: float, alpha: float, alternative: Alternative
) -> float:
    """Always-valid p-value for the z-score ``estimate / SE`` (see the module docstring).

    Args:
        z: estimate divided by its standard error; +/-inf allowed (returns 0 or 1).
        n_total: units so far (n_c + n_t).
        tuning_total: 2 * tuning_n.
        alpha: nominal level used to tune rho.
        alternative: "two-sided", "greater" (treatment > control) or "less".
    """
    if math.isnan(z):
        return 1.0
    nr2 = n_total * rho(alpha, tuning_total) ** 2
    log_p = 0.5 * math.log(nr2 + 1.0) - z * z * nr2 / (2.0 * (nr2 + 1.0))
    p2 = min(1.0, math.exp(log_p)) if math.isfinite(log_p) else 0.0
    if alternative == "two-sided":
        return p2
    pointing = z > 0 if alternative == "greater" else z < 0
    return p2 / (2.0 - p2) if pointing else 1.0
