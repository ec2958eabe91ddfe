"""Timing functions of planner.cost.kernels against hand-computed literals."""

from __future__ import annotations

import numpy as np
import pytest

from planner.cost.kernels import (
    allreduce_time_s,
    decode_attention_time_s,
    elementwise_time_s,
    gemm_time_s,
    prefill_attention_time_s,
)
from planner.specs.kernels import (
    AllReduceConstants,
    DecodeAttentionConstants,
    ElementwiseConstants,
    GemmConstants,
    PrefillAttentionConstants,
)

GEMM = GemmConstants(compute_eff=0.5, m_half=100, memory_eff=0.8, fixed_s=5e-6)


class TestGemm:
    def test_compute_bound(self) -> None:
        """m = 100, 1e12 FLOPs, 1e8 bytes, peak 1e15 FLOP/s, 1e12 B/s.
        Efficiency 0.5 x 100 / (100 + 100) = 0.25; compute 1e12 / (1e15 x 0.25) = 4e-3 s;
        memory 1e8 / (1e12 x 0.8) = 1.25e-4 s; roofline 4e-3 s, compute bound; fixed 5e-6 s."""
        fixed, roofline, compute = gemm_time_s(GEMM, [100], [1e12], [1e8], 1e15, 1e12)
        assert fixed[0] == pytest.approx(5e-6)
        assert roofline[0] == pytest.approx(4e-3)
        assert bool(compute[0])

    def test_memory_bound(self) -> None:
        """m = 1, 2e9 FLOPs, 4e9 bytes. Efficiency 0.5 x 1 / 101; compute 2e9 x 101 / (1e15 x 0.5) = 4.04e-4 s;
        memory 4e9 / (1e12 x 0.8) = 5e-3 s: roofline 5e-3 s, memory bound."""
        _, roofline, compute = gemm_time_s(GEMM, [1], [2e9], [4e9], 1e15, 1e12)
        assert roofline[0] == pytest.approx(5e-3)
        assert not bool(compute[0])

    def test_broadcasts_over_rows(self) -> None:
        """Both rows in one call give the same two roofline times: 4e-3 s and 5e-3 s."""
        _, roofline, _ = gemm_time_s(GEMM, np.array([100, 1]), np.array([1e12, 2e9]), np.array([1e8, 4e9]), 1e15, 1e12)
        assert roofline == pytest.approx([4e-3, 5e-3])


def test_decode_attention() -> None:
    """10 sequences, 1.6e9 KV bytes, 2e12 B/s at 0.8: 1.6e9 / 1.6e12 = 1e-3 s, plus 10 x 1e-7 = 1e-6 s
    per sequence: 1.001e-3 s; fixed 1e-5 s; never compute bound."""
    c = DecodeAttentionConstants(kv_bw_eff=0.8, per_seq_s=1e-7, fixed_s=1e-5)
    fixed, memory, compute = decode_attention_time_s(c, [10], [1.6e9], 2e12)
    assert fixed[0] == pytest.approx(1e-5)
    assert memory[0] == pytest.approx(1.001e-3)
    assert not compute.any()


def test_prefill_attention() -> None:
    """s = 1000 with s_half 1000: efficiency 0.5 x 1000 / 2000 = 0.25; 1e12 FLOPs / (1e15 x 0.25) = 4e-3 s."""
    c = PrefillAttentionConstants(compute_eff=0.5, s_half=1000, fixed_s=1e-5)
    fixed, roofline, compute = prefill_attention_time_s(c, [1000], [1e12], 1e15)
    assert fixed[0] == pytest.approx(1e-5)
    assert roofline[0] == pytest.approx(4e-3)
    assert compute.all()


def test_elementwise() -> None:
    """1e9 bytes at 1e12 B/s x 0.5 = 2e-3 s; fixed 2e-6 s."""
    fixed, memory, _ = elementwise_time_s(ElementwiseConstants(bw_eff=0.5, fixed_s=2e-6), [1e9], 1e12)
    assert fixed[0] == pytest.approx(2e-6)
    assert memory[0] == pytest.approx(2e-3)


class TestAllReduce:
    C = AllReduceConstants(latency_s=5e-6, latency_per_peer_s=1e-6, bus_bw_eff=0.5)

    def test_four_gpus(self) -> None:
        """n = 4, 1e9 bytes, link 1e11 B/s at 0.5: 2 x 3 / 4 x 1e9 / 5e10 = 0.03 s; latency 5e-6 + 3 x 1e-6
        = 8e-6 s; total 0.030008 s."""
        assert allreduce_time_s(self.C, [1e9], 4, 1e11)[0] == pytest.approx(0.030008)

    def test_one_gpu_is_free(self) -> None:
        """No peers, no all-reduce: 0 s."""
        assert allreduce_time_s(self.C, [1e9], 1, 1e11)[0] == 0.0
