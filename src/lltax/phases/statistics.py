"""The statistics a phase decision rests on: a cell's estimate from its samples and what an
independent replicate would find, the optimizer's stability limit, the grid-relative two-means
split (an explicit option only), and the seed/pair reductions stored in phases.nc."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A cell mean with its spread: the finite samples' mean, std (ddof=1) and count."""

    mean: float
    std: float
    count: int

    @classmethod
    def of(cls, samples: np.ndarray) -> Estimate:
        samples = np.asarray(samples, dtype=np.float64)
        samples = samples[np.isfinite(samples)]
        count = len(samples)
        if count == 0:
            return cls(math.nan, math.nan, 0)
        return cls(float(samples.mean()), float(samples.std(ddof=1)) if count > 1 else math.nan, count)

    @property
    def known(self) -> bool:
        return self.count > 0

    def replicate_agreement(self, threshold: float) -> float:
        """P(the mean of an independent replicate with as many samples falls on this side of threshold).

        The difference of two independent means of n samples has scale s sqrt(2/n); with s
        estimated from n samples it is Student-t with n - 1 degrees of freedom. NaN below 2 samples.
        """
        if self.count < 2 or not math.isfinite(threshold):
            return math.nan
        distance = abs(self.mean - threshold)
        scale = self.std * math.sqrt(2.0 / self.count)
        if distance == 0:
            return 0.5
        if scale == 0:
            return 1.0
        return float(stats.t.cdf(distance / scale, df=self.count - 1))

    def replicate_barrier(self, floor: float, significance: float, draws: int = 20000) -> float:
        """P(an independent replicate with as many samples also finds a barrier): its mean below
        -floor AND significantly below 0 (else it would be connected or ``unknown``).

        Posterior predictive under the reference prior p(mu, sigma) ~ 1/sigma for normal
        samples: sigma^2 ~ (n-1) s^2 / chi2(n-1), mu ~ N(mean, sigma^2 / n), then the
        replicate's mean and standard deviation; by Monte Carlo with a fixed seed (so the
        result is reproducible). NaN below 2 samples.
        """
        n = self.count
        if n < 2:
            return math.nan
        if self.std == 0:
            return 1.0 if self.mean < -floor else 0.0
        rng = np.random.default_rng(0)
        sigma = self.std * np.sqrt((n - 1) / rng.chisquare(n - 1, draws))
        mu = rng.normal(self.mean, sigma / math.sqrt(n))
        mean = rng.normal(mu, sigma / math.sqrt(n))  # the replicate's mean, independent of its spread
        std = sigma * np.sqrt(rng.chisquare(n - 1, draws) / (n - 1))
        critical = stats.t.ppf(significance, df=n - 1)
        barrier = (mean < -floor) & (mean / (std / math.sqrt(n)) < critical)
        return float(barrier.mean())

    def p_below_zero(self) -> float:
        """One-sided t-test p-value of H0 "true mean >= 0" (small: significantly below 0). NaN below 2 samples."""
        if self.count < 2:
            return math.nan
        if self.std == 0:
            return 0.0 if self.mean < 0 else 1.0
        return float(stats.t.cdf(self.mean / (self.std / math.sqrt(self.count)), df=self.count - 1))


def stability_limit(learning_rate: float, momentum: float) -> float:
    """2(1 + beta) / eta: the largest curvature heavy-ball SGD with these settings is stable on."""
    return 2.0 * (1.0 + momentum) / learning_rate


def two_means_split(values: np.ndarray) -> tuple[float, float]:
    """Exact 1D two-means (Otsu) split of the finite values.

    Returns
    -------
    (boundary, separability): the midpoint of the two cluster means (every value lies on its
    own cluster's side of it), and the between-cluster share of the total variance (near 1:
    two well-separated groups; near 0: no real split). NaN, NaN with fewer than 2 distinct values.
    """
    values = np.sort(np.asarray(values, dtype=np.float64).ravel())
    values = values[np.isfinite(values)]
    n = len(values)
    if n < 2 or values[0] == values[-1]:
        return math.nan, math.nan
    prefix = np.cumsum(values)[:-1]
    low_count = np.arange(1, n)
    low_mean = prefix / low_count
    high_mean = (values.sum() - prefix) / (n - low_count)
    between = low_count * (n - low_count) * (low_mean - high_mean) ** 2 / n**2
    # A split between equal values is not a split.
    between[values[1:] == values[:-1]] = -1.0
    best = int(np.argmax(between))
    return float((low_mean[best] + high_mean[best]) / 2), float(between[best] / values.var())


def grid_split(values: np.ndarray, *, log_scale: bool, what: str) -> tuple[float, str]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & ((values > 0) if log_scale else True)]
    boundary, separability = two_means_split(np.log10(values) if log_scale else values)
    threshold = 10.0**boundary if log_scale else boundary
    return (
        threshold,
        f"grid: two-means split of {what} over {len(values)} cells (separability {separability:.2f}); depends on the grid's other cells",
    )


def cell_reductions(dataset: xr.Dataset) -> xr.Dataset:
    """``<var>_mean`` and ``<var>_std`` (ddof=1) over seed or pair of every variable, NaN-skipping."""
    reduced = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells give NaN, as they should
        for name, variable in dataset.data_vars.items():
            over = [d for d in ("seed", "pair") if d in variable.dims]
            if not over:
                continue
            what = "seeds" if over == ["seed"] else "seed pairs"
            for statistic in ("mean", "std"):
                if statistic == "mean":
                    values = variable.mean(over, skipna=True, keep_attrs=True)
                else:
                    values = variable.std(over, skipna=True, ddof=1, keep_attrs=True)
                values.attrs = {
                    "units": variable.attrs.get("units", ""),
                    "long_name": f"{variable.attrs.get('long_name', name)} ({statistic} over {what})",
                }
                reduced[f"{name}_{statistic}"] = values
    return xr.Dataset(reduced)
