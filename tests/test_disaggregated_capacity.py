"""The prefill side of the disaggregated capacity (planner.strategies.disaggregated): prompts packed FCFS under
the engine's token budget, stopping at the first that does not fit, against hand-computed packings and the
simulator's prefill pool."""

from __future__ import annotations

import pytest

from planner.comparison import build_context
from planner.cost.ops import BatchShape
from planner.sim import offline
from planner.sim.policy import Role
from planner.sim.setup import PoolLayout, sim_pools
from planner.sim.simulate import simulate_pools
from planner.specs.catalog import load_catalog
from planner.specs.workload import Workload
from planner.strategies import get_strategy
from planner.strategies.continuous import packed_prefill_iteration
from planner.strategies.disaggregated import Disaggregated, _stage_s, prefill_capacity_req_s


class TestPackedPrefillIteration:
    def test_one_length_fills_the_budget_with_whole_prompts(self) -> None:
        """1,000-token prompts under 8,192 tokens: 8,192 // 1,000 = 8 prompts, 8,000 tokens and
        8 x 1,000 x 1,001 / 2 = 4,004,000 causal pairs every iteration."""
        shape = packed_prefill_iteration((1000,), 8192)
        assert (shape.prefill_seqs, shape.prefill_tokens, shape.prefill_attn_pairs) == (8.0, 8000.0, 4_004_000.0)

    def test_the_prompt_that_does_not_fit_opens_the_next_iteration(self) -> None:
        """Prompts of 100 or 300 tokens, equally likely, under 400 tokens; the prompt that does not fit opens
        the next iteration (a Markov chain on it).
        Opened by 100: 100,100,100 (1/8, 4 prompts, 400 tokens; next 100 or 300), 100,100 then 300 (1/8, 3, 300;
        next 300), 100 then 300 (1/4, 2, 200; next 300), 300 (1/2, 2, 400; next 100 or 300): next 100 with
        probability 1/16 + 1/4 = 5/16, E[k] = 4/8 + 3/8 + 2/4 + 2/2 = 2.375, E[tokens] = 337.5.
        Opened by 300: 100 (1/2, 2 prompts, 400 tokens; next 100 or 300), 300 (1/2, 1, 300; next 300): next 100
        with probability 1/4, E[k] = 1.5, E[tokens] = 350.
        Stationary: P(opened by 100) = (1/4) / (1/4 + 11/16) = 4/15, so E[k] = 4/15 x 2.375 + 11/15 x 1.5 = 26/15
        and E[tokens] = 4/15 x 337.5 + 11/15 x 350 = 5,200/15 (mean-prompt packing: 400 // 200 = 2 prompts of
        400 tokens). The packing is drawn (PACKED_ITERATIONS iterations): within 1%."""
        shape = packed_prefill_iteration((100, 300), 400)
        assert shape.prefill_seqs == pytest.approx(26 / 15, rel=0.01)
        assert shape.prefill_tokens == pytest.approx(5200 / 15, rel=0.01)


class TestPrefillCapacityAgainstTheSimulator:
    def test_sharegpt_prefill_pool_rate(self) -> None:
        """Llama-3.1-8B TP1 prefill instances on H100 (TensorRT-LLM budget 8,192 tokens), ShareGPT prompts: the
        simulator's prefill pool (offline: prompts always queued until its last) finishes prompts per second of
        its busy time at the analytic rate within 1%; packing budget // E[I] prompts of E[I] tokens claims about
        4% more."""
        ctx = build_context(
            load_catalog(), "llama-3.1-8b", "8xh100", Workload.preset("sharegpt"), "bf16", None, None, None, None
        )
        strategy = get_strategy("disaggregated")
        assert isinstance(strategy, Disaggregated)
        prefill = strategy.prefill_deployment(ctx, 1, 1)
        analytic_req_s = 2 * prefill_capacity_req_s(prefill, ctx.workload.input_lens)
        mean_in = round(ctx.workload.mean_input_len)
        at_mean = prefill.engine.max_num_tokens // mean_in
        at_mean_req_s = 2 * at_mean / _stage_s(prefill, BatchShape.prefill(mean_in, at_mean))
        layouts = [PoolLayout(Role.prefill, 1, 1, 2), PoolLayout(Role.decode, 1, 1, 6)]
        pools, transfer = sim_pools(ctx, "disaggregated", None, layouts, {"placement": "in-node"})
        requests = 20000
        result = simulate_pools(pools, offline(requests, ctx.workload), transfer)
        simulated_req_s = requests / (result.busy.prefill_s / 2)  # per second of a prefill instance's busy time
        assert analytic_req_s == pytest.approx(simulated_req_s, rel=0.01)
        assert at_mean_req_s > 1.03 * simulated_req_s
