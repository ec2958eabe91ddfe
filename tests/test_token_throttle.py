"""The fluid model of gLLM's token throttle (`planner.strategies.token_throttle`): rounds of a prompt, the tokens it
leaves uncomputed, W at a rate, the budget's quantiles, the round of a flow shop of micro-batches and the load a
request meets over its lifetime, against hand-computed literals and the per-micro-batch rule."""

from __future__ import annotations

import numpy as np
import pytest

from planner.strategies import token_throttle
from planner.strategies.token_throttle import (
    ThrottleState,
    budget_quantiles,
    lifetime_rate_cv,
    prompt_rounds,
    prompt_token_sums,
    round_times,
    throttle_state,
)


def rule_rounds(length: float, others: float, minp: float, iterp: float, cap: float) -> int:
    """A prompt's rounds by the per-micro-batch rule, budgets unrounded: chunk = min(left, b(others + left))."""
    left, rounds = length, 0
    while left > 0:
        left -= min(left, min(max((others + left) / iterp, minp), cap))
        rounds += 1
    return rounds


class TestPromptRounds:
    @pytest.mark.parametrize(("others", "cap"), [(0, 2048), (500, 2048), (2000, 2048), (5000, 300), (1500, 100)])
    def test_matches_the_rule_in_every_regime(self, others: float, cap: float) -> None:
        """Budget capped at U (5000 / 8 > 300), geometric, and floored at minp, alone and beside other prompts."""
        lengths = np.rint(np.exp(np.random.default_rng(1).normal(5.5, 1.0, 200)))
        expected = [rule_rounds(float(n), others, 32, 8, cap) for n in lengths]
        assert prompt_rounds(lengths, others, 32, 8, cap).tolist() == expected

    def test_token_sums_of_a_two_chunk_prompt(self) -> None:
        """I = 64 alone: minp regime from 64 down to L* = 32, integral (64^2 - 32^2) / (2 x 32) = 48, plus I / 2 = 32
        (trapezoid half-chunks and the mean remainder L* / 2): 80; squares (64^3 - 32^3) / (3 x 32) = 2389.33 plus
        I^2 / 2 - L*^2 / 4 = 2048 - 256: 4181.33. (The rule's sums are 64 + 32 = 96 and 64^2 + 32^2 = 5120.)"""
        area, area_sq = prompt_token_sums(np.array([64.0]), 0, 32, 8, 2048)
        assert area == pytest.approx(80.0)
        assert area_sq == pytest.approx(4181.333, abs=1e-3)

    def test_token_sums_of_one_chunk_prompts_are_the_prompts(self) -> None:
        area, area_sq = prompt_token_sums(np.array([10.0, 30.0]), 0, 32, 8, 2048)
        assert (area, area_sq) == pytest.approx((20.0, 500.0))  # mean of 10, 30 and of 100, 900


class TestThrottleState:
    def test_short_prompts_at_a_moderate_rate(self) -> None:
        """Prompts of 32 tokens (one round each), R 10/s, T 0.1 s, pp 4: the budget is minp 32, a prompt holds
        the budgets 32 x 0.1 / (4 x 32) = 0.025 s, rho 0.25, M/D/1 wait 0.25 x 0.025 / 1.5 = 4.1667 ms;
        W = R T 32 + R 32 Wq = 32 + 1.3333 = 33.333; var = R T 32^2 + R 32^2 Wq = 1024 + 42.667."""
        state = throttle_state(np.full(10, 32.0), 10.0, 0.1, 4, 32, 8, 2048)
        assert state is not None
        assert state.budget_tokens == 32
        assert state.utilisation == pytest.approx(0.25)
        assert state.wait_s == pytest.approx(0.0041667, abs=1e-7)
        assert state.mean_tokens == pytest.approx(33.333, rel=1e-3)
        assert state.var_tokens == pytest.approx(1066.667, rel=1e-6)

    def test_none_when_the_budgets_cannot_carry_the_prompts(self) -> None:
        """R E[I] T / pp = 10 x 1000 x 0.1 / 4 = 250 tokens a micro-batch against a budget of at most U = 200."""
        assert throttle_state(np.full(10, 1000.0), 10.0, 0.1, 4, 32, 8, 200) is None


class TestBudgetQuantiles:
    @pytest.mark.parametrize(("cap", "expected"), [(2048, 100.0), (50, 50.0)])
    def test_a_steady_w_gives_one_budget(self, cap: float, expected: float) -> None:
        """W = 800 with no variance: b = min(max(800 / 8, 32), U)."""
        budgets = budget_quantiles(ThrottleState(800, 0, 0, 0, 0), 32, 8, cap)
        assert np.all(budgets == expected)

    def test_log_normal_quantiles(self) -> None:
        """W of mean 1000 and cv 1: sigma^2 = ln 2, so the median is 1000 / sqrt(2) = 707.1 (iterp 1, no clip)."""
        (median,) = budget_quantiles(ThrottleState(1000, 1e6, 0, 0, 0), 1e-3, 1, 1e9, (0.5,))
        assert median == pytest.approx(707.107, abs=1e-3)


class TestRound:
    def test_flow_shop_round(self) -> None:
        """Empty step 10, carrying 20 or 40 (two quantiles of W), half the micro-batches carrying, pp 2, one level
        of W: mean step (15 + 25) / 2 = 20; slowest 10 + (10 or 30) x (1 - 0.5^2) = 17.5 or 32.5, mean 25; the
        round 20 + 1 x max(20, 25) = 45."""
        times = round_times(10.0, np.array([20.0, 40.0]), 0.5, 2)
        assert (times.step_s, times.slowest_s, times.mean_s) == pytest.approx((20.0, 25.0, 45.0))

    def test_more_levels_of_w_in_a_round(self) -> None:
        """Two levels: one micro-batch at each, slowest per level 15 or 25; the larger of two draws:
        15 x 0.5^2 + 25 x (1 - 0.5^2) = 22.5, round 42.5."""
        times = round_times(10.0, np.array([20.0, 40.0]), 0.5, 2, levels=2.0)
        assert (times.slowest_s, times.mean_s) == pytest.approx((22.5, 42.5))

    def test_own_round_of_a_slow_micro_batch(self) -> None:
        """A micro-batch slower than the slowest ahead paces its own pass: 50 + 1 x 50."""
        assert round_times(10.0, np.array([20.0, 40.0]), 0.5, 2).own_s(np.array([50.0]))[0] == pytest.approx(100.0)


class TestLifetimeLoad:
    def test_equal_lifetimes(self) -> None:
        """L = S = 3: integral of the overlap^2 is 3^2 x 3 - 3^3 / 3 = 18, cv sqrt(R) = sqrt(18) / (3 x 3) =
        sqrt(2 / 9) = 0.4714; no decode phase: 0."""
        assert lifetime_rate_cv(np.array([3.0, 0.0]), np.array([3.0, 3.0])) == pytest.approx([0.47140, 0.0], abs=1e-5)

    def test_normal_scores_are_fixed_and_centred(self) -> None:
        scores = token_throttle.normal_scores(256, 1)
        assert scores is token_throttle.normal_scores(256, 1)
        assert abs(float(scores.mean())) < 1e-12 and np.percentile(scores, 90) == pytest.approx(1.28, abs=0.02)
