"""Where one iteration of a plan's instance spends its time, by op kind, for a prefill and a decode iteration.

Each op of the busiest pipeline stage goes through its kernel law (planner.cost.compiled.op_cost, the
reference path), times the number of stages; the sends between stages and the engine's host-side work are
added, as planner.cost.iteration.iteration_cost adds them.

The shapes are the plan's operating point: a prefill iteration of one request of the workload's mean prompt
length, and a decode iteration of the batch the instance holds at its planned rate by Little's law
(sequences decoding = requests/s x output tokens per request x seconds per output token, split over the
pipeline's micro-batches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from planner.comparison import build_context
from planner.cost.compiled import op_cost
from planner.cost.iteration import engine_overhead
from planner.cost.ops import BatchShape, OpKind, stage_ops, stage_send_op
from planner.recommendation import Recommendation
from planner.search.plan import PlannedInstance
from planner.specs.catalog import Catalog
from planner.specs.deployment import Deployment

if TYPE_CHECKING:
    from planner.report.capacity import ReportSpec

KIND_LABELS = {
    OpKind.gemm: "GEMM",
    OpKind.prefill_attention: "attention",
    OpKind.decode_attention: "attention",
    OpKind.elementwise: "elementwise",
    OpKind.allreduce: "all-reduce",
    OpKind.p2p: "pipeline send",
}
HOST = "engine host work"
PARTS = ("GEMM", "attention", "elementwise", "all-reduce", "pipeline send", HOST)


class PhaseTimes(BaseModel):
    """Seconds of one iteration by op kind (PARTS), and the shape it was costed at."""

    model_config = ConfigDict(frozen=True)

    shape: str
    seconds: dict[str, float]

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


class IterationBreakdown(BaseModel):
    """A prefill and a decode iteration of one instance of the plan."""

    model_config = ConfigDict(frozen=True)

    instance: str  # e.g. "l20 TP2 PP2"
    prefill: PhaseTimes
    decode: PhaseTimes


def phase_times(d: Deployment, batch: BatchShape, shape: str) -> PhaseTimes:
    """One iteration of `batch` on deployment `d`, in seconds by op kind."""
    seconds = dict.fromkeys(PARTS, 0.0)
    pp = d.pp_size
    for op in stage_ops(d):
        seconds[KIND_LABELS[op.kind]] += float(op_cost(d, op, batch).time_s[0]) * pp
    send = stage_send_op(d)
    seconds[KIND_LABELS[send.kind]] += float(op_cost(d, send, batch).time_s[0]) * (pp - 1)
    seconds[HOST] += engine_overhead(d, batch.seqs).overhead_s
    return PhaseTimes(shape=shape, seconds=seconds)


def decode_batch(instance: PlannedInstance, tpot_s: float | None, mean_output_len: float, max_batch: int) -> float:
    """Sequences in one decode iteration of an instance at its planned rate: those decoding (Little's law)
    split over the PP micro-batches in flight, at least 1 and at most the engine's batch cap."""
    if tpot_s is None:
        return float(max_batch)
    decoding = instance.planned_rate_req_s * mean_output_len * tpot_s
    return min(max(decoding / instance.pp, 1.0), float(max_batch))


def iteration_breakdown(spec: ReportSpec, catalog: Catalog, rec: Recommendation) -> IterationBreakdown:
    """The breakdown for the plan's prefill instance (or its only one) and its decode instance."""
    work = spec.requests()
    instances = rec.plan.instances
    prefill_i = next((i for i in instances if i.role == "prefill"), instances[0])
    decode_i = next((i for i in instances if i.role == "decode"), instances[0])

    def deployment(i: PlannedInstance) -> Deployment:
        ctx = build_context(catalog, spec.model, f"{i.tp * i.pp}x{i.gpu}", work, spec.dtype, spec.kv_dtype,
                            spec.engine, spec.network, None)  # fmt: skip
        return ctx.deployment(i.tp, i.pp)

    d_prefill, d_decode = deployment(prefill_i), deployment(decode_i)
    prompt = max(round(work.mean_input_len), 1)
    context = work.mean_input_len + work.mean_output_len / 2  # a decoding sequence is halfway through its output
    batch = decode_batch(decode_i, rec.plan.predicted.tpot_s, work.mean_output_len, d_decode.engine.max_batch_size)
    label = f"{prefill_i.gpu} TP{prefill_i.tp} PP{prefill_i.pp}"
    if decode_i is not prefill_i:
        label += f" (prefill), {decode_i.gpu} TP{decode_i.tp} PP{decode_i.pp} (decode)"
    return IterationBreakdown(
        instance=label,
        prefill=phase_times(d_prefill, BatchShape.prefill(prompt), f"one prompt of {prompt} tokens"),
        decode=phase_times(
            d_decode,
            BatchShape.decode(batch, context),
            f"{batch:.0f} sequences at {context:.0f} tokens of context",
        ),
    )
