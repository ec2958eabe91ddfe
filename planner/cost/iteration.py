"""Time of one engine iteration: the kernels of each pipeline stage (planner.cost.compiled), the sends between
stages, and the engine's host-side overhead.

    stage time     = sum over the stage's kernels of [fixed latency + roofline]          (compiled.py, kernels.py)
    iteration time = pp x stage time + (pp - 1) x send + iteration_overhead + per_seq_overhead x sequences

Kernel constants are per GPU, fitted on kernel microbenchmarks; the two host-side constants are per engine,
fitted on latency rows (planner.validation.calibrate).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from planner.cost.compiled import StageTimes, compile_send, compile_stage, compile_stage_step, cost_key
from planner.cost.ops import BatchShape
from planner.cost.roofline import Bound
from planner.specs.deployment import Deployment
from planner.specs.memo import IdentityMemo


@dataclass(frozen=True, slots=True)
class IterationCost:
    """Seconds of one iteration (or one stage of it), attributed to what bounds each part: compute or memory
    (the roofline part of kernels), communication (collectives and sends) and fixed overhead (kernel launch
    floors and host-side engine work)."""

    compute_s: float = 0.0
    memory_s: float = 0.0
    communication_s: float = 0.0
    overhead_s: float = 0.0

    @property
    def time_s(self) -> float:
        return self.compute_s + self.memory_s + self.communication_s + self.overhead_s

    @property
    def bound(self) -> Bound:
        """The largest share."""
        parts = {
            Bound.compute: self.compute_s,
            Bound.memory: self.memory_s,
            Bound.communication: self.communication_s,
            Bound.overhead: self.overhead_s,
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

    @classmethod
    def of(cls, times: StageTimes, index: int = 0) -> IterationCost:
        return cls(
            compute_s=float(times.compute_s[index]),
            memory_s=float(times.memory_s[index]),
            communication_s=float(times.communication_s[index]),
            overhead_s=float(times.overhead_s[index]),
        )


def stage_cost(
    deployment: Deployment, batch: BatchShape, compute_share: float = 1.0, bandwidth_share: float = 1.0
) -> IterationCost:
    """One pipeline stage (the busiest: ceil(layers / pp) layers and the LM head) processing `batch`, on the
    given shares of the GPU's compute and memory bandwidth."""
    times = compile_stage(deployment).evaluate(batch.features(), compute_share, bandwidth_share)
    return IterationCost.of(times)


def send_cost(deployment: Deployment, batch: BatchShape) -> IterationCost:
    """Activation transfer across one pipeline-stage boundary."""
    if deployment.pp_size == 1:
        return IterationCost()
    return IterationCost.of(compile_send(deployment).evaluate(batch.features()))


def engine_overhead(deployment: Deployment, seqs: float) -> IterationCost:
    """Host-side work of one engine iteration over `seqs` sequences (EngineConstants)."""
    constants = deployment.calibration
    return IterationCost(overhead_s=constants.iteration_overhead_s + constants.per_seq_overhead_s * seqs)


# Deployments that compile alike (planner.cost.compiled.cost_key) and share the engine's host-side constants cost
# every batch alike, so the memoised costs below are keyed by the first such deployment seen (its twin): copies of
# one instance that differ elsewhere (an engine with another batch cap, a cluster of another size, one context
# per instance size) reuse each other's answers.
_TWINS: IdentityMemo[Deployment] = IdentityMemo()
_FIRST: dict[tuple[Hashable, ...], Deployment] = {}
_FIRST_MAX = 4096


def cost_twin(deployment: Deployment) -> Deployment:
    """The first deployment seen whose stage and iteration costs are this one's."""
    twin = _TWINS.get(deployment)
    if twin is None:
        if len(_FIRST) >= _FIRST_MAX:
            _FIRST.clear()
        twin = _TWINS.put(deployment, _FIRST.setdefault((*cost_key(deployment), deployment.calibration), deployment))
    return twin


def iteration_cost(deployment: Deployment, batch: BatchShape) -> IterationCost:
    """Latency of one iteration of `batch` through the whole model: every stage in turn, the sends between
    them, and the engine's per-iteration overhead."""
    return _iteration_cost(cost_twin(deployment), batch)


@functools.lru_cache(maxsize=1 << 16)  # memoised as `stage_step` is: latency models re-cost the same prompts
def _iteration_cost(deployment: Deployment, batch: BatchShape) -> IterationCost:
    pp = deployment.pp_size
    cost = stage_cost(deployment, batch).scaled(pp) + send_cost(deployment, batch).scaled(pp - 1)
    return cost + engine_overhead(deployment, batch.seqs)


def iteration_times_s(deployment: Deployment, shapes: np.ndarray) -> np.ndarray:
    """`iteration_cost(...).time_s` for each row of `shapes` (N x FEATURES), in one vectorized evaluation."""
    pp = deployment.pp_size
    x = np.atleast_2d(shapes)
    total = compile_stage(deployment).evaluate(x).time_s * pp
    if pp > 1:
        total = total + compile_send(deployment).evaluate(x).time_s * (pp - 1)
    return np.asarray(total + engine_overhead_s(deployment, x[:, 2] + x[:, 5]))  # prefill_seqs + decode_seqs


def stage_step_times_s(deployment: Deployment, shapes: np.ndarray) -> np.ndarray:
    """`stage_step(...).time_s` for each row of `shapes` (N x FEATURES), in one vectorized evaluation."""
    x = np.atleast_2d(shapes)
    compiled = compile_stage_step(deployment) if deployment.pp_size > 1 else compile_stage(deployment)
    total = compiled.evaluate(x).time_s
    return np.asarray(total + engine_overhead_s(deployment, x[:, 2] + x[:, 5]))  # prefill_seqs + decode_seqs


def engine_overhead_s(deployment: Deployment, seqs: np.ndarray) -> np.ndarray:
    """`engine_overhead(...).time_s` for each entry of `seqs`."""
    constants = deployment.calibration
    return np.asarray(constants.iteration_overhead_s + constants.per_seq_overhead_s * np.asarray(seqs, dtype=float))


# Memoised: the planner asks for the same step over and over (every knob value of a layout, every rate a
# latency model is tabulated at, every bisection over batch sizes). Deployments and batch shapes are immutable
# values and so is the cost: a repeated question gets the same answer, computed once.
def stage_step(deployment: Deployment, batch: BatchShape) -> IterationCost:
    """One micro-batch through the busiest stage and across one boundary, plus the engine's host-side
    overhead: the interval at which a pipeline takes new work (the whole iteration when pp = 1)."""
    return _stage_step(cost_twin(deployment), batch)


@functools.lru_cache(maxsize=1 << 16)
def _stage_step(deployment: Deployment, batch: BatchShape) -> IterationCost:
    return stage_cost(deployment, batch) + send_cost(deployment, batch) + engine_overhead(deployment, batch.seqs)
