"""Iteration time (`planner.cost.iteration`): the GEMM efficiency curve and op costs on literals, and the
monotonicity any roofline model must keep (faster hardware is never slower, more work never faster).
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops import catalog_gpu, make_calibration, make_deployment, make_gpu, make_moe_model

from planner.cost.iteration import IterationCost, gemm_efficiency, iteration_cost, op_cost, ridge_rows
from planner.cost.ops import BatchShape, Op
from planner.cost.roofline import Bound
from planner.specs.deployment import Deployment
from planner.specs.hardware import GpuSpec
from planner.specs.precision import Dtype

# Layouts the invariants run on: dense at TP 1, dense at TP 2 x PP 2, MoE at TP 1.
LAYOUTS = {
    "dense-tp1": {},
    "dense-tp2-pp2": {"tp_size": 2, "pp_size": 2},
    "moe-tp1": {"model": make_moe_model()},
}

BATCHES = st.one_of(
    st.builds(BatchShape.decode, st.floats(1, 1024), st.floats(1, 8192)),
    st.builds(BatchShape.prefill, st.floats(1, 8192), st.floats(1, 4)),
    st.builds(
        lambda decodes, context, chunk: BatchShape.decode(decodes, context) + BatchShape.prefill(chunk),
        st.floats(1, 256),
        st.floats(1, 8192),
        st.floats(1, 2048),
    ),
)
FACTORS = st.floats(1.0, 10.0)


def deployment_on(layout: str, gpu: GpuSpec) -> Deployment:
    return make_deployment(gpu=gpu, **LAYOUTS[layout])


def time_s(deployment: Deployment, batch: BatchShape) -> float:
    return iteration_cost(deployment, batch).time_s


class TestGemmEfficiency:
    def test_at_the_scale_rows(self) -> None:
        """rows = gemm_ridge_scale x ridge rows = 0.5 x 200 = 100: 0.8 x (1 - e^-1) = 0.8 x 0.6321205588
        = 0.5056964470628461."""
        calibration = make_calibration(compute_eff=0.8, gemm_ridge_scale=0.5)
        assert gemm_efficiency(calibration, 100, 200) == pytest.approx(0.5056964470628461, rel=1e-12)

    def test_saturates_at_compute_eff(self) -> None:
        """50 scales (scale 0.5 x 128 = 64 rows): 0.7 x (1 - e^-50), equal to 0.7 in double precision."""
        calibration = make_calibration(compute_eff=0.7, gemm_ridge_scale=0.5)
        assert gemm_efficiency(calibration, 3200, 128) == pytest.approx(0.7, rel=1e-15)

    def test_one_row_gets_a_sliver(self) -> None:
        """1 row at scale 0.64 x 100 = 64 rows: 0.8 x (1 - e^(-1/64)) = 0.8 x (1 - 0.9844964370)
        = 0.8 x 0.0155035630 = 0.0124028504."""
        assert gemm_efficiency(make_calibration(), 1, 100) == pytest.approx(0.0124028504, rel=1e-9)

    def test_ridge_rows_of_an_h100_in_bf16(self) -> None:
        """989e12 FLOP/s x 2 bytes / (2 x 3350e9 B/s) = 295.2 rows; fp8 halves the bytes and doubles the
        rate (1978e12), so the ridge stays at 295.2 rows."""
        gpu = catalog_gpu("h100-sxm")
        for dtype in (Dtype.bf16, Dtype.fp8):
            assert ridge_rows(make_deployment(gpu=gpu, dtype=dtype)) == pytest.approx(295.22, rel=1e-3)


class TestOpCost:
    """Ops on one test GPU (100 TFLOPS bf16, 1000 GB/s) with the test calibration (compute 0.8 at scale 64,
    memory 0.9, comm 0.9)."""

    def test_gemm_compute_bound(self) -> None:
        """1e12 FLOPs at 64 rows (the scale: 0.64 x the test GPU's 100 ridge rows): efficiency
        0.8 x (1 - 1/e) = 0.50570, so 1e12 / (1e14 x 0.50570)
        = 0.019775 s, against 1e9 bytes / 9e11 B/s = 0.00111 s; twice per iteration -> 0.039549 s of
        compute."""
        cost = op_cost(make_deployment(), Op("gemm", "gemm", 2, 1e12, 1e9, rows=64))
        assert cost.compute_s == pytest.approx(0.039549417671733166, rel=1e-12)
        assert (cost.memory_s, cost.communication_s, cost.overhead_s) == (0, 0, 0)

    def test_attention_reads_at_the_attention_bandwidth(self) -> None:
        """9e8 bytes of KV at 1000 GB/s x attention_bw_eff 0.5 = 1.8e-3 s; an elementwise op moving the
        same bytes at memory_bw_eff 0.9 takes 9e8 / 9e11 = 1e-3 s."""
        deployment = make_deployment(calibration=make_calibration(attention_bw_eff=0.5))
        attention = op_cost(deployment, Op("attention", "attention", 1, 1e6, 9e8))
        norm = op_cost(deployment, Op("norm", "elementwise", 1, 0.0, 9e8))
        assert attention.memory_s == pytest.approx(1.8e-3, rel=1e-12)
        assert norm.memory_s == pytest.approx(1e-3, rel=1e-12)

    def test_allreduce_on_nvlink(self) -> None:
        """TP 2 over the test GPU's NVLink (400 GB/s, 2 us) at 0.9: 2 x 1/2 x 1e6 / 3.6e11 = 2.7778e-6 s
        + 2 x 2e-6 = 6.7778e-6 s; twice per layer -> 1.35556e-5 s."""
        cost = op_cost(make_deployment(tp_size=2), Op("tp_allreduce", "allreduce", 2, 0.0, 1e6))
        assert cost.communication_s == pytest.approx(1.3555555555555556e-05, rel=1e-12)


class TestIterationCostBound:
    def test_memory_largest(self) -> None:
        assert IterationCost(compute_s=1.0, memory_s=2.0, communication_s=0.5).bound is Bound.memory

    def test_overhead_counts_with_compute(self) -> None:
        """compute 1 + overhead 1.5 = 2.5 > memory 2."""
        cost = IterationCost(compute_s=1.0, memory_s=2.0, overhead_s=1.5)
        assert cost.bound is Bound.compute

    def test_communication_largest(self) -> None:
        assert IterationCost(compute_s=1.0, memory_s=1.0, communication_s=2.5).bound is Bound.communication

    def test_sum_and_scale(self) -> None:
        """(1 + 2 + 3 + 4) x 2 = 20 s."""
        cost = IterationCost(compute_s=1.0, memory_s=2.0) + IterationCost(communication_s=3.0, overhead_s=4.0)
        assert cost.scaled(2).time_s == 20.0


class TestFasterHardwareIsNeverSlower:
    @pytest.mark.parametrize("layout", LAYOUTS)
    @settings(max_examples=25, deadline=None)
    @given(batch=BATCHES, bw_gb_s=st.floats(100, 5000), factor=FACTORS)
    def test_more_memory_bandwidth(self, layout: str, batch: BatchShape, bw_gb_s: float, factor: float) -> None:
        slow = deployment_on(layout, make_gpu(memory_bw_gb_s=bw_gb_s))
        fast = deployment_on(layout, make_gpu(memory_bw_gb_s=bw_gb_s * factor))
        assert time_s(fast, batch) <= time_s(slow, batch) * (1 + 1e-12)

    @pytest.mark.parametrize("layout", LAYOUTS)
    @settings(max_examples=25, deadline=None)
    @given(batch=BATCHES, tflops=st.floats(20, 2000), factor=FACTORS)
    def test_more_tflops(self, layout: str, batch: BatchShape, tflops: float, factor: float) -> None:
        def gpu(rate: float) -> GpuSpec:
            return make_gpu(dense_tflops={"fp16": rate, "bf16": rate})

        slow, fast = deployment_on(layout, gpu(tflops)), deployment_on(layout, gpu(tflops * factor))
        assert time_s(fast, batch) <= time_s(slow, batch) * (1 + 1e-12)

    def test_bandwidth_matters_when_memory_bound(self) -> None:
        """Without fixed overheads, a batch-1 decode step of the tiny model is all weight reads: doubling the
        bandwidth about halves it (so the invariants above do not hold by equality alone)."""
        batch = BatchShape.decode(1, 1000)
        calibration = make_calibration(gemm_ridge_scale=0.001, iteration_overhead_s=0, layer_overhead_s=0)
        slow = make_deployment(calibration=calibration)
        fast = make_deployment(gpu=make_gpu(memory_bw_gb_s=2000), calibration=calibration)
        assert time_s(fast, batch) < 0.55 * time_s(slow, batch)


class TestLargerDecodeBatch:
    @pytest.mark.parametrize("layout", LAYOUTS)
    @settings(max_examples=30, deadline=None)
    @given(batch=st.floats(1, 2048), extra=st.floats(0, 2048), context=st.floats(1, 8192))
    def test_never_makes_a_step_faster(self, layout: str, batch: float, extra: float, context: float) -> None:
        deployment = deployment_on(layout, make_gpu())
        small = time_s(deployment, BatchShape.decode(batch, context))
        large = time_s(deployment, BatchShape.decode(batch + extra, context))
        assert large >= small * (1 - 1e-12)

    @pytest.mark.parametrize("layout", LAYOUTS)
    def test_time_per_token_falls_with_batch(self, layout: str) -> None:
        """Weights and fixed overheads are shared by the batch, so seconds per generated token fall as the
        batch grows, steeply while weight reads dominate, flattening out once GEMMs are compute bound."""
        deployment = deployment_on(layout, make_gpu())
        batches = [2**i for i in range(13)]  # 1 .. 4096
        per_token = [time_s(deployment, BatchShape.decode(b, 1024)) / b for b in batches]
        assert all(later <= earlier * (1 + 1e-12) for earlier, later in itertools.pairwise(per_token))
        assert per_token[4] < 0.5 * per_token[0]  # 16 sequences at least double throughput over 1

    def test_large_decode_batch_becomes_compute_bound(self) -> None:
        """With a KV cache far too short to matter and no fixed overheads, 4096 sequences run the tiny
        model's GEMMs at their full rate: the step is compute bound and the time per token is within 1% of the
        2048-sequence one."""
        deployment = make_deployment(calibration=make_calibration(iteration_overhead_s=0, layer_overhead_s=0))
        step_2048 = iteration_cost(deployment, BatchShape.decode(2048, 16))
        step_4096 = iteration_cost(deployment, BatchShape.decode(4096, 16))
        assert step_4096.bound is Bound.compute
        assert math.isclose(step_4096.time_s / 4096, step_2048.time_s / 2048, rel_tol=0.01)
