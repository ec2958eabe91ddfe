"""Iteration seconds for the simulator, from the compiled cost model (planner.cost.iteration): a whole
iteration through every stage, or, for a pipelined instance, one micro-batch's step through one stage
(stage_step_times_s), which planner.sim.pipeline chains through the stages."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from planner.cost.iteration import engine_overhead_s, iteration_times_s, stage_step_times_s
from planner.cost.ops import FEATURES
from planner.specs.deployment import Deployment

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
DECODE_SEQS, DECODE_CONTEXT = FEATURES.index("decode_seqs"), FEATURES.index("decode_context_tokens")


class IterationTimer:
    """Iteration seconds from the compiled cost model: iteration_times_s, or with `per_stage` the step of one
    micro-batch through one stage (stage_step_times_s: the busiest stage, one send, the host-side overhead).

    Single shapes are cached: prompt-only iterations of a fixed-length workload repeat exactly. Decode-only
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

    def one(self, shape: tuple[float, ...]) -> float:
        time_s = self.cache.get(shape)
        if time_s is None:
            time_s = float(self.many(np.array([shape]))[0])
            self.cache[shape] = time_s
        return time_s

    def many(self, shapes: FloatArray) -> FloatArray:
        self.evaluations += 1
        if self.per_stage:
            return stage_step_times_s(self.deployment, shapes)
        return iteration_times_s(self.deployment, shapes)

    def overhead_s(self, seqs: int) -> float:
        """The host-side part of an iteration over `seqs` sequences (before the first stage starts)."""
        return float(engine_overhead_s(self.deployment, np.array([seqs]))[0])

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
