"""The roofline kernel: the time of one operation from its FLOPs, its bytes and the machine's rates."""

from __future__ import annotations

from enum import Enum


class Bound(str, Enum):
    """What limits an operation or an iteration."""

    compute = "compute"
    memory = "memory"
    communication = "communication"
    overhead = "overhead"


def roofline_time_s(flops: float, bytes_moved: float, flops_s: float, bytes_s: float) -> tuple[float, Bound]:
    """Time (s) of an op that does `flops` and moves `bytes_moved`, at attainable rates `flops_s` and `bytes_s`.

    Compute and memory traffic overlap, so the op takes the longer of the two (Williams et al., "Roofline: an
    insightful visual performance model", CACM 2009): t = max(flops / flops_s, bytes / bytes_s).
    """
    compute_s = flops / flops_s
    memory_s = bytes_moved / bytes_s
    if compute_s >= memory_s:
        return compute_s, Bound.compute
    return memory_s, Bound.memory
