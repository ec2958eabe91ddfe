"""Time of one engine iteration: the ops of a pipeline stage through the roofline, plus communication and
fixed overheads, with calibrated efficiencies.

time(op) = max(FLOPs / (peak x eff(rows)), bytes / (bandwidth x memory_bw_eff))       (roofline.py)
eff(rows) = compute_eff x (1 - exp(-rows / (gemm_ridge_scale x ridge_rows)))
ridge_rows = peak x bytes per weight / (2 x bandwidth): the rows at which a GEMM's arithmetic intensity
    (2 FLOPs per weight byte per row) reaches the GPU's ridge point.
    A GEMM with few rows (a small decode batch) leaves most tensor-core tiles idle; efficiency rises with the
    rows and saturates. The exponential form and its two constants are fitted per engine and architecture
    family (planner.validation.calibrate); the TD-Pipe L20 forward-time profile shows the shape (about 32% of
    peak at 64 tokens, 58% at 128, 80% at 256, 88% at 2048).
stage time = layers x (sum of layer ops + layer_overhead_s) + embedding/head + TP all-reduces
iteration = stage time (PP 1), plus iteration_overhead_s (scheduling, sampling, launch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.cost.comm import allreduce_time_s, p2p_time_s, pp_link, tp_link
from planner.cost.memory import layers_per_stage
from planner.cost.ops import BatchShape, Op, head_ops, layer_ops, stage_send_op
from planner.cost.roofline import Bound, roofline_time_s
from planner.specs.deployment import Deployment
from planner.specs.engine import Calibration


@dataclass(frozen=True, slots=True)
class IterationCost:
    """Seconds of one iteration (or one stage of it), attributed to what bounds each part."""

    compute_s: float = 0.0
    memory_s: float = 0.0
    communication_s: float = 0.0
    overhead_s: float = 0.0

    @property
    def time_s(self) -> float:
        return self.compute_s + self.memory_s + self.communication_s + self.overhead_s

    @property
    def bound(self) -> Bound:
        """The largest share; fixed overheads count as compute-side (they are not memory or link limits)."""
        parts = {
            Bound.compute: self.compute_s + self.overhead_s,
            Bound.memory: self.memory_s,
            Bound.communication: self.communication_s,
        }
        return max(parts, key=lambda bound: parts[bound])

    def __add__(self, other: IterationCost) -> IterationCost:
        return IterationCost(
            compute_s=self.compute_s + other.compute_s,
            memory_s=self.memory_s + other.memory_s,
            communication_s=self.communication_s + other.communication_s,
            overhead_s=self.overhead_s + other.overhead_s,
        )

    def scaled(self, factor: float) -> IterationCost:
        return IterationCost(
            compute_s=self.compute_s * factor,
            memory_s=self.memory_s * factor,
            communication_s=self.communication_s * factor,
            overhead_s=self.overhead_s * factor,
        )


def gemm_efficiency(calibration: Calibration, rows: float, ridge_rows: float) -> float:
    """Share of the dense peak a GEMM with `rows` rows reaches on a GPU whose ridge point is `ridge_rows`
    (see the module docstring)."""
    scale = calibration.gemm_ridge_scale * ridge_rows
    return calibration.compute_eff * -math.expm1(-max(rows, 1e-9) / scale)


def ridge_rows(deployment: Deployment) -> float:
    """GEMM rows at which streaming the weights and computing take equal time at datasheet rates:
    2 x rows FLOPs per weight element / bytes per weight = peak / bandwidth."""
    gpu, weight_bytes = deployment.cluster.gpu, deployment.dtype.bytes_per_element
    return gpu.gemm_flops_s(deployment.dtype) * weight_bytes / (2 * gpu.memory_bw_bytes_s)


def op_cost(deployment: Deployment, op: Op) -> IterationCost:
    """Time of one op (times its count) on one GPU."""
    cal, gpu = deployment.calibration, deployment.cluster.gpu
    if op.kind == "allreduce":
        bw_s, latency_s = tp_link(deployment)
        t = allreduce_time_s(op.bytes, deployment.tp_size, bw_s, latency_s, cal.comm_bw_eff)
        return IterationCost(communication_s=t * op.count)
    if op.kind == "p2p":
        bw_s, latency_s = pp_link(deployment)
        return IterationCost(communication_s=p2p_time_s(op.bytes, bw_s, latency_s, cal.comm_bw_eff) * op.count)
    if op.kind == "gemm":
        flops_s = gpu.gemm_flops_s(deployment.dtype) * gemm_efficiency(cal, op.rows, ridge_rows(deployment))
    else:
        flops_s = gpu.attention_flops_s() * cal.compute_eff
    bw_eff = cal.attention_bw_eff if op.kind == "attention" else cal.memory_bw_eff
    t, bound = roofline_time_s(op.flops, op.bytes, flops_s, gpu.memory_bw_bytes_s * bw_eff)
    if bound is Bound.compute:
        return IterationCost(compute_s=t * op.count)
    return IterationCost(memory_s=t * op.count)


def stage_cost(deployment: Deployment, batch: BatchShape) -> IterationCost:
    """One pipeline stage (the busiest: ceil(layers / pp) layers and the LM head) processing `batch`."""
    layers = layers_per_stage(deployment)
    cal = deployment.calibration
    cost = IterationCost(overhead_s=(cal.layer_overhead_s + cal.seq_layer_overhead_s * batch.seqs) * layers)
    for op in layer_ops(deployment, batch):
        cost += op_cost(deployment, op).scaled(layers)
    for op in head_ops(deployment, batch):
        if op.name == "embedding" and deployment.pp_size > 1:
            continue  # the embedding sits on the first stage, the head on the last
        cost += op_cost(deployment, op)
    return cost


def send_cost(deployment: Deployment, batch: BatchShape) -> IterationCost:
    """Activation transfer across one pipeline-stage boundary."""
    if deployment.pp_size == 1:
        return IterationCost()
    return op_cost(deployment, stage_send_op(deployment, batch))


def iteration_cost(deployment: Deployment, batch: BatchShape) -> IterationCost:
    """Latency of one iteration of `batch` through the whole model: every stage in turn, the sends between
    them, and the engine's per-iteration overhead."""
    pp = deployment.pp_size
    cost = stage_cost(deployment, batch).scaled(pp) + send_cost(deployment, batch).scaled(pp - 1)
    return cost + IterationCost(overhead_s=deployment.calibration.iteration_overhead_s)
