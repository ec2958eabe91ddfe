"""Predict a published measurement with the cost model.

`prepare()` resolves a row into a Deployment (with its GPU's kernel constants) and its memory once;
`predict()` then evaluates it under any engine constants, which is what the engine fit needs. Every prediction
expressed as a time (`predicted_time_s`) is linear in the two engine constants: both add host-side seconds to
iterations whose number and batch do not depend on them. The fit uses that linearity (`time_design`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.cost.iteration import stage_cost
from planner.cost.memory import MemoryBreakdown, memory_breakdown
from planner.cost.ops import BatchShape
from planner.errors import PlannerError
from planner.specs.catalog import Catalog
from planner.specs.deployment import Deployment
from planner.specs.engine import EngineConstants
from planner.specs.hardware import Cluster
from planner.specs.precision import Dtype
from planner.strategies import continuous
from planner.validation.measurements import Measurement

PREDICTABLE_METRICS = ("output_throughput_tok_s", "ttft_s", "single_output_tok_s", "forward_time_s", "batch_latency_s")
# Metrics measured as a rate (tokens/s): their time equivalent is the reciprocal.
RATE_METRICS = ("output_throughput_tok_s", "single_output_tok_s")


@dataclass(frozen=True, slots=True)
class Prepared:
    row: Measurement
    deployment: Deployment
    memory: MemoryBreakdown


def skip_reason(row: Measurement, catalog: Catalog) -> str | None:
    """Why a row cannot be expressed, or None."""
    if row.metric not in PREDICTABLE_METRICS:
        return f"metric {row.metric} not modelled"
    if row.input_len is None or (row.output_len is None and row.metric != "forward_time_s"):
        return f"variable-length dataset ({row.dataset}) without lengths"
    if row.gpu not in catalog.gpus:
        return "GPU not in catalog"
    if row.model not in catalog.models:
        return "model not in catalog"
    if row.engine not in catalog.engines or row.engine not in catalog.calibrations:
        return f"engine {row.engine} has no profile"
    return None


def prepare(row: Measurement, catalog: Catalog) -> Prepared | str:
    """The row's deployment and memory, or the reason it cannot be predicted."""
    reason = skip_reason(row, catalog)
    if reason:
        return reason
    gpu = catalog.gpu(row.gpu)
    cluster = Cluster(gpu=gpu, num_gpus=row.tp * row.pp, gpus_per_node=max(gpu.gpus_per_node, row.tp))
    try:
        deployment = catalog.deployment(
            catalog.models[row.model],
            cluster,
            row.tp,
            row.pp,
            Dtype(row.dtype),
            Dtype(row.kv_dtype),
            catalog.engines[row.engine],
        )
        memory = memory_breakdown(deployment)
    except PlannerError:
        return "predicted not to fit in memory"
    tokens = (row.input_len or 0) + (row.output_len or 0)
    if memory.kv_capacity_tokens < tokens:
        return "predicted not to fit in memory"
    if row.metric == "batch_latency_s" and memory.kv_capacity_tokens < int(row.concurrency or 1) * tokens:
        # The engine would preempt or swap part of the batch, which the static-batch model does not run.
        return "static batch larger than the predicted KV cache"
    return Prepared(row=row, deployment=deployment, memory=memory)


def predict(prepared: Prepared, constants: EngineConstants | None = None) -> float:
    """The row's metric under `constants` (default: the deployment's own), in the row's units."""
    row = prepared.row
    deployment = prepared.deployment
    if constants is not None:
        deployment = deployment.model_copy(update={"calibration": constants})
    i, o = row.input_len or 1, row.output_len or 1
    if row.metric == "forward_time_s":
        # A profiler forward pass: the model's layers and head on `input_len` tokens, no engine overhead.
        return stage_cost(deployment, BatchShape.prefill(i)).time_s
    if row.scenario == "single":
        point = continuous.static_batch(deployment, i, o, 1)
        if row.metric == "ttft_s":
            return point.ttft_s
        return o / (point.ttft_s + (o - 1) * point.tpot_s)
    if row.scenario == "static-batch":
        point = continuous.static_batch(deployment, i, o, int(row.concurrency or 1))
        if row.metric == "batch_latency_s":
            return point.batch_size / point.request_rate_req_s
    else:
        max_batch = continuous.max_decode_batch(deployment, i, o, prepared.memory.kv_capacity_tokens)
        point = continuous.steady_state(deployment, i, o, max_batch)
    return point.request_rate_req_s * o


def as_time(metric: str, value: float) -> float:
    """A measurement or prediction as a time: rates (tokens/s) become seconds per token."""
    return 1.0 / value if metric in RATE_METRICS else value


def predicted_time_s(prepared: Prepared, constants: EngineConstants | None = None) -> float:
    return as_time(prepared.row.metric, predict(prepared, constants))


# Unit changes of each engine constant used to read off the linear form (exact: predictions are linear in them).
_UNIT_STEPS = (EngineConstants(iteration_overhead_s=1e-3, per_seq_overhead_s=0.0),
               EngineConstants(iteration_overhead_s=0.0, per_seq_overhead_s=1e-5))  # fmt: skip


def time_design(rows: list[Prepared]) -> tuple[np.ndarray, np.ndarray]:
    """(base times with zero engine constants, N x 2 seconds added per unit of each constant) for `rows`:
    predicted time = base + design @ [iteration_overhead_s, per_seq_overhead_s]."""
    zero = EngineConstants(iteration_overhead_s=0.0, per_seq_overhead_s=0.0)
    base = np.array([predicted_time_s(p, zero) for p in rows])
    columns = []
    for step in _UNIT_STEPS:
        size = step.iteration_overhead_s + step.per_seq_overhead_s
        columns.append((np.array([predicted_time_s(p, step) for p in rows]) - base) / size)
    return base, np.stack(columns, axis=1)
