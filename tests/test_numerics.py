"""The numerical routines the strategies use (`planner.strategies.numerics`) against scipy's, which the
calibration fits still use."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import binom, poisson

from planner.strategies import numerics
from planner.strategies.numerics import binom_ppf, bracketed_root, poisson_ppf, quantile, sorted_unique

Q = np.random.default_rng(0).random(500)


@pytest.mark.parametrize("mean", [0.01, 0.5, 3.0, 17.2, 250.0, 2000.0])
def test_poisson_quantiles_match_scipy(mean: float) -> None:
    np.testing.assert_array_equal(poisson_ppf(Q, mean), poisson.ppf(Q, mean))


@pytest.mark.parametrize(("trials", "p"), [(1, 0.3), (4, 0.5), (8, 0.01), (64, 0.7), (500, 0.2)])
def test_binomial_quantiles_match_scipy(trials: int, p: float) -> None:
    np.testing.assert_array_equal(binom_ppf(Q, trials, p), binom.ppf(Q, trials, p))


def test_poisson_means_broadcast() -> None:
    means = np.linspace(0.0, 40.0, len(Q))
    np.testing.assert_array_equal(poisson_ppf(Q, means), poisson.ppf(Q, means))


def test_binomial_arguments_broadcast() -> None:
    shares = np.linspace(0.0, 1.0, len(Q))
    np.testing.assert_array_equal(binom_ppf(Q, 12, shares), binom.ppf(Q, 12, shares))


def test_degenerate_distributions() -> None:
    assert poisson_ppf([0.5], 0.0).tolist() == [0.0]
    assert binom_ppf([0.5], 8, 0.0).tolist() == [0.0]
    assert binom_ppf([0.5], 8, 1.0).tolist() == [8.0]


@pytest.mark.parametrize(
    ("f", "low", "high"),
    [(lambda x: x**3 - 2 * x - 5, 2.0, 3.0), (lambda x: np.exp(x) - 10, 0.0, 5.0), (lambda x: 1e-6 - x, 0.0, 1.0)],
)
def test_root_matches_brent(f, low: float, high: float) -> None:  # type: ignore[no-untyped-def]
    assert bracketed_root(f, low, high, xtol=1e-12) == pytest.approx(brentq(f, low, high, xtol=1e-12), abs=1e-11)


def test_root_needs_a_sign_change() -> None:
    with pytest.raises(ValueError, match="no sign change"):
        bracketed_root(lambda x: x + 1, 0.0, 1.0, xtol=1e-9)


SAMPLES = [
    np.random.default_rng(1).integers(1, 20_000, 997),  # request lengths: integers
    np.random.default_rng(2).lognormal(5.0, 1.5, 1000),
    np.random.default_rng(3).exponential(0.3, 2),
    np.round(np.random.default_rng(4).random(50) * 4),  # ties
    np.array([7.0]),
]


@pytest.mark.parametrize("q", [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0, 1 - 0.01 / 0.37])
def test_quantile_is_numpys(q: float) -> None:
    """The same float as np.quantile's default method, not merely close: plans print it."""
    for values in SAMPLES:
        assert quantile(values, q) == float(np.quantile(values, q))
        assert quantile(list(values), q) == float(np.quantile(values, q))


def test_percentile_is_quantile_of_a_hundredth() -> None:
    for values in SAMPLES:
        for p in (90, 99):
            assert quantile(values, p / 100) == float(np.percentile(values, p))


def test_quantile_of_nan_is_nan() -> None:
    assert np.isnan(quantile(np.array([1.0, np.nan, 3.0]), 0.1))


def test_sorted_unique_is_numpys() -> None:
    for values in SAMPLES:
        np.testing.assert_array_equal(sorted_unique(values), np.unique(values))


class TestWeibull:
    @pytest.mark.parametrize("scv", [1e-4, 0.05, 0.3, 1.0, 2.5, 20.0])
    def test_two_moments(self, scv: float) -> None:
        """Mean 1 and the asked scv, from the Weibull's moments E[X^n] = lambda^n Gamma(1 + n / k)."""
        from scipy.stats import weibull_min

        shape, scale = numerics.weibull_for_scv(scv)
        mean, var = weibull_min.stats(shape, scale=scale, moments="mv")
        assert float(mean) == pytest.approx(1.0, rel=1e-9)
        assert float(var) == pytest.approx(scv, rel=1e-6)

    def test_exponential_at_scv_one(self) -> None:
        shape, scale = numerics.weibull_for_scv(1.0)
        assert (shape, scale) == (pytest.approx(1.0), pytest.approx(1.0))
