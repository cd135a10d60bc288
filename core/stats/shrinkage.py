"""Empirical-Bayes shrinkage of many experiments' effects toward the portfolio's mean.

Picking the experiments that won (significant, shipped) and reading their estimated lifts as
their true effects overstates what they bring: the winner's curse (Lee & Shen 2018, "Winner's
Curse: Bias Estimation for Total Effects of Features in Online Controlled Experiments", KDD).
The normal-normal model corrects it by shrinking each estimate toward the mean of all of them,
the more the noisier it is (Efron & Morris 1975, "Data analysis using Stein's estimator and its
generalizations", JASA 70):

    y_i | theta_i ~ N(theta_i, s_i^2)   (s_i known: each experiment's standard error)
    theta_i       ~ N(mu, tau^2)         (the portfolio's spread of true effects)

mu and tau^2 are estimated from all the y_i (random-effects meta-analysis):

* tau^2 by DerSimonian & Laird's method of moments (1986, "Meta-analysis in clinical trials",
  Controlled Clinical Trials 7): with w_i = 1 / s_i^2, mu_FE = sum w y / sum w and Cochran's
  Q = sum w (y - mu_FE)^2, tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w));
  or by Paule & Mandel's (1982) generalised Q: the tau^2 >= 0 at which
  sum (y - mu(tau^2))^2 / (s^2 + tau^2) = k - 1 (0 when Q <= k - 1 already).
* mu = sum y / (s^2 + tau^2) / sum 1 / (s^2 + tau^2), with Var(mu) = 1 / sum 1 / (s^2 + tau^2).

Each posterior mean (the EBLUP) is w_i y_i + (1 - w_i) mu with w_i = tau^2 / (tau^2 + s_i^2),
the weight on the experiment's own estimate; tau^2 = 0 (no spread beyond noise) shrinks every
estimate to mu. Its posterior variance, given tau^2 and accounting for the estimated mu, is
w_i s_i^2 + (1 - w_i)^2 Var(mu) (the prediction-error variance of Henderson's mixed-model
equations); errors of two experiments correlate through mu, with covariance
(1 - w_i)(1 - w_j) Var(mu), which :func:`shrunk_total` uses for the variance of a sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from core.types import SHRINKAGE_METHODS, ShrinkageMethod

MIN_EXPERIMENTS = 3
"""Below this many estimates the spread tau^2 is not estimated and nothing is shrunk."""

METHOD_NAMES: dict[str, str] = {
    "dersimonian_laird": "normal-normal empirical Bayes, τ² by DerSimonian–Laird",
    "paule_mandel": "normal-normal empirical Bayes, τ² by Paule–Mandel",
}


@dataclass(frozen=True)
class EmpiricalBayesShrinkage:
    """Shrunk estimates of k experiments (module docstring), in the order given."""

    estimates: tuple[float, ...]
    standard_errors: tuple[float, ...]
    shrunk: tuple[float, ...]
    """Posterior means w_i y_i + (1 - w_i) mu; the raw estimates when not ``applied``."""
    posterior_sd: tuple[float, ...]
    """sqrt(w_i s_i^2 + (1 - w_i)^2 Var(mu)); the standard errors when not ``applied``."""
    weights: tuple[float, ...]
    """w_i = tau^2 / (tau^2 + s_i^2), the weight on the experiment's own estimate (1 = none
    shrunk)."""
    prior_mean: float
    """mu, the random-effects mean (nan when not ``applied``)."""
    prior_mean_se: float
    tau2: float
    """Between-experiment variance of the true effects (nan when not ``applied``)."""
    q_statistic: float
    """Cochran's Q of the estimates around their fixed-effect mean (nan for k < 2)."""
    method: ShrinkageMethod
    applied: bool
    reason: str | None
    """Why nothing was shrunk (too few experiments), else None."""

    @property
    def k(self) -> int:
        return len(self.estimates)

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2) if math.isfinite(self.tau2) else math.nan

    @property
    def method_name(self) -> str:
        return METHOD_NAMES[self.method]


@dataclass(frozen=True)
class ShrunkTotal:
    """The sum and mean of some experiments' effects, raw and shrunk."""

    count: int
    raw_sum: float
    raw_sum_se: float
    """sqrt(sum s_i^2): the raw estimates are independent."""
    shrunk_sum: float
    shrunk_sum_sd: float
    """Posterior SD of the sum, with the covariance the shared mu brings."""

    @property
    def raw_mean(self) -> float:
        return self.raw_sum / self.count if self.count else math.nan

    @property
    def shrunk_mean(self) -> float:
        return self.shrunk_sum / self.count if self.count else math.nan


def _as_vector(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers (got {values!r})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, one value per experiment "
                         f"(got shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must all be finite numbers (got {values!r}); leave out "
                         "experiments without a result")
    return arr


def _dersimonian_laird(y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / v
    mu_fe = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - mu_fe) ** 2))
    denominator = float(np.sum(w) - np.sum(w * w) / np.sum(w))
    return max(0.0, (q - (len(y) - 1)) / denominator)


def _generalised_q(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w * (y - mu) ** 2))


def _paule_mandel(y: np.ndarray, v: np.ndarray) -> float:
    k = len(y)
    if _generalised_q(0.0, y, v) <= k - 1:
        return 0.0
    # Q(tau2) falls to 0 as tau2 grows; the sample variance times k bounds the root from above
    upper = max(float(np.var(y, ddof=1)) * k, float(np.max(v)))
    while _generalised_q(upper, y, v) > k - 1:
        upper *= 2.0
    return float(optimize.brentq(lambda t: _generalised_q(t, y, v) - (k - 1), 0.0, upper,
                                 xtol=1e-14, rtol=1e-12))


def shrink_estimates(
    estimates: Sequence[float] | np.ndarray,
    standard_errors: Sequence[float] | np.ndarray,
    *,
    method: ShrinkageMethod = "dersimonian_laird",
) -> EmpiricalBayesShrinkage:
    """Normal-normal empirical-Bayes shrinkage of k estimates toward their common mean.

    Args:
        estimates: one effect estimate per experiment (e.g. relative lifts, 0.05 = +5 %), finite.
            Give the whole population (every completed experiment, not only the winners):
            shrinkage corrects selection only when the prior is estimated before selecting.
        standard_errors: their standard errors, same length, finite and > 0.
        method: how tau^2 is estimated, ``"dersimonian_laird"`` (method of moments, the
            default) or ``"paule_mandel"`` (generalised Q).

    Returns:
        :class:`EmpiricalBayesShrinkage`. With fewer than :data:`MIN_EXPERIMENTS` estimates
        nothing is shrunk (``applied`` False, ``reason`` says why): the estimates are returned
        as they are. Formulas in the module docstring.
    """
    if method not in SHRINKAGE_METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, SHRINKAGE_METHODS))} "
                         f"(got {method!r})")
    y = _as_vector(estimates, "estimates")
    s = _as_vector(standard_errors, "standard_errors")
    if len(y) != len(s):
        raise ValueError(f"estimates and standard_errors must have the same length, one pair "
                         f"per experiment (got {len(y)} and {len(s)})")
    if np.any(s <= 0):
        raise ValueError(f"standard_errors must all be > 0 (got {standard_errors!r}); an "
                         "estimate without sampling error cannot be weighed")
    v = s * s
    k = len(y)
    q = math.nan
    if k >= 2:
        w_fe = 1.0 / v
        q = float(np.sum(w_fe * (y - np.sum(w_fe * y) / np.sum(w_fe)) ** 2))
    if k < MIN_EXPERIMENTS:
        return EmpiricalBayesShrinkage(
            estimates=tuple(map(float, y)), standard_errors=tuple(map(float, s)),
            shrunk=tuple(map(float, y)), posterior_sd=tuple(map(float, s)),
            weights=(1.0,) * k, prior_mean=math.nan, prior_mean_se=math.nan, tau2=math.nan,
            q_statistic=q, method=method, applied=False,
            reason=(f"not shrunk: {k} experiment{'' if k == 1 else 's'} with a result, and the "
                    f"spread between experiments needs at least {MIN_EXPERIMENTS} to be "
                    "estimated; the raw lifts are shown"),
        )
    tau2 = _dersimonian_laird(y, v) if method == "dersimonian_laird" else _paule_mandel(y, v)
    w_re = 1.0 / (v + tau2)
    mu = float(np.sum(w_re * y) / np.sum(w_re))
    var_mu = float(1.0 / np.sum(w_re))
    weight = tau2 / (tau2 + v)
    shrunk = weight * y + (1.0 - weight) * mu
    posterior_var = weight * v + (1.0 - weight) ** 2 * var_mu
    return EmpiricalBayesShrinkage(
        estimates=tuple(map(float, y)), standard_errors=tuple(map(float, s)),
        shrunk=tuple(map(float, shrunk)), posterior_sd=tuple(map(float, np.sqrt(posterior_var))),
        weights=tuple(map(float, weight)), prior_mean=mu, prior_mean_se=math.sqrt(var_mu),
        tau2=float(tau2), q_statistic=q, method=method, applied=True, reason=None,
    )


def shrunk_total(result: EmpiricalBayesShrinkage, selected: Sequence[bool]) -> ShrunkTotal:
    """Sum of the selected experiments' raw and shrunk effects (e.g. the shipped ones).

    Args:
        result: from :func:`shrink_estimates` over the whole population.
        selected: one flag per experiment of ``result``, True for those summed.

    Returns:
        :class:`ShrunkTotal`. The posterior variance of the shrunk sum is
        sum_i w_i s_i^2 + (sum_i (1 - w_i))^2 Var(mu) over the selected i (errors share mu);
        without shrinkage it is the raw sum's variance, sum s_i^2.
    """
    flags = np.asarray(selected)
    if flags.size == 0:
        flags = flags.astype(bool)
    if flags.ndim != 1 or len(flags) != result.k or flags.dtype != bool:
        raise ValueError(f"selected must be {result.k} True/False flags, one per experiment "
                         f"(got {selected!r})")
    y, s = np.asarray(result.estimates), np.asarray(result.standard_errors)
    shrunk, w = np.asarray(result.shrunk), np.asarray(result.weights)
    raw_var = float(np.sum(s[flags] ** 2))
    if result.applied:
        var = float(np.sum(w[flags] * s[flags] ** 2)
                    + np.sum(1.0 - w[flags]) ** 2 * result.prior_mean_se ** 2)
    else:
        var = raw_var
    return ShrunkTotal(
        count=int(np.sum(flags)), raw_sum=float(np.sum(y[flags])),
        raw_sum_se=math.sqrt(raw_var), shrunk_sum=float(np.sum(shrunk[flags])),
        shrunk_sum_sd=math.sqrt(var),
    )
