"""Bayesian readout of a relative lift: chance to beat control, expected loss, credible interval.

Gaussian approximation as in GrowthBook's Bayesian engine (docs "Statistical Details",
Bayesian): the likelihood of the relative lift theta is N(lift, se^2), with lift and se the
delta-method estimate and standard error of any core.stats test. Prior on theta:

* ``"flat"`` (default): improper uniform prior, so the posterior is N(lift, se^2);
* ``"gaussian"``: N(prior_mean, prior_sd^2), giving the conjugate posterior with precision
  1/se^2 + 1/prior_sd^2 and mean (lift/se^2 + prior_mean/prior_sd^2) / precision.

With posterior N(mu, s^2) and phi / Phi the standard normal density / CDF:

* chance to beat control = P(theta > 0) = Phi(mu/s) (P(theta < 0) when lower is better);
* expected loss (risk) of shipping = E[max(0, -theta)] = s phi(mu/s) - mu Phi(-mu/s), the
  lift given up if the treatment is in fact worse; of not shipping = E[max(0, theta)] =
  s phi(mu/s) + mu Phi(mu/s) (signs swapped when lower is better), in relative-lift units;
* credible interval: the equal-tailed mu -/+ z_{1-alpha/2} s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import special

from core.stats import _effects
from core.stats import _validation as v
from core.types import PriorKind

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class BayesianReadout:
    """Posterior of the relative lift (module docstring); losses are in relative-lift units."""

    posterior_mean: float
    posterior_sd: float
    chance_to_beat_control: float
    expected_loss_ship: float
    expected_loss_dont_ship: float
    ci_low: float
    ci_high: float
    alpha: float
    higher_is_better: bool
    prior: PriorKind
    prior_mean: float | None
    prior_sd: float | None


def bayesian_readout(
    lift: float,
    lift_se: float,
    *,
    alpha: float = 0.05,
    higher_is_better: bool = True,
    prior_mean: float | None = None,
    prior_sd: float | None = None,
) -> BayesianReadout:
    """Bayesian readout of a relative lift from its estimate and standard error.

    Args:
        lift: estimated relative lift (treatment / control - 1), finite, e.g. ``result.lift``.
        lift_se: its standard error, finite and > 0, e.g. ``result.lift_se``.
        alpha: the credible interval has probability 1 - alpha, alpha in (0, 1).
        higher_is_better: direction of the metric; chance to beat control and the two losses
            are taken in the direction that is good for the metric.
        prior_mean, prior_sd: a Gaussian prior on the relative lift (both, prior_sd > 0);
            neither for the improper flat prior (the default).

    Returns:
        :class:`BayesianReadout` (formulas in the module docstring).
    """
    if not (_effects.is_number(lift) and math.isfinite(float(lift))):
        raise ValueError(
            f"lift must be a finite relative lift (got {lift!r}); it is undefined when the "
            f"control mean is 0"
        )
    if not (_effects.is_number(lift_se) and math.isfinite(float(lift_se)) and lift_se > 0):
        raise ValueError(
            f"lift_se must be a positive, finite standard error (got {lift_se!r}); with no "
            f"variance in either arm there is nothing to infer"
        )
    v.check_alpha(alpha)
    if (prior_mean is None) != (prior_sd is None):
        raise ValueError(
            "a Gaussian prior needs both prior_mean and prior_sd (relative lift, e.g. 0 and "
            "0.1); give neither for the flat prior"
        )
    lift, se = float(lift), float(lift_se)
    if prior_mean is None or prior_sd is None:
        kind: PriorKind = "flat"
        mu, s = lift, se
    else:
        if not (_effects.is_number(prior_mean) and math.isfinite(float(prior_mean))):
            raise ValueError(f"prior_mean must be a finite relative lift (got {prior_mean!r})")
        if not (_effects.is_number(prior_sd) and math.isfinite(float(prior_sd)) and prior_sd > 0):
            raise ValueError(f"prior_sd must be positive and finite (got {prior_sd!r})")
        kind = "gaussian"
        w_data, w_prior = 1.0 / (se * se), 1.0 / (float(prior_sd) ** 2)
        precision = w_data + w_prior
        mu = (lift * w_data + float(prior_mean) * w_prior) / precision
        s = 1.0 / math.sqrt(precision)
    zeta = mu / s
    density = s * _INV_SQRT_2PI * math.exp(-0.5 * zeta * zeta)
    gain = density + mu * float(special.ndtr(zeta))  # E[max(0, theta)]
    loss = density - mu * float(special.ndtr(-zeta))  # E[max(0, -theta)]
    p_up = float(special.ndtr(zeta))
    q = float(special.ndtri(1.0 - float(alpha) / 2.0))
    hib = bool(higher_is_better)
    return BayesianReadout(
        posterior_mean=mu,
        posterior_sd=s,
        chance_to_beat_control=p_up if hib else float(special.ndtr(-zeta)),
        expected_loss_ship=loss if hib else gain,
        expected_loss_dont_ship=gain if hib else loss,
        ci_low=mu - q * s,
        ci_high=mu + q * s,
        alpha=float(alpha),
        higher_is_better=hib,
        prior=kind,
        prior_mean=None if prior_mean is None else float(prior_mean),
        prior_sd=None if prior_sd is None else float(prior_sd),
    )


def bayesian_readout_from_result(result: Any, **kwargs: Any) -> BayesianReadout:
    """:func:`bayesian_readout` on any core.stats test result's ``lift`` and ``lift_se``.

    Args:
        result: a Welch, CUPED, proportion or ratio test result.
        **kwargs: ``alpha``, ``higher_is_better``, ``prior_mean``, ``prior_sd``.
    """
    return bayesian_readout(result.lift, result.lift_se, **kwargs)
