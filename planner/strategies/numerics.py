"""Small numerical routines the strategies need, in numpy: a bracketed root finder and a search for its
bracket, the quantiles of the normal, Poisson and binomial distributions and a Weibull fitted to two moments
(importing scipy's would cost the CLI a second of start-up)."""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray


def sorted_unique(values: ArrayLike) -> NDArray[np.float64]:
    """The distinct values, sorted: np.unique of a NaN-free array, without its first call importing numpy.ma
    (tens of milliseconds of the command's start-up)."""
    flat = np.sort(np.ravel(np.asarray(values, dtype=float)))
    keep = np.empty(flat.shape, dtype=bool)
    keep[:1] = True
    keep[1:] = flat[1:] != flat[:-1]
    unique: NDArray[np.float64] = flat[keep]
    return unique


def quantile(values: ArrayLike, q: float) -> float:
    """np.quantile(values, q) with its default (linear) method, without its first call importing numpy.ma: the
    order statistics around position (n - 1) q, interpolated in numpy's own arithmetic, so the result is the
    same float; NaN when any value is NaN. np.percentile(values, p) is quantile(values, p / 100)."""
    flat = np.ravel(np.asarray(values))
    last = flat.size - 1
    index = last * q
    if index >= last:  # numpy takes the last value for both ends, its weight measured from index -1
        low = high = last
        gamma = index + 1
    else:
        low = math.floor(index)
        high = low + 1
        gamma = index - low
    ordered = np.partition(flat, sorted({low, high, last}))
    if flat.dtype.kind in "fc" and np.isnan(ordered[last]):
        return math.nan
    a, b = ordered[low], ordered[high]
    diff = b - a
    return float(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)


def bracketed_root(f: Callable[[float], float], low: float, high: float, xtol: float, max_iter: int = 200) -> float:
    """A root of f in [low, high], where f(low) and f(high) differ in sign, to within `xtol`: regula falsi with
    the Illinois modification (Dowell and Jarratt 1971: superlinear, never slower than about bisection)."""
    f_low, f_high = f(low), f(high)
    if f_low == 0:
        return low
    if f_high == 0:
        return high
    if (f_low > 0) == (f_high > 0):
        raise ValueError(f"no sign change on [{low}, {high}]: f = {f_low}, {f_high}")
    side = 0
    for _ in range(max_iter):
        x = (low * f_high - high * f_low) / (f_high - f_low)
        if not low < x < high:  # rounding pushed the secant outside: bisect
            x = (low + high) / 2
        f_x = f(x)
        if f_x == 0 or high - low <= xtol:
            return x
        if (f_x > 0) == (f_high > 0):
            high, f_high = x, f_x
            if side == -1:
                f_low /= 2  # the same end kept twice: halve its value so the secant moves (Illinois)
            side = -1
        else:
            low, f_low = x, f_x
            if side == 1:
                f_high /= 2
            side = 1
        if high - low <= xtol:
            return (low + high) / 2
    return (low + high) / 2


def upward_bracket(
    f: Callable[[float], float], low: float, start: float, growth: float, max_steps: int
) -> tuple[float, float] | None:
    """A bracket [a, b] of a sign change of f, f(a) > 0 > f(b), searched upwards from `low` (where f > 0): f is
    tried at `start`, then at points `growth` times further each time it is positive; where f is not finite (a
    point past where f is defined) the next try is halfway back to the last positive point. `a` is the last
    point seen positive, so [a, b] holds a root of a continuous f, the first above `low` when f has one root
    there (roots between tried points that f crosses back over are not seen). None when no negative value is
    found within `max_steps` tries."""
    positive, x = low, start
    for _ in range(max_steps):
        value = f(x)
        if value < 0:
            return positive, x
        if math.isfinite(value):
            positive, x = x, x * growth
        else:
            x = (positive + x) / 2
    return None


def normal_ppf(probabilities: ArrayLike) -> NDArray[np.float64]:
    """Standard normal quantiles at `probabilities`, an array of their shape: statistics.NormalDist().inv_cdf
    (Wichura's algorithm AS 241) value by value."""
    inverse = NormalDist().inv_cdf
    flat = np.ravel(np.asarray(probabilities, dtype=float))
    scores = np.array([inverse(float(p)) for p in flat], dtype=float)
    return scores.reshape(np.shape(probabilities))


def _ppf(q: ArrayLike, log_pmf: NDArray[np.float64]) -> NDArray[np.float64]:
    """Smallest k with P(X <= k) >= q, for a distribution on 0..len(log_pmf) - 1 given by its log pmf."""
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max()))
    cdf /= cdf[-1]
    return np.asarray(np.searchsorted(cdf, np.asarray(q, dtype=float) - 1e-12), dtype=float)


def poisson_ppf(q: ArrayLike, mean: ArrayLike) -> NDArray[np.float64]:
    """Quantiles of Poisson(mean), q and mean broadcast together: log pmf(k) = k log(mean) - mean - log k!, built
    up as the running sum of log(mean / k), over k up to mean + 12 sqrt(mean) + 20 (the tail beyond is below
    1e-30)."""
    qs, means = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(mean, dtype=float))
    out = np.zeros(qs.shape)
    for value in sorted_unique(means):
        if value <= 0:
            continue
        k = np.arange(1, int(value + 12 * math.sqrt(value) + 20) + 1)
        log_pmf = np.concatenate([[0.0], np.cumsum(math.log(value) - np.log(k))])  # up to the constant -mean
        where = means == value
        out[where] = _ppf(qs[where], log_pmf)
    return out


def binom_ppf(q: ArrayLike, trials: ArrayLike, p: ArrayLike) -> NDArray[np.float64]:
    """Quantiles of Binomial(trials, p), arguments broadcast together: pmf(k) / pmf(k - 1) = (trials - k + 1) / k
    x p / (1 - p)."""
    qs, ns, ps = np.broadcast_arrays(
        np.asarray(q, dtype=float), np.asarray(trials, dtype=float), np.asarray(p, dtype=float)
    )
    out = np.zeros(qs.shape)
    for n, share in {(float(a), float(b)) for a, b in zip(ns.ravel(), ps.ravel(), strict=True)}:
        where = (ns == n) & (ps == share)
        if share <= 0 or n <= 0:
            continue
        if share >= 1:
            out[where] = n
            continue
        k = np.arange(1, int(n) + 1)
        steps = np.log(n - k + 1) - np.log(k) + math.log(share) - math.log1p(-share)
        out[where] = _ppf(qs[where], np.concatenate([[0.0], np.cumsum(steps)]))
    return out


def weibull_for_scv(scv: float) -> tuple[float, float]:
    """(k, lambda) of the Weibull distribution of mean 1 and squared coefficient of variation `scv`: its moments
    are E[X^n] = lambda^n Gamma(1 + n / k), so scv = Gamma(1 + 2 / k) / Gamma(1 + 1 / k)^2 - 1, which falls
    as k grows (k = 1 is the exponential, scv 1); k by bisection on log k, then lambda = 1 / Gamma(1 + 1 / k)."""

    def excess(log_k: float) -> float:
        k = math.exp(log_k)
        return math.expm1(math.lgamma(1 + 2 / k) - 2 * math.lgamma(1 + 1 / k)) - scv

    log_k = bracketed_root(excess, math.log(0.05), math.log(1e4), xtol=1e-12)
    k = math.exp(log_k)
    return k, math.exp(-math.lgamma(1 + 1 / k))
