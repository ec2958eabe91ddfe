"""The integer program (`planner.search.ilp`) on tiny instances with a known optimum, infeasible cases, and its
size against the cluster's."""

from __future__ import annotations

from functools import cache

import pytest

from planner.comparison import build_context
from planner.search.ilp import Objective, build_problem, solve
from planner.search.instances import InstanceType, Pool
from planner.specs.catalog import load_catalog
from planner.specs.workload import Workload
from planner.strategies.base import Candidate, Context


@cache
def _ctx() -> Context:
    return build_context(
        load_catalog(), "llama-3.1-8b", "8xh100", Workload.fixed(512, 128), "bf16", None, None, None, None
    )


def serve(name: str, gpus: int, rate: float, capacity: float | None = None) -> InstanceType:
    """A single-pool type of `gpus` GPUs whose instances each serve `rate` req/s within the SLOs."""
    candidate = Candidate(strategy=name, tp=gpus, pp=1, replicas=1, gpus_used=gpus, knobs={})
    return InstanceType(
        strategy=name,
        knobs={},
        pools=(Pool("serve", gpus, 1, gpus, capacity if capacity is not None else rate, rate),),
        memory_gib={},
        kv_capacity_tokens=1,
        ctx=_ctx(),
        candidate=candidate,
    )


def disaggregated(prefill_rate: float, decode_rate: float, kv_bytes: float = 0.0, link: float = 1e30) -> InstanceType:
    candidate = Candidate(strategy="disaggregated", tp=1, pp=1, replicas=1, gpus_used=2, knobs={})
    return InstanceType(
        strategy="disaggregated",
        knobs={},
        pools=(Pool("prefill", 1, 1, 1, prefill_rate, prefill_rate), Pool("decode", 1, 1, 1, decode_rate, decode_rate)),
        memory_gib={},
        kv_capacity_tokens=1,
        ctx=_ctx(),
        candidate=candidate,
        kv_bytes_per_req=kv_bytes,
        kv_link_bytes_s_per_prefill=link,
    )


BUDGET = {"h100-sxm": 8}
A = serve("a", 2, 3.0)  # 1.5 req/s per GPU
B = serve("b", 4, 5.0)  # 1.25 req/s per GPU
C = serve("c", 1, 1.8)  # 1.8 req/s per GPU


class TestKnownOptimum:
    def test_best_per_gpu_fills_the_budget(self) -> None:
        """8 GPUs: 4 x A = 12 req/s beats 2 x B = 10 and 2 A + 1 B = 11."""
        solution = solve([A, B], BUDGET, Objective.goodput)
        assert solution.counts == {(0, 0): 4, (1, 0): 0}
        assert solution.served_req_s == pytest.approx(12.0)

    def test_integer_counts_matter(self) -> None:
        """6 GPUs: 3 x A = 9 req/s; 1 A + 1 B = 8."""
        solution = solve([A, B], {"h100-sxm": 6}, Objective.goodput)
        assert solution.counts[(0, 0)] == 3
        assert solution.served_req_s == pytest.approx(9.0)

    def test_fewest_gpus_for_a_rate(self) -> None:
        """7.5 req/s: 4 x C (4 GPUs) give only 7.2; 2 A + 1 C (7.8) or 5 C (9.0) take 5 GPUs: the optimum."""
        solution = solve([A, B, C], BUDGET, Objective.min_gpus, rate_req_s=7.5)
        gpus = sum([2, 4, 1][i] * n for (i, _), n in solution.counts.items())
        assert gpus == 5
        assert solution.served_req_s >= 7.5 - 1e-9

    def test_cheapest_for_a_rate(self) -> None:
        """Prices per GPU-hour are on the GPU kind: with one kind, min-cost is min-gpus times the price."""
        solution = solve([A, B, C], BUDGET, Objective.min_cost, rate_req_s=7.5, price_per_gpu_h={"h100-sxm": 2.0})
        assert sum([2, 4, 1][i] * n for (i, _), n in solution.counts.items()) == 5

    def test_offered_rate_caps_goodput_and_uses_fewest_gpus(self) -> None:
        """5 req/s offered: served 5; 2 x A (4 GPUs) suffice, the GPU penalty keeps the rest idle."""
        solution = solve([A, B], BUDGET, Objective.goodput, rate_req_s=5.0)
        assert solution.served_req_s == pytest.approx(5.0)
        assert solution.counts == {(0, 0): 2, (1, 0): 0}

    def test_throughput_uses_capacities(self) -> None:
        """Offline, the capacity (6 req/s per A) counts, not the SLO rate."""
        solution = solve([serve("a", 2, 1.0, capacity=6.0)], BUDGET, Objective.throughput)
        assert solution.served_req_s == pytest.approx(24.0)


class TestPools:
    def test_prefill_and_decode_balance(self) -> None:
        """Prefill 4 req/s and decode 2 req/s per one-GPU instance, 6 GPUs: 2 prefill + 4 decode serve 8."""
        solution = solve([disaggregated(4.0, 2.0)], {"h100-sxm": 6}, Objective.goodput)
        assert (solution.counts[(0, 0)], solution.counts[(0, 1)]) == (2, 4)
        assert solution.served_req_s == pytest.approx(8.0)

    def test_kv_link_limits_the_rate(self) -> None:
        """1 GB of KV per request over 2 GB/s per prefill instance: r <= 2 n_p, so 3 prefill + 3 decode
        serve 6 (2 + 4 would serve only 4)."""
        solution = solve([disaggregated(4.0, 2.0, kv_bytes=1e9, link=2e9)], {"h100-sxm": 6}, Objective.goodput)
        assert (solution.counts[(0, 0)], solution.counts[(0, 1)]) == (3, 3)
        assert solution.served_req_s == pytest.approx(6.0)


class TestInfeasible:
    def test_rate_beyond_the_budget(self) -> None:
        solution = solve([A], BUDGET, Objective.min_gpus, rate_req_s=100.0)
        assert solution.status == "Infeasible"

    def test_no_slo_rate_serves_nothing(self) -> None:
        solution = solve([serve("a", 2, 0.0)], BUDGET, Objective.goodput)
        assert solution.served_req_s == 0.0


def test_same_input_same_plan() -> None:
    first = solve([A, B, C], BUDGET, Objective.min_gpus, rate_req_s=7.5)
    assert all(solve([A, B, C], BUDGET, Objective.min_gpus, rate_req_s=7.5) == first for _ in range(3))


def test_program_size_does_not_grow_with_the_cluster() -> None:
    small, _, _ = build_problem([A, B, disaggregated(4, 2)], {"h100-sxm": 8}, Objective.goodput)
    large, _, _ = build_problem([A, B, disaggregated(4, 2)], {"h100-sxm": 8192}, Objective.goodput)
    assert len(small.variables()) == len(large.variables())
    assert small.numConstraints() == large.numConstraints()
