"""The roofline kernel (`planner.cost.roofline`): t = max(FLOPs / FLOP/s, bytes / bytes/s)."""

from __future__ import annotations

import pytest

from planner.cost.roofline import Bound, roofline_time_s


class TestRooflineTime:
    def test_compute_bound(self) -> None:
        """2e12 FLOPs at 1e14 FLOP/s = 0.02 s; 1e9 bytes at 1e12 B/s = 0.001 s -> 0.02 s, compute bound."""
        assert roofline_time_s(2e12, 1e9, 1e14, 1e12) == (pytest.approx(0.02, rel=1e-12), Bound.compute)

    def test_memory_bound(self) -> None:
        """1e9 FLOPs at 1e14 FLOP/s = 1e-5 s; 2e9 bytes at 1e12 B/s = 0.002 s -> 0.002 s, memory bound."""
        assert roofline_time_s(1e9, 2e9, 1e14, 1e12) == (pytest.approx(0.002, rel=1e-12), Bound.memory)

    def test_decode_gemv_on_h100_datasheet_is_memory_bound(self) -> None:
        """One token through an 8192 x 8192 bf16 matrix: 2 x 8192^2 = 134,217,728 FLOPs and as many bytes
        (2 bytes per weight). At 989 TFLOPS that is 1.36e-7 s; at 3.35 TB/s, 134,217,728 / 3.35e12
        = 4.0065e-5 s."""
        t, bound = roofline_time_s(134_217_728, 134_217_728, 989e12, 3.35e12)
        assert t == pytest.approx(4.006499343283582e-05, rel=1e-12)
        assert bound is Bound.memory

    def test_ridge_point_counts_as_compute(self) -> None:
        """At the ridge both terms are 1e-3 s (1e11 / 1e14 = 1e9 / 1e12); a tie is reported as compute."""
        assert roofline_time_s(1e11, 1e9, 1e14, 1e12) == (pytest.approx(1e-3, rel=1e-12), Bound.compute)

    def test_pure_data_movement(self) -> None:
        """An elementwise op with no FLOPs: 5e8 bytes at 1e12 B/s = 5e-4 s."""
        assert roofline_time_s(0.0, 5e8, 1e14, 1e12) == (pytest.approx(5e-4, rel=1e-12), Bound.memory)
