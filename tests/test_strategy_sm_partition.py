"""`sm-partition` (semi-PD, Nexus): prefill and decode workers split each GPU's SMs.

Hand-computed saturation arithmetic on one op, invariants of the two workers (SM shares, bandwidth sharing,
memory), and the published results of semi-PD and Nexus (seed_systems.md sections 4-5; their hardware and
SLOs are not readable, so the setting is ours: Llama-3.1-8B on one H100-SXM, ShareGPT, TTFT 0.5 s, TPOT
0.05 s, 90% attainment).
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest

from planner.cost.compiled import op_cost
from planner.cost.iteration import iteration_cost
from planner.cost.memory import memory_breakdown
from planner.cost.ops import ONE, ROWS, BatchShape, Op, OpKind, layer_ops, op_load
from planner.errors import PlannerError
from planner.specs.catalog import load_catalog
from planner.specs.hardware import Cluster
from planner.specs.kernels import GemmConstants
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies import get_strategy
from planner.strategies import sm_partition as sp
from planner.strategies.base import Candidate, Context, Slo, StrategyResult, evaluate

SEED_SLO = Slo(ttft_s=0.5, tpot_s=0.05)


def make_context(gpu: str = "h100-sxm", model: str = "llama-3.1-8b", num_gpus: int = 1) -> Context:
    c = load_catalog()
    return Context(
        catalog=c,
        model=c.model(model),
        cluster=Cluster(gpu=c.gpu(gpu), num_gpus=num_gpus, gpus_per_node=8),
        workload=Workload.preset("sharegpt"),
        dtype=Dtype.bf16,
        kv_dtype=Dtype.bf16,
        engine=c.engine("vllm"),
    )


def make_candidate(share: float = 0.5, max_batch: int = 256, tp: int = 1) -> Candidate:
    return Candidate(
        strategy="sm-partition",
        tp=tp,
        pp=1,
        replicas=1,
        gpus_used=tp,
        knobs={"prefill_sm_share": share, "max_batch": max_batch},
    )


class TestSaturationArithmetic:
    """A GEMM on an A100-SXM-80GB (312 TFLOPS, 2039 GB/s) with compute efficiency 0.5 at every size and
    bandwidth efficiency 0.8, no fixed latency: attainable 156 TFLOP/s and 1631.2 GB/s. The op does 1.56e12
    FLOPs (10 ms of compute) and moves 3.2624e10 bytes (20 ms of traffic): s_sat = 10 / 20 = 0.5 (intensity
    47.8 FLOP/B over a ridge of 95.6 FLOP/B)."""

    FLOPS, BYTES = 1.56e12, 3.2624e10
    OP = Op("gemm", OpKind.gemm, 1, flops=FLOPS / 100 * ROWS, bytes=BYTES * ONE, size=ROWS)
    BATCH = BatchShape.decode(100, 1)

    @pytest.fixture
    def deployment(self):  # type: ignore[no-untyped-def]
        base = make_context(gpu="a100").deployment(1, 1)
        gemm = {"bf16": GemmConstants(compute_eff=0.5, m_half=0.0, memory_eff=0.8, fixed_s=0.0)}
        return base.model_copy(update={"kernels": base.kernels.model_copy(update={"gemm": gemm})})

    def test_saturation_share(self) -> None:
        assert sp.saturation_share(self.FLOPS, self.BYTES, 156e12, 1631.2e9) == pytest.approx(0.5)

    @pytest.mark.parametrize(("share", "seconds"), [(1.0, 0.020), (0.5, 0.020), (0.25, 0.040), (0.1, 0.100)])
    def test_op_time_saturates(self, deployment, share: float, seconds: float) -> None:  # type: ignore[no-untyped-def]
        """Above s_sat the op stays on its 20 ms of traffic; below it, 10 ms / share: 40 ms at 0.25, 100 ms
        at 0.1. The cost model on the worker's deployment and Nexus's t_min max(1, s_sat / s) agree."""
        cost = op_cost(sp.worker(deployment, share), self.OP, self.BATCH)
        assert float(cost.compute_s[0] + cost.memory_s[0]) == pytest.approx(seconds)
        assert sp.phase_time_s(0.020, 0.5, share) == pytest.approx(seconds)

    def test_bandwidth_share_stretches_traffic(self, deployment) -> None:  # type: ignore[no-untyped-def]
        """Half the bandwidth: 20 ms of traffic becomes 40 ms, on all the SMs."""
        cost = op_cost(sp.worker(deployment, 1.0, 0.5), self.OP, self.BATCH)
        assert float(cost.memory_s[0]) == pytest.approx(0.040)

    @pytest.mark.parametrize(("demand", "left"), [(0.08, 0.92), (0.5, 0.5), (0.7, 0.5), (1.0, 0.5)])
    def test_max_min_fair_bandwidth(self, demand: float, left: float) -> None:
        """A worker gets what the other leaves, never below half."""
        assert sp.bandwidth_left(demand) == pytest.approx(left)

    def test_decode_saturates_early_prefill_scales(self) -> None:
        """Llama-3.1-8B (32 query heads on 8 KV heads) decode attention has an intensity of 4 FLOP/B (4 d per
        head per cached token over 2 d x 2 bytes per KV head): far below an H100's ridge, s_sat < 0.05. A
        2048-token prefill MLP is above the ridge on the whole GPU (s_sat > 1): it slows with every SM taken."""
        deployment = make_context().deployment(1, 1)
        gpu, kernels = deployment.cluster.gpu, deployment.kernels
        gemm = kernels.gemm["bf16"]
        bytes_s = gpu.memory_bw_bytes_s * kernels.decode_attention["bf16"].kv_bw_eff
        attention = next(op for op in layer_ops(deployment) if op.name == "decode_attention")
        load = op_load(attention, BatchShape.decode(64, 1000))
        assert sp.saturation_share(load.flops, load.bytes, gpu.attention_flops_s() * gemm.compute_eff, bytes_s) < 0.05
        mlp = op_load(next(op for op in layer_ops(deployment) if op.name == "mlp_up"), BatchShape.prefill(2048))
        gemm_flops_s = gpu.gemm_flops_s(deployment.dtype) * gemm.compute_eff
        assert sp.saturation_share(mlp.flops, mlp.bytes, gemm_flops_s, gpu.memory_bw_bytes_s * gemm.memory_eff) > 1


class TestInvariants:
    SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

    def test_more_prefill_sms_never_slow_prefill(self) -> None:
        ctx = make_context()
        base = ctx.deployment(1, 1)
        batch = BatchShape.prefill(300, 20)
        times = [
            iteration_cost(sp.build_workers(base, s, 300, 20, 256, 425).prefill, batch).time_s for s in self.SHARES
        ]
        assert all(later <= earlier * (1 + 1e-12) for earlier, later in itertools.pairwise(times))
        assert times[0] > 3 * times[-1]  # compute-bound: roughly 1 / share

    @pytest.mark.parametrize("share", SHARES)
    @pytest.mark.parametrize("batch", [1, 32, 256, 1024])
    def test_decode_with_bandwidth_share_never_faster_than_alone(self, share: float, batch: int) -> None:
        base = make_context().deployment(1, 1)
        workers = sp.build_workers(base, share, 300, 1, batch, 425)  # single-prompt prefill: high demand
        assert workers.decode_step_s(batch, 1.0) >= workers.decode_step_s(batch, 0.0)
        assert workers.decode_step_s(batch, 0.0) >= sp.Workers(base, base, base, 425).decode_step_s(batch, 0.0)

    def test_one_weight_copy_and_a_second_reserve(self) -> None:
        """Same weights per GPU as one colocated instance (unified memory: no replica); less KV, for the
        second worker's runtime reserve and its decode activations."""
        ctx = make_context()
        memory = sp.SmPartition().memory(ctx, make_candidate())
        colocated = memory_breakdown(ctx.deployment(1, 1))
        assert memory.gib["weights"] == pytest.approx(colocated.as_gib()["weights"])
        assert memory.gib["runtime_reserve"] == pytest.approx(2 * ctx.engine.runtime_reserve_gib)
        assert 0 < memory.gib["decode_activations"] < 1
        assert 0.9 * colocated.kv_capacity_tokens < memory.kv_capacity_tokens < colocated.kv_capacity_tokens

    def test_decodes_never_stall_and_rates_beyond_capacity_fail(self) -> None:
        ctx, candidate = make_context(), make_candidate()
        strategy = sp.SmPartition()
        capacity = strategy.capacity_req_s(ctx, candidate)
        lat = strategy.latencies(ctx, candidate, 0.7 * capacity)
        assert lat is not None
        assert np.ptp(lat.tpot_s) == 0  # every request decodes at the step time, prompts never interleave
        assert lat.tbt_p99_s >= float(lat.tpot_s[0])
        assert strategy.latencies(ctx, candidate, 1.05 * capacity) is None

    def test_shares_outside_zero_one_are_refused(self) -> None:
        with pytest.raises(PlannerError, match=r"prefill_sm_share must be a number in \(0, 1\), got 1"):
            list(sp.SmPartition().candidates(make_context(), {"prefill_sm_share": 1.0, "max_batch": 256}))


@cache
def seed_results() -> dict[str, StrategyResult]:
    """Each strategy's best configuration by goodput in the seed setting."""
    ctx = make_context()
    best: dict[str, StrategyResult] = {}
    for name in ("colocated", "sm-partition"):
        strategy = get_strategy(name)
        results = [evaluate(strategy, ctx, c, SEED_SLO) for c in strategy.candidates(ctx)]
        best[name] = max((r for r in results if r.feasible), key=lambda r: r.goodput_req_s or 0.0)
    return best


def goodput_ratio() -> float:
    best = seed_results()
    sm, colocated = best["sm-partition"].goodput_req_s, best["colocated"].goodput_req_s
    assert sm is not None and colocated
    print(f"goodput: sm-partition {sm:.2f} req/s ({best['sm-partition'].knobs}) vs colocated {colocated:.2f}")
    return sm / colocated


class TestPublished:
    def test_semi_pd_serves_more_requests_within_slo_than_colocated(self) -> None:
        """semi-PD: 1.55-1.72x more requests within latency constraints on Llama-series models (seed_systems.md
        row 15). Direction: sm-partition's goodput above colocated's. tdplan: 30.55 vs 26.22 req/s (1.17x)."""
        assert 1.0 < goodput_ratio() < 3.0

    @pytest.mark.xfail(
        strict=True,
        reason="tdplan gives 1.17x (30.55 vs 26.22 req/s at share 0.3), not semi-PD's 1.55-1.72x: on an H100 the "
        "decode step at large batches is near the ridge point, so giving prefill SMs slows decode, and the "
        "colocated model's goodput is already 92% of its capacity (28.42 req/s) at these SLOs",
    )
    def test_semi_pd_size(self) -> None:
        assert 1.55 * 0.8 < goodput_ratio() < 1.72 * 1.25

    @pytest.mark.xfail(
        strict=True,
        reason="tdplan's offline capacity: sm-partition 31.78 vs colocated 28.42 req/s (1.12x), not Nexus's up to "
        "2.2x: total compute is conserved and neither phase leaves many SMs idle at the best batch",
    )
    def test_nexus_throughput(self) -> None:
        """Nexus: up to 2.2x throughput over vLLM (seed_systems.md row 16)."""
        best = seed_results()
        sm, colocated = best["sm-partition"].request_throughput_req_s, best["colocated"].request_throughput_req_s
        assert sm is not None and colocated
        print(f"capacity: sm-partition {sm:.2f} vs colocated {colocated:.2f} req/s")
        assert sm / colocated > 1.5

    def _at_common_rate(self) -> tuple[StrategyResult, StrategyResult]:
        """Both best configurations at 80% of colocated's goodput."""
        best = seed_results()
        ctx = make_context()
        rate = 0.8 * (best["colocated"].goodput_req_s or 0.0)
        out = []
        for name in ("sm-partition", "colocated"):
            strategy, result = get_strategy(name), best[name]
            candidate = next(
                c for c in strategy.candidates(ctx, result.knobs) if isinstance(c, Candidate) and c.tp == result.tp
            )
            out.append(evaluate(strategy, ctx, candidate, SEED_SLO, rate_req_s=rate))
        sm, colocated = out
        print(f"at {rate:.1f} req/s, sm-partition vs colocated: TTFT mean {sm.ttft_s:.4f} vs {colocated.ttft_s:.4f} s")
        print(f"TBT p99 {sm.tbt_p99_s:.4f} vs {colocated.tbt_p99_s:.4f} s")
        return sm, colocated

    def test_nexus_tbt(self) -> None:
        """Nexus: up to 2.5x lower TBT than vLLM (seed_systems.md row 18). A colocated decode waits behind whole
        prefill iterations; the decode worker never does. tdplan at 21.0 req/s: TBT p99 19.1 ms vs 44.7 ms
        colocated (2.3x lower)."""
        sm, colocated = self._at_common_rate()
        assert sm.tbt_p99_s and colocated.tbt_p99_s
        assert 1.5 < colocated.tbt_p99_s / sm.tbt_p99_s < 5.0

    @pytest.mark.xfail(
        strict=True,
        reason="at 21.0 req/s tdplan gives sm-partition a mean TTFT of 31.3 ms vs 22.6 ms colocated (1.38x higher), "
        "not Nexus's up to 20x lower: the colocated model is prefill-first (prompts never wait for decodes), "
        "while the prefill worker holds only 30% of the SMs",
    )
    def test_nexus_ttft(self) -> None:
        """Nexus: up to 20x lower TTFT than vLLM (seed_systems.md row 17)."""
        sm, colocated = self._at_common_rate()
        assert sm.ttft_s and colocated.ttft_s
        assert colocated.ttft_s / sm.ttft_s > 2.0
