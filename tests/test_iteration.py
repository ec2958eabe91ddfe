"""Iteration time (`planner.cost.compiled`, `planner.cost.iteration`): op costs on literals through the kernel
laws, the compiled closed form held equal to the per-op reference, and the monotonicity any roofline model must
keep (faster hardware is never slower, more work never faster).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops import catalog_gpu, make_constants, make_deployment, make_gpu, make_kernels, make_moe_model

from planner.cost.compiled import compile_stage, op_cost
from planner.cost.iteration import IterationCost, iteration_cost, iteration_times_s, stage_cost
from planner.cost.ops import ONE, ROWS, ZERO, BatchShape, Op, OpKind, linear, stage_ops
from planner.cost.roofline import Bound
from planner.specs.deployment import Deployment
from planner.specs.hardware import GpuSpec

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
NO_FIXED = {
    "gemm": {"bf16": {"compute_eff": 0.8, "m_half": 0.001, "memory_eff": 0.9, "fixed_s": 0.0}},
    "decode_attention": {"bf16": {"kv_bw_eff": 0.8, "per_seq_s": 0.0, "fixed_s": 0.0}},
    "prefill_attention": {"bf16": {"compute_eff": 0.5, "s_half": 0.0, "fixed_s": 0.0}},
    "elementwise": {"bw_eff": 0.8, "fixed_s": 0.0},
}


def deployment_on(layout: str, gpu: GpuSpec) -> Deployment:
    return make_deployment(gpu=gpu, **LAYOUTS[layout])


def time_s(deployment: Deployment, batch: BatchShape) -> float:
    return iteration_cost(deployment, batch).time_s


def gemm_op(count: float = 1.0) -> Op:
    """A GEMM whose FLOPs are 1e10 per row and whose bytes are 1e9 plus nothing per row."""
    return Op("g", OpKind.gemm, count, flops=1e10 * ROWS, bytes=1e9 * ONE, size=ROWS)


class TestOpCost:
    """Ops on the test GPU (100 TFLOPS bf16, 1000 GB/s, NVLink 400 GB/s) with the test kernel constants."""

    def test_gemm_compute_bound(self) -> None:
        """64 rows at m_half 64: efficiency 0.8 x 64 / 128 = 0.4; 64 x 1e10 = 6.4e11 FLOPs / (1e14 x 0.4)
        = 0.016 s, against 1e9 bytes / (1e12 x 0.9) = 0.0011 s; plus the 4 us floor; twice per iteration:
        compute 0.032 s, overhead 8 us."""
        cost = op_cost(make_deployment(), gemm_op(2), BatchShape.decode(64, 10))
        assert cost.compute_s[0] == pytest.approx(0.032, rel=1e-12)
        assert cost.overhead_s[0] == pytest.approx(8e-6, rel=1e-12)
        assert cost.memory_s[0] == 0

    def test_gemm_memory_bound_at_one_row(self) -> None:
        """1 row: 1e10 FLOPs / (1e14 x 0.8 / 65) = 8.125e-3 s against 1e9 / 9e11 = 1.1111e-3 s: compute
        still wins at this toy intensity; with 1e6 FLOPs per row the weights win: 1.1111e-3 s of memory."""
        op = Op("g", OpKind.gemm, 1, flops=1e6 * ROWS, bytes=1e9 * ONE, size=ROWS)
        cost = op_cost(make_deployment(), op, BatchShape.decode(1, 10))
        assert cost.memory_s[0] == pytest.approx(1e9 / 9e11, rel=1e-12)

    def test_decode_attention_reads_kv_at_its_own_efficiency(self) -> None:
        """8e8 bytes at 1000 GB/s x 0.8 = 1e-3 s, plus 100 sequences x 1e-7 s = 1e-5 s; floor 6 us."""
        op = Op(
            "a", OpKind.decode_attention, 1, flops=ZERO, bytes=8e6 * linear(decode_seqs=1.0),
            items=linear(decode_seqs=1.0), gate=linear(decode_seqs=1.0),
        )  # fmt: skip
        cost = op_cost(make_deployment(), op, BatchShape.decode(100, 10))
        assert cost.memory_s[0] == pytest.approx(1.01e-3, rel=1e-12)
        assert cost.overhead_s[0] == pytest.approx(6e-6, rel=1e-12)

    def test_allreduce_on_nvlink_through_the_engine_path(self) -> None:
        """TP 2, engine all-reduce: 3 us + 1 us x (2 - 1) + 2 x 1/2 x 1e6 B / (400e9 x 0.8) = 4e-6 +
        3.125e-6 = 7.125e-6 s; twice -> 1.425e-5 s of communication."""
        op = Op("ar", OpKind.allreduce, 2, flops=ZERO, bytes=1e6 * ONE)
        cost = op_cost(make_deployment(tp_size=2), op, BatchShape.decode(1, 10))
        assert cost.communication_s[0] == pytest.approx(1.425e-5, rel=1e-12)


class TestCompiledEqualsReference:
    """The compiled closed form gives the per-op reference's times, op by op summed, on any shape."""

    @pytest.mark.parametrize("layout", [*LAYOUTS, "dense-tp4"])
    @settings(max_examples=30, deadline=None)
    @given(batch=BATCHES)
    def test_stage(self, layout: str, batch: BatchShape) -> None:
        overrides = LAYOUTS.get(layout, {"tp_size": 4})
        deployment = make_deployment(**overrides)
        parts = [op_cost(deployment, op, batch) for op in stage_ops(deployment)]
        compiled = stage_cost(deployment, batch)
        for name in ("compute_s", "memory_s", "communication_s", "overhead_s"):
            assert getattr(compiled, name) == pytest.approx(sum(float(getattr(p, name)[0]) for p in parts), rel=1e-9)

    def test_many_shapes_in_one_call(self) -> None:
        """1,024 shapes evaluated at once equal 1,024 single evaluations, and take about a millisecond."""
        deployment = make_deployment(tp_size=2)
        rng = np.random.default_rng(0)
        shapes = [BatchShape.decode(float(b), float(c)) + BatchShape.prefill(float(p))
                  for b, c, p in zip(rng.integers(1, 256, 1024), rng.integers(1, 8192, 1024),
                                     rng.integers(0, 2, 1024) * rng.integers(1, 2048, 1024), strict=True)]  # fmt: skip
        x = np.stack([s.features() for s in shapes])
        compile_stage(deployment)  # compiled once per deployment, then cached
        start = time.perf_counter()
        together = iteration_times_s(deployment, x)
        elapsed = time.perf_counter() - start
        one_by_one = np.array([time_s(deployment, s) for s in shapes])
        np.testing.assert_allclose(together, one_by_one, rtol=1e-12)
        assert elapsed < 0.05  # generous for a loaded CI machine; about 1 ms here


class TestIterationCostBound:
    def test_memory_largest(self) -> None:
        assert IterationCost(compute_s=1.0, memory_s=2.0, communication_s=0.5).bound is Bound.memory

    def test_overhead_is_its_own_bound(self) -> None:
        """Fixed latencies (kernel floors, host work) are neither compute nor memory: 2.5 > 2 > 1."""
        cost = IterationCost(compute_s=1.0, memory_s=2.0, overhead_s=2.5)
        assert cost.bound is Bound.overhead

    def test_small_decode_on_a_real_model_is_not_called_compute(self) -> None:
        """Llama-3.1-8B on an H100 at batch 1: weight reads and fixed latencies, not compute."""
        from planner.specs.catalog import load_catalog

        catalog = load_catalog()
        deployment = make_deployment(
            model=catalog.model("llama-3.1-8b"), gpu=catalog_gpu("h100-sxm"), kernels=catalog.kernel_profile("h100-sxm")
        )
        assert iteration_cost(deployment, BatchShape.decode(1, 1000)).bound in (Bound.memory, Bound.overhead)

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
        kernels, constants = make_kernels(**NO_FIXED), make_constants(iteration_overhead_s=0, per_seq_overhead_s=0)
        slow = make_deployment(kernels=kernels, constants=constants)
        fast = make_deployment(gpu=make_gpu(memory_bw_gb_s=2000), kernels=kernels, constants=constants)
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
        model's GEMMs near their full rate: the step is compute bound and the time per token is within 1% of the
        2048-sequence one."""
        deployment = make_deployment(
            kernels=make_kernels(**NO_FIXED), constants=make_constants(iteration_overhead_s=0, per_seq_overhead_s=0)
        )
        step_2048 = iteration_cost(deployment, BatchShape.decode(2048, 16))
        step_4096 = iteration_cost(deployment, BatchShape.decode(4096, 16))
        assert step_4096.bound is Bound.compute
        assert math.isclose(step_4096.time_s / 4096, step_2048.time_s / 2048, rel_tol=0.01)
