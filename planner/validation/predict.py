"""Predict a published measurement with the cost model.

`prepare()` resolves a row into a Deployment and its memory once (these do not depend on the efficiency
constants); `predict()` then evaluates it under any Calibration, which is what the fit needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.cost.iteration import stage_cost
from planner.cost.memory import MemoryBreakdown, memory_breakdown
from planner.cost.ops import BatchShape
from planner.errors import PlannerError
from planner.specs.catalog import Catalog
from planner.specs.deployment import Deployment
from planner.specs.engine import Calibration
from planner.specs.hardware import Cluster
from planner.specs.precision import Dtype
from planner.strategies import continuous
from planner.validation.measurements import Measurement

PREDICTABLE_METRICS = ("output_throughput_tok_s", "ttft_s", "single_output_tok_s", "forward_time_s")


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
    if row.engine not in catalog.engines:
        return f"engine {row.engine} has no profile"
    return None


def prepare(row: Measurement, catalog: Catalog, calibration: Calibration) -> Prepared | str:
    """The row's deployment and memory, or the reason it cannot be predicted."""
    reason = skip_reason(row, catalog)
    if reason:
        return reason
    gpu = catalog.gpu(row.gpu)
    cluster = Cluster(gpu=gpu, num_gpus=row.tp * row.pp, gpus_per_node=max(gpu.gpus_per_node, row.tp))
    try:
        deployment = Deployment(
            model=catalog.models[row.model],
            cluster=cluster,
            tp_size=row.tp,
            pp_size=row.pp,
            dtype=Dtype(row.dtype),
            kv_dtype=Dtype(row.kv_dtype),
            engine=catalog.engines[row.engine],
            calibration=calibration,
            calibration_family=gpu.architecture.value,
        )
        memory = memory_breakdown(deployment)
    except PlannerError:
        return "predicted not to fit in memory"
    if memory.kv_capacity_tokens < (row.input_len or 0) + (row.output_len or 0):
        return "predicted not to fit in memory"
    return Prepared(row=row, deployment=deployment, memory=memory)


def predict(prepared: Prepared, calibration: Calibration) -> float:
    """The row's metric under `calibration`, in the row's units (tokens/s or s)."""
    row = prepared.row
    deployment = prepared.deployment.model_copy(update={"calibration": calibration})
    i, o = row.input_len or 1, row.output_len or 1
    if row.metric == "forward_time_s":
        # A profiler forward pass: the model's layers and head on `input_len` tokens, no engine overhead.
        return stage_cost(deployment, BatchShape.prefill(i)).time_s
    if row.scenario == "single":
        point = continuous.steady_state(deployment, i, o, 1.0)
        if row.metric == "ttft_s":
            return point.ttft_s
        return o / (point.ttft_s + (o - 1) * point.tpot_s)
    if row.scenario == "static-batch":
        point = continuous.static_batch(deployment, i, o, int(row.concurrency or 1))
    else:
        max_batch = continuous.max_decode_batch(deployment, i, o, prepared.memory.kv_capacity_tokens)
        point = continuous.steady_state(deployment, i, o, max_batch)
    return point.request_rate_req_s * o
