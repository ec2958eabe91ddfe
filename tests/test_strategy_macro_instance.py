"""Macro instances with rolling activation (`planner.strategies.macro_instance`, EcoServe).

Hand-computed rotation arithmetic, invariants, and EcoServe's published claim: on 32 L20 GPUs over commodity
Ethernet, 30B/70B-scale models, goodput +82% to +127% over NoDG and FuDG systems (arXiv 2504.18154 abstract).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.specs.catalog import load_catalog
from planner.specs.hardware import Cluster, NetworkSpec
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies import get_strategy
from planner.strategies.base import Candidate, Context, Infeasible, Slo, Strategy, evaluate
from planner.strategies.macro_instance import macro_queue_wait_s, prefill_active_share, rotation_period_s

# EcoServe's artifact launcher defaults (ecoserve/launch/start.sh): TTFT 5000 ms, TPOT 100 ms. They are the
# demo's targets, not the paper's SLOs, which could not be read.
ECOSERVE_ARTIFACT_SLO = Slo(ttft_s=5.0, tpot_s=0.1)


@pytest.fixture(scope="module")
def l20_cluster_70b() -> Context:
    """Llama-2-70B on 32 L20 (four 8-GPU PCIe nodes) over 25 GbE, ShareGPT-like traffic."""
    catalog = load_catalog()
    return Context(
        catalog=catalog,
        model=catalog.model("llama-2-70b"),
        cluster=Cluster(gpu=catalog.gpu("l20"), num_gpus=32, gpus_per_node=8, network=NetworkSpec.parse("25gbe")),
        workload=Workload.preset("sharegpt"),
        dtype=Dtype.fp16,
        kv_dtype=Dtype.fp16,
        engine=catalog.engine("vllm"),
    )


def candidate(strategy: Strategy, ctx: Context, tp: int, pp: int, **knobs: float) -> Candidate:
    return next(c for c in strategy.candidates(ctx, knobs) if isinstance(c, Candidate) and c.tp == tp and c.pp == pp)


class TestRotationArithmetic:
    def test_rotation_period(self) -> None:
        """Refilled to 100 once a rotation and draining with lifetime 20 s, the batch averages
        100 (1 - e^-x) / x with x = Theta / 20: a mean of 100 (1 - e^-1) = 63.212 gives x = 1, Theta = 20 s;
        a batch at the cap turns the pointer as fast as prompts come (0)."""
        assert rotation_period_s(100 * (1 - math.exp(-1)), 100, 20) == pytest.approx(20, rel=1e-6)
        assert rotation_period_s(100, 100, 20) == 0.0

    def test_prefill_share_is_one_over_n_when_the_rotation_saturates(self) -> None:
        """N = 4, lambda = 10 req/s per macro, t_p = 0.1 s: lambda t_p = 1 (the active instance never idles),
        f_p = 10 / 4 x 0.1 = 0.25 = 1 / N; at half the rate 0.125."""
        assert prefill_active_share(10, 4, 0.1) == pytest.approx(0.25)
        assert prefill_active_share(5, 4, 0.1) == pytest.approx(0.125)

    def test_queue_at_the_active_instance(self) -> None:
        """M/D/1 at rho = 5 x 0.1 = 0.5: mean wait rho t / (2 (1 - rho)) = 0.05 s, half the requests wait;
        capped at a 0.01 s window; saturated (rho = 1.2): uniform over the window, mean 0.5 window."""
        waits = macro_queue_wait_s(1000, 5, 0.1, window_s=1e9)
        assert np.mean(waits) == pytest.approx(0.05, rel=0.05) and np.mean(waits == 0) == pytest.approx(0.5)
        assert macro_queue_wait_s(1000, 5, 0.1, window_s=0.01).max() <= 0.01
        assert np.mean(macro_queue_wait_s(1000, 12, 0.1, window_s=2.0)) == pytest.approx(1.0)

    def test_macros_on_the_cluster(self, l20_cluster_70b: Context) -> None:
        """TP4 instances: 32 / 4 = 8 per cluster; N = 3 gives 2 macros (6 instances, 24 GPUs), N = 4 gives 2
        (32 GPUs); TP8 with N = 4 needs 32 GPUs, one macro."""
        strategy = get_strategy("macro-instance")
        three = candidate(strategy, l20_cluster_70b, 4, 1, macro_size=3)
        four = candidate(strategy, l20_cluster_70b, 4, 1, macro_size=4)
        assert (three.replicas, three.gpus_used, three.detail["macros"]) == (6, 24, 2)
        assert (four.replicas, four.gpus_used) == (8, 32)
        assert candidate(strategy, l20_cluster_70b, 8, 1, macro_size=4).detail["macros"] == 1
        too_big = [c for c in strategy.candidates(l20_cluster_70b, {"macro_size": 4}) if c.tp == 8 and c.pp == 2]
        assert all(isinstance(c, Infeasible) for c in too_big)


class TestInvariants:
    def test_capacity_is_the_colocated_work(self, l20_cluster_70b: Context) -> None:
        """Rolling activation moves prefill in time but not its amount: the offline capacity equals colocated
        prefill-first replicas of the same layout at the same batch cap."""
        macro = get_strategy("macro-instance")
        colocated = get_strategy("colocated")
        ours = macro.capacity_req_s(l20_cluster_70b, candidate(macro, l20_cluster_70b, 4, 1, macro_size=2))
        theirs = colocated.capacity_req_s(l20_cluster_70b, candidate(colocated, l20_cluster_70b, 4, 1, max_batch=256))
        assert ours == pytest.approx(theirs, rel=1e-9)

    def test_paced_tpot_and_stability(self, l20_cluster_70b: Context) -> None:
        """Every request decodes at the same paced TPOT, which grows with the load; none beyond capacity."""
        strategy = get_strategy("macro-instance")
        chosen = candidate(strategy, l20_cluster_70b, 4, 1, macro_size=2)
        capacity = strategy.capacity_req_s(l20_cluster_70b, chosen)
        assert strategy.latencies(l20_cluster_70b, chosen, capacity * 1.01) is None
        lat = strategy.latencies(l20_cluster_70b, chosen, capacity * 0.5)
        assert lat is not None
        multi = np.array(l20_cluster_70b.workload.output_lens) > 1
        light = strategy.latencies(l20_cluster_70b, chosen, capacity * 0.05)
        assert light is not None
        assert np.ptp(lat.tpot_s[multi]) == 0.0 and lat.tpot_s[multi][0] > light.tpot_s[multi][0]
        assert (lat.ttft_s > 0).all()


class TestPublishedClaim:
    def test_goodput_beats_colocated(self, l20_cluster_70b: Context) -> None:
        """Best goodput over TP4/TP8 instances (the best layouts of either strategy in a full search).

        EcoServe (arXiv 2504.18154 abstract) reports +82% to +127% goodput over NoDG/FuDG systems on 32 L20 over
        commodity Ethernet. tdplan today: 13.42 against 12.15 req/s (+10%): the direction holds, the size does
        not (rolling activation moves prefill in time without changing its amount; see
        docs/strategies/macro-instance.md)."""

        def best(name: str) -> float:
            strategy = get_strategy(name)
            results = [
                evaluate(strategy, l20_cluster_70b, c, ECOSERVE_ARTIFACT_SLO)
                for c in strategy.candidates(l20_cluster_70b)
                if isinstance(c, Candidate) and c.pp == 1 and c.tp in (4, 8)
            ]
            return max(r.goodput_req_s or 0.0 for r in results)

        macro, colocated = best("macro-instance"), best("colocated")
        print(f"\n32x L20 25GbE Llama-2-70B goodput: macro-instance {macro:.2f} req/s, colocated {colocated:.2f}")
        assert 1.0 <= macro / colocated <= 2.5
