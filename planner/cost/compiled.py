"""The cost of one pipeline stage as a closed form over batch shapes, compiled once per deployment.

Each op of `planner.cost.ops` is a set of linear forms over the batch features, and its kernel constants
(planner.specs.kernels, through `op_rates`) reduce to a handful of numbers per op. Stacking them gives

    op time = [gate > 0] x count x (kernels x fixed + max(compute, memory))
    compute = (X F) / (rate_c x size / (size + half))       size = (X S) / (X P)
    memory  = (X B) / rate_m + per_item x (X Q)

for a matrix X of shapes (one row per shape, one column per feature): a few numpy operations on an
(N shapes x K ops) array, whatever N. `op_cost` is the per-op reference that calls the kernel laws of
planner.cost.kernels directly; a test holds the two equal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from planner.cost import kernels
from planner.cost.comm import allreduce_impl, allreduce_link, p2p_link
from planner.cost.ops import ROWS, BatchShape, Op, OpKind, experts_touched, op_load, stage_ops, stage_send_op
from planner.specs.deployment import Deployment
from planner.specs.kernels import AllReduceImpl, GemmConstants, KernelProfile
from planner.specs.precision import Dtype

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OpRates:
    """What an op's kernel law reduces to on one deployment (seconds, FLOP/s, bytes/s)."""

    fixed_s: float  # per launch
    compute_flops_s: float  # attained FLOP/s at full size (inf: not compute-timed)
    half: float  # size at half efficiency (0: efficiency independent of size)
    memory_bytes_s: float  # attained bytes/s (inf: not memory-timed)
    per_item_s: float = 0.0
    communication: bool = False


def gemm_constants(profile: KernelProfile, dtype: Dtype, has_rate: bool) -> GemmConstants:
    """The fitted GEMM constants for a weight format, or the nearest fitted one: 8-bit formats on a GPU with
    their tensor-core rate run W8A8 (`fp8`, `int8_sq`); otherwise weights are dequantised in the kernel
    (weight-only `int8_wo`, `int4_wo`) and, failing those, the 16-bit constants apply."""
    candidates = {
        Dtype.fp16: ("bf16",),
        Dtype.bf16: ("bf16",),
        Dtype.fp8: ("fp8", "bf16") if has_rate else ("bf16",),
        Dtype.int8: ("int8_sq", "int8_wo", "bf16") if has_rate else ("int8_wo", "bf16"),
        Dtype.int4: ("int4_wo", "bf16"),
    }[dtype]
    for key in candidates:
        if key in profile.gemm:
            return profile.gemm[key]
    return next(iter(profile.gemm.values()))


def _gemm(deployment: Deployment, dtype: Dtype) -> GemmConstants:
    """The GEMM constants for `dtype` on the deployment's GPU (8-bit formats run W8A8 only where the GPU has
    that tensor-core rate)."""
    gpu = deployment.cluster.gpu
    has_rate = dtype.is_float16 or gpu.gemm_flops_s(dtype) > gpu.dense_tflops.fp16 * 1e12
    return gemm_constants(deployment.kernels, dtype, has_rate)


def _format_key(table: dict[str, object], dtype: Dtype) -> str:
    """The entry for a KV or attention format: 8-bit formats use `fp8` where fitted, else the 16-bit one."""
    if not dtype.is_float16 and "fp8" in table:
        return "fp8"
    return "bf16" if "bf16" in table else next(iter(table))


def op_rates(deployment: Deployment, op: Op) -> OpRates:
    """The kernel constants of `op` on this deployment's GPU, link and engine."""
    gpu, profile = deployment.cluster.gpu, deployment.kernels
    bw = gpu.memory_bw_bytes_s
    if op.kind is OpKind.gemm:
        c = _gemm(deployment, op.dtype)
        return OpRates(c.fixed_s, gpu.gemm_flops_s(op.dtype) * c.compute_eff, c.m_half, bw * c.memory_eff)
    if op.kind is OpKind.prefill_attention:
        p = profile.prefill_attention[_format_key(dict(profile.prefill_attention), Dtype.bf16)]
        return OpRates(p.fixed_s, gpu.attention_flops_s() * p.compute_eff, p.s_half, math.inf)
    if op.kind is OpKind.decode_attention:
        d = profile.decode_attention[_format_key(dict(profile.decode_attention), deployment.kv_dtype)]
        return OpRates(d.fixed_s, math.inf, 0.0, bw * d.kv_bw_eff, per_item_s=d.per_seq_s)
    if op.kind is OpKind.elementwise:
        e = profile.elementwise
        return OpRates(e.fixed_s, math.inf, 0.0, bw * e.bw_eff)
    if op.kind is OpKind.allreduce:
        n = deployment.tp_size
        a = profile.allreduce.get(allreduce_impl(deployment)) or profile.allreduce[AllReduceImpl.nccl]
        link_bw_s, extra_latency_s = allreduce_link(deployment)
        latency = a.latency_s + a.latency_per_peer_s * (n - 1) + extra_latency_s
        # 2 (n - 1) / n of the message crosses each rank's link (reduce-scatter + all-gather)
        return OpRates(latency, math.inf, 0.0, link_bw_s * a.bus_bw_eff * n / (2 * (n - 1)), communication=True)
    link_bw_s, latency_s = p2p_link(deployment)
    return OpRates(latency_s, math.inf, 0.0, link_bw_s, communication=True)


@dataclass(frozen=True, slots=True)
class StageTimes:
    """Seconds of a stage (or iteration) per batch shape, attributed to what bounds each part."""

    compute_s: Array
    memory_s: Array
    communication_s: Array
    overhead_s: Array

    @property
    def time_s(self) -> Array:
        return self.compute_s + self.memory_s + self.communication_s + self.overhead_s


@dataclass(frozen=True)
class CompiledStage:
    """The stage's ops as matrices over FEATURES (rows) x ops (columns), and their rates."""

    names: tuple[str, ...]
    flops: Array
    bytes: Array
    size: Array
    size_per: Array
    items: Array
    gate: Array
    count: Array
    fixed_s: Array  # kernels x fixed latency per op
    compute_flops_s: Array
    half: Array
    memory_bytes_s: Array
    per_item_s: Array
    communication: NDArray[np.bool_]
    moe: tuple[tuple[int, int, int, float], ...]  # (op column, experts, top-k, weight bytes per expert)

    def evaluate(self, shapes: Array, compute_share: float = 1.0, bandwidth_share: float = 1.0) -> StageTimes:
        """Times of the stage for each row of `shapes` (N x FEATURES). `compute_share` and `bandwidth_share`
        scale the GPU's attained compute and memory rates (a GPU partitioned between phases)."""
        x = np.atleast_2d(np.asarray(shapes, dtype=float))
        flops, bytes_moved, size = x @ self.flops, x @ self.bytes, x @ self.size
        for column, experts, topk, weight_bytes in self.moe:
            touched = np.maximum(experts_touched(x @ ROWS, experts, topk), 1.0)
            bytes_moved[:, column] += touched * weight_bytes
            size[:, column] = size[:, column] / touched  # rows per expert GEMM
        per = np.maximum(x @ self.size_per, 1e-12)
        ratio = np.maximum(size / per, 1e-9)
        efficiency = ratio / (ratio + self.half)
        with np.errstate(divide="ignore", invalid="ignore"):
            compute = flops / (self.compute_flops_s * compute_share * efficiency)
        # Only a zero compute share divides by zero; checking first skips nan_to_num's cost on every other call
        # (a tenth of the whole evaluation for one shape).
        if not np.isfinite(compute).all():
            compute = np.nan_to_num(compute)
        comm = self.communication
        # Communication ops keep their link's rate; the others get the bandwidth share (nothing to scale at 1).
        memory_rate = (
            self.memory_bytes_s
            if bandwidth_share == 1.0
            else np.where(comm, self.memory_bytes_s, self.memory_bytes_s * bandwidth_share)
        )
        memory = bytes_moved / memory_rate + self.per_item_s * (x @ self.items)
        runs = ((x @ self.gate) > 0) * self.count
        roof = np.maximum(compute, memory) * runs
        fixed = self.fixed_s * runs
        on_gpu = ~comm
        return StageTimes(
            compute_s=np.where(on_gpu & (compute >= memory), roof, 0.0).sum(axis=1),
            memory_s=np.where(on_gpu & (compute < memory), roof, 0.0).sum(axis=1),
            communication_s=np.where(comm, roof + fixed, 0.0).sum(axis=1),
            overhead_s=np.where(comm, 0.0, fixed).sum(axis=1),
        )

    def traffic_s(self, shapes: Array) -> Array:
        """Seconds the stage's memory traffic holds the GPU's attained bandwidth, whether or not each op is
        memory-bound: every non-communication op's bytes over its attained bandwidth."""
        x = np.atleast_2d(np.asarray(shapes, dtype=float))
        bytes_moved = x @ self.bytes
        for column, experts, topk, weight_bytes in self.moe:
            bytes_moved[:, column] += np.maximum(experts_touched(x @ ROWS, experts, topk), 1.0) * weight_bytes
        runs = ((x @ self.gate) > 0) * self.count
        seconds = np.where(self.communication, 0.0, bytes_moved / self.memory_bytes_s * runs)
        return np.asarray(seconds.sum(axis=1))


def _compile(ops: list[Op], deployment: Deployment) -> CompiledStage:
    rates = [op_rates(deployment, op) for op in ops]

    def stack(attr: str) -> Array:
        return np.stack([getattr(op, attr) for op in ops], axis=1)

    return CompiledStage(
        names=tuple(op.name for op in ops),
        flops=stack("flops"),
        bytes=stack("bytes"),
        size=stack("size"),
        size_per=stack("size_per"),
        items=stack("items"),
        gate=stack("gate"),
        count=np.array([op.count for op in ops]),
        fixed_s=np.array([op.kernels * r.fixed_s for op, r in zip(ops, rates, strict=True)]),
        compute_flops_s=np.array([r.compute_flops_s for r in rates]),
        half=np.array([r.half for r in rates]),
        memory_bytes_s=np.array([r.memory_bytes_s for r in rates]),
        per_item_s=np.array([r.per_item_s for r in rates]),
        communication=np.array([r.communication for r in rates]),
        moe=tuple(
            (column, op.moe_experts, op.moe_topk, op.moe_weight_bytes)
            for column, op in enumerate(ops)
            if op.moe_experts
        ),
    )


def cost_key(deployment: Deployment) -> tuple[Hashable, ...]:
    """Everything of a deployment that its compiled stages depend on: what `stage_ops` and `stage_send_op` read
    (model, layout, precisions, the engine's elementwise launches) and what `op_rates` reads (the GPU, its
    kernel constants, the node size and network that set the links, the engine's all-reduce path). Deployments
    that differ only elsewhere (the cluster's GPU count, engine limits such as the batch cap or token budget,
    the calibration) compile to the same matrices and rates."""
    engine, cluster = deployment.engine, deployment.cluster
    return (
        deployment.model,
        deployment.tp_size,
        deployment.pp_size,
        deployment.dtype,
        deployment.kv_dtype,
        deployment.kernels,
        cluster.gpu,
        cluster.gpus_per_node,
        cluster.network,
        engine.elementwise_kernels_per_layer,
        engine.allreduce,
        engine.custom_allreduce_on_pcie,
    )


# Compiled stages by (what is compiled, cost_key): every context, knob value and strategy that builds its own
# deployment object of the same instance (an engine copy with another batch cap, a cluster of another size)
# shares one compilation. Immutable values; emptied when it grows past the bound.
_SHARED: dict[tuple[Hashable, ...], CompiledStage] = {}
_SHARED_MAX = 4096


def _shared(what: str, deployment: Deployment, build: Callable[[], CompiledStage]) -> CompiledStage:
    key = (what, *cost_key(deployment))
    stage = _SHARED.get(key)
    if stage is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        stage = _SHARED[key] = build()
    return stage


@functools.lru_cache(maxsize=4096)
def compile_stage(deployment: Deployment) -> CompiledStage:
    """The busiest pipeline stage of `deployment` (its layers and the LM head), compiled once."""
    return _shared("stage", deployment, lambda: _compile(stage_ops(deployment), deployment))


@functools.lru_cache(maxsize=4096)
def compile_stage_step(deployment: Deployment) -> CompiledStage:
    """The busiest stage and its activation send (pp > 1), compiled as one: what a pipeline's stage step
    costs on the GPU, in one evaluation."""
    return _shared(
        "stage step", deployment, lambda: _compile([*stage_ops(deployment), stage_send_op(deployment)], deployment)
    )


@functools.lru_cache(maxsize=4096)
def compile_send(deployment: Deployment) -> CompiledStage:
    """The activation send across one pipeline-stage boundary, compiled once."""
    return _shared("send", deployment, lambda: _compile([stage_send_op(deployment)], deployment))


def op_cost(deployment: Deployment, op: Op, batch: BatchShape) -> StageTimes:
    """Reference path: one op through its kernel law (planner.cost.kernels) at one batch shape, times its count."""
    load = op_load(op, batch)
    zero = np.zeros(1)
    if not load.runs:
        return StageTimes(zero, zero, zero, zero)
    gpu, profile = deployment.cluster.gpu, deployment.kernels
    bw = gpu.memory_bw_bytes_s
    compute_bound = np.zeros(1, dtype=bool)
    if op.kind is OpKind.gemm:
        c = _gemm(deployment, op.dtype)
        fixed, roof, compute_bound = kernels.gemm_time_s(
            c, load.size, load.flops, load.bytes, gpu.gemm_flops_s(op.dtype), bw
        )
    elif op.kind is OpKind.prefill_attention:
        p = profile.prefill_attention[_format_key(dict(profile.prefill_attention), Dtype.bf16)]
        fixed, roof, compute_bound = kernels.prefill_attention_time_s(p, load.size, load.flops, gpu.attention_flops_s())
    elif op.kind is OpKind.decode_attention:
        d = profile.decode_attention[_format_key(dict(profile.decode_attention), deployment.kv_dtype)]
        fixed, roof, _ = kernels.decode_attention_time_s(d, load.items, load.bytes, bw)
    elif op.kind is OpKind.elementwise:
        fixed, roof, _ = kernels.elementwise_time_s(profile.elementwise, load.bytes, bw)
        fixed = fixed * op.kernels
    elif op.kind is OpKind.allreduce:
        a = profile.allreduce.get(allreduce_impl(deployment)) or profile.allreduce[AllReduceImpl.nccl]
        link_bw_s, extra_latency_s = allreduce_link(deployment)
        total = kernels.allreduce_time_s(a, load.bytes, deployment.tp_size, link_bw_s) + extra_latency_s
        return StageTimes(zero, zero, np.atleast_1d(total) * op.count, zero)
    else:
        link_bw_s, latency_s = p2p_link(deployment)
        return StageTimes(zero, zero, np.atleast_1d(latency_s + load.bytes / link_bw_s) * op.count, zero)
    fixed, roof = np.atleast_1d(fixed) * op.count, np.atleast_1d(roof) * op.count
    return StageTimes(
        compute_s=np.where(compute_bound, roof, 0.0),
        memory_s=np.where(compute_bound, 0.0, roof),
        communication_s=zero,
        overhead_s=fixed,
    )
