"""Iteration seconds for the simulator, from the compiled cost model (planner.cost.iteration): a whole
iteration through every stage, or, for a pipelined instance, one micro-batch's step through one stage
(stage_step_times_s), which planner.sim.pipeline chains through the stages."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.cost.compiled import CompiledStage, compile_stage, compile_stage_step
from planner.cost.iteration import iteration_times_s, stage_step_times_s
from planner.cost.ops import FEATURES
from planner.specs.deployment import Deployment

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
DECODE_SEQS, DECODE_CONTEXT = FEATURES.index("decode_seqs"), FEATURES.index("decode_context_tokens")
PREFILL_SEQS = FEATURES.index("prefill_seqs")
CACHE_LIMIT = 1 << 17  # entries of one memo before it starts afresh (bounds its memory, not its exactness)
Terms = tuple[tuple[int, float], ...]  # a linear form over FEATURES: (feature, coefficient) of its nonzero terms


def _dot(shape: tuple[float, ...], terms: Terms) -> float:
    total = 0.0
    for feature, coefficient in terms:
        total += shape[feature] * coefficient
    return total


@dataclass(frozen=True, slots=True)
class ScalarOp:
    """One column of a CompiledStage, evaluated on one shape in plain floats (CompiledStage.evaluate's law): the
    reference that _group_function's generated code must equal to the bit (tests/test_sim.py holds them)."""

    flops: Terms
    bytes: Terms
    size: Terms
    size_per: Terms
    items: Terms
    gate: Terms
    count: float
    fixed_s: float
    compute_flops_s: float
    half: float
    memory_bytes_s: float
    per_item_s: float

    def seconds(self, shape: tuple[float, ...]) -> float:
        if _dot(shape, self.gate) <= 0:
            return 0.0
        per = max(_dot(shape, self.size_per), 1e-12)
        ratio = max(_dot(shape, self.size) / per, 1e-9)
        compute = _dot(shape, self.flops) / (self.compute_flops_s * (ratio / (ratio + self.half)))
        memory = _dot(shape, self.bytes) / self.memory_bytes_s + self.per_item_s * _dot(shape, self.items)
        return max(compute, memory) * self.count + self.fixed_s * self.count


class StageStepOps:
    """stage_step_times_s of one shape at a time without the host-side overhead (the busiest stage and one
    send), for a pipelined instance's mixed micro-batches, whose shapes seldom repeat whole. The ops are
    grouped by the features they read (the GEMMs read the rows, the prefill attention the prompt chunks, the
    decode attention the decode sequences and their context): a group's seconds depend on those features only
    and are memoised on exactly their values, so that only the groups whose features changed are evaluated,
    in plain floats. The same law as CompiledStage.evaluate, summed in another order: equal to it but for
    float round-off (a test holds them to 1e-12)."""

    def __init__(self, groups: list[tuple[tuple[int, ...], list[ScalarOp]]]) -> None:
        # per group: its features' values as a key (a tuple, or the value itself when it reads one), its seconds
        # as one function of a shape (_group_function), memo
        self.groups = [(_key(reads), _group_function(ops), dict[object, float]()) for reads, ops in groups]

    @classmethod
    def of(cls, deployment: Deployment) -> StageStepOps | None:
        """The deployment's stage step, or None where the plain-float law does not apply (MoE experts touched;
        a rate of zero or an infinite half-efficiency size, which the compiled evaluation maps through
        nan_to_num)."""
        compiled = compile_stage_step(deployment) if deployment.pp_size > 1 else compile_stage(deployment)
        return cls(_grouped_ops(compiled)) if _plain(compiled) else None

    def seconds(self, shape: tuple[float, ...]) -> float:
        total = 0.0
        for reads, group_s, memo in self.groups:
            key = reads(shape)
            seconds = memo.get(key)
            if seconds is None:
                seconds = group_s(shape)
                if len(memo) >= CACHE_LIMIT:
                    memo.clear()
                memo[key] = seconds
            total += seconds
        return total


def _group_function(ops: list[ScalarOp]) -> Callable[[tuple[float, ...]], float]:
    """The summed seconds of `ops` on a shape, as one Python function written out for them: the sum over ops
    of ScalarOp.seconds with each linear form's terms and each constant inlined (repr of a float reads back as
    the same float), in the same operations and order, so the same float to the bit; about three times faster
    than the loop over the ops and their terms, and priced once per micro-batch of a pipelined instance."""

    def dot(terms: Terms) -> str:  # _dot's sum, left to right from 0.0
        return "(0.0" + "".join(f" + s[{feature}] * {coefficient!r}" for feature, coefficient in terms) + ")"

    lines = ["def group_s(s):", "    total = 0.0"]
    for op in ops:
        if not op.gate:  # a gate of no terms is 0: ScalarOp.seconds is 0.0, which adds nothing
            continue
        lines += [
            f"    if {dot(op.gate)} > 0:",
            f"        per = max({dot(op.size_per)}, 1e-12)",
            f"        ratio = max({dot(op.size)} / per, 1e-9)",
            f"        compute = {dot(op.flops)} / ({op.compute_flops_s!r} * (ratio / (ratio + {op.half!r})))",
            f"        memory = {dot(op.bytes)} / {op.memory_bytes_s!r} + {op.per_item_s!r} * {dot(op.items)}",
            f"        total += max(compute, memory) * {op.count!r} + {op.fixed_s!r} * {op.count!r}",
        ]
    lines.append("    return total")
    namespace: dict[str, Any] = {"inf": math.inf}  # repr of an infinite float
    exec("\n".join(lines), namespace)  # source built above from floats and feature indices only
    function: Callable[[tuple[float, ...]], float] = namespace["group_s"]
    return function


def _key(reads: tuple[int, ...]) -> Callable[[tuple[float, ...]], object]:
    """The values of `reads` in a shape, as a memo key."""
    return operator.itemgetter(*reads) if reads else lambda shape: ()


def _plain(compiled: CompiledStage) -> bool:
    return (
        not compiled.moe
        and bool(np.all(compiled.compute_flops_s > 0))
        and bool(np.all(compiled.memory_bytes_s > 0))
        and bool(np.all(np.isfinite(compiled.half) & (compiled.half >= 0)))
    )


def _grouped_ops(compiled: CompiledStage) -> list[tuple[tuple[int, ...], list[ScalarOp]]]:
    forms = (compiled.flops, compiled.bytes, compiled.size, compiled.size_per, compiled.items, compiled.gate)
    groups: dict[tuple[int, ...], list[ScalarOp]] = {}
    for k in range(len(compiled.names)):
        flops, bytes_moved, size, size_per, items, gate = (
            tuple((f, float(form[f, k])) for f in range(len(FEATURES)) if form[f, k]) for form in forms
        )
        terms = (flops, bytes_moved, size, size_per, items, gate)
        reads = tuple(sorted({f for form_terms in terms for f, _ in form_terms}))
        op = ScalarOp(
            flops=flops,
            bytes=bytes_moved,
            size=size,
            size_per=size_per,
            items=items,
            gate=gate,
            count=float(compiled.count[k]),
            fixed_s=float(compiled.fixed_s[k]),
            compute_flops_s=float(compiled.compute_flops_s[k]),
            half=float(compiled.half[k]),
            memory_bytes_s=float(compiled.memory_bytes_s[k]),
            per_item_s=float(compiled.per_item_s[k]),
        )
        groups.setdefault(reads, []).append(op)
    return list(groups.items())


class IterationTimer:
    """Iteration seconds from the compiled cost model: iteration_times_s, or with `per_stage` the step of one
    micro-batch through one stage (stage_step_times_s: the busiest stage, one send, the host-side overhead).

    Single shapes are cached: prompt-only iterations of a fixed-length workload repeat exactly. A pipelined
    instance's shapes (mixed micro-batches) are priced op group by op group (StageStepOps). Decode-only
    steps are read from a line per batch size: at a fixed number of sequences n, every op of a decode step
    costs the larger of two affine functions of the summed context (or one), so the step time is convex in it;
    it is evaluated at both ends and the middle of the context range, and where the middle lies on the chord
    (to 1e-9) the step time equals the chord over the whole range (a convex function touching its chord
    inside an interval is affine there). Batch sizes that fail the check are evaluated step by step.
    """

    def __init__(
        self, deployment: Deployment, max_batch_size: int, max_context_tokens: int, per_stage: bool = False
    ) -> None:
        self.deployment = deployment
        self.per_stage = per_stage
        self.cache: dict[tuple[float, ...], float] = {}
        self.evaluations = 0
        calibration = deployment.calibration
        self.iteration_overhead_s = calibration.iteration_overhead_s
        self.per_seq_overhead_s = calibration.per_seq_overhead_s
        self.stage_step = StageStepOps.of(deployment) if per_stage else None
        # padded[n]: the batch a decode step of n sequences runs as (the next CUDA-graph size, else n itself)
        graphs = np.array(deployment.engine.cuda_graph_batch_sizes, dtype=np.int64)
        seqs = np.arange(max_batch_size + 1)
        at = np.searchsorted(graphs, seqs, side="left")
        self.padded = np.where(at < len(graphs), graphs[np.minimum(at, len(graphs) - 1)], seqs) if len(graphs) else seqs
        max_batch_size = int(self.padded.max())
        n = np.arange(1, max_batch_size + 1, dtype=float)
        low, high = n, n * max(max_context_tokens, 2)
        mid = (low + high) / 2
        shapes = np.zeros((3 * len(n), len(FEATURES)))
        shapes[:, 0] = 1.0
        shapes[:, DECODE_SEQS] = np.tile(n, 3)
        shapes[:, DECODE_CONTEXT] = np.concatenate([low, mid, high])
        t_low, t_mid, t_high = self.many(shapes).reshape(3, -1)
        slope = (t_high - t_low) / (high - low)
        affine = np.abs(t_low + slope * (mid - low) - t_mid) <= 1e-9 * t_mid
        # index by n (row 0 unused): time = intercept[n] + slope[n] x summed context
        self.slope = np.concatenate([[0.0], slope])
        self.intercept = np.concatenate([[0.0], t_low - slope * low])
        self.affine = np.concatenate([[True], affine])
        # the same, as plain numbers for decode_one (the same floats: the same arithmetic)
        self.padded_list: list[int] = self.padded.tolist()
        self.slope_list: list[float] = self.slope.tolist()
        self.intercept_list: list[float] = self.intercept.tolist()

    def one(self, shape: tuple[float, ...]) -> float:
        time_s = self.cache.get(shape)
        if time_s is None:
            if self.stage_step is not None:  # equal to stage_step_times_s but for float round-off
                seqs = shape[PREFILL_SEQS] + shape[DECODE_SEQS]
                time_s = self.stage_step.seconds(shape) + (self.iteration_overhead_s + self.per_seq_overhead_s * seqs)
            else:
                time_s = float(self.many(np.array([shape]))[0])
            if len(self.cache) >= CACHE_LIMIT:
                self.cache.clear()
            self.cache[shape] = time_s
        return time_s

    def many(self, shapes: FloatArray) -> FloatArray:
        self.evaluations += 1
        if self.per_stage:
            return stage_step_times_s(self.deployment, shapes)
        return iteration_times_s(self.deployment, shapes)

    def overhead_s(self, seqs: int) -> float:
        """The host-side part of an iteration over `seqs` sequences (before the first stage starts): as
        engine_overhead_s computes it, in plain floats."""
        return self.iteration_overhead_s + self.per_seq_overhead_s * float(seqs)

    def decode_one(self, seqs: int, context_tokens: float) -> float:
        """decode() of one step, in scalars (the same operations on the same floats)."""
        padded = self.padded_list[seqs] if seqs < len(self.padded_list) else seqs
        if self.affine[padded]:
            time_s = self.intercept_list[padded] + self.slope_list[padded] * context_tokens
        else:
            shape = np.zeros((1, len(FEATURES)))
            shape[0, 0], shape[0, DECODE_SEQS], shape[0, DECODE_CONTEXT] = 1.0, padded, context_tokens
            time_s = float(self.many(shape)[0])
        return time_s - self.per_seq_overhead_s * float(padded - seqs)

    def decode(self, seqs: IntArray, context_tokens: FloatArray) -> FloatArray:
        """Decode steps of seqs[i] sequences attending to context_tokens[i] tokens in all, each run as a CUDA
        graph of its padded batch: the padding rows cost their GEMM rows, no attention (no context) and no
        host-side work (the engine's per-sequence overhead is for real sequences)."""
        seqs = np.asarray(seqs)
        padded = self.padded[np.minimum(seqs, len(self.padded) - 1)] if len(seqs) else seqs
        padded = np.where(seqs < len(self.padded), padded, seqs)
        if self.affine[padded].all():
            times = self.intercept[padded] + self.slope[padded] * context_tokens
        else:
            shapes = np.zeros((len(seqs), len(FEATURES)))
            shapes[:, 0] = 1.0
            shapes[:, DECODE_SEQS] = padded
            shapes[:, DECODE_CONTEXT] = context_tokens
            times = self.many(shapes)
        per_seq_s = self.deployment.calibration.per_seq_overhead_s
        return np.asarray(times - per_seq_s * (padded - seqs))


def prefill_shape(prefill: list[tuple[int, int]], decode_seqs: int = 0, decode_context: int = 0) -> tuple[float, ...]:
    """FEATURES of an iteration with prompt chunks (cached tokens, new tokens) and decode sequences: a chunk of
    s tokens after c cached ones has s c + s (s + 1) / 2 causal pairs (BatchShape.prefill)."""
    tokens = sum(s for _, s in prefill)
    pairs = sum(s * c + s * (s + 1) / 2 for c, s in prefill)
    cached = sum(c for c, _ in prefill)
    return (1.0, float(tokens), float(len(prefill)), pairs, float(cached), float(decode_seqs), float(decode_context))


class MicroBatchedTimer(IterationTimer):
    """Decode steps of a pp-stage instance run whole as pp micro-batches of B / pp (the largest, ceil(B / pp),
    sets the pace): a step is pp stage steps of it (continuous.decode_step's pipeline). For schedulers that run
    a pipelined layout without virtual engines (planner.sim.resharding's decode layout)."""

    def __init__(self, deployment: Deployment, max_batch_size: int, max_context_tokens: int) -> None:
        self.stages = deployment.pp_size
        super().__init__(deployment, -(-max_batch_size // self.stages), max_context_tokens, per_stage=True)

    def decode(self, seqs: IntArray, context_tokens: FloatArray) -> FloatArray:
        seqs = np.asarray(seqs)
        micro = -(-seqs // self.stages)
        share = micro / np.maximum(seqs, 1)  # of the context, the largest micro-batch's
        return np.asarray(self.stages * super().decode(micro, np.asarray(context_tokens) * share))

    def decode_one(self, seqs: int, context_tokens: float) -> float:
        micro = -(-seqs // self.stages)
        return self.stages * super().decode_one(micro, context_tokens * (micro / max(seqs, 1)))
