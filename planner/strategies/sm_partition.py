"""`sm-partition`: one instance's GPUs split their SMs between a prefill worker and a decode worker.

semi-PD (arXiv 2504.19867) runs a prefill process and a decode process on the same GPUs, each limited to a share
of the streaming multiprocessors by NVIDIA MPS (`CUDA_MPS_ENABLE_PER_CTX_DEVICE_MULTIPROCESSOR_PARTITIONING`,
semi-PD artifact README), with one copy of the weights and one KV cache that both address (unified memory: no
KV transfer, no replicated weights). Nexus (arXiv 2507.06608) does the same inside one engine. Both phases run
at once: prompts never stall decodes, and decodes never delay prompts, but each phase owns only part of the
compute and both draw on the same memory bandwidth.

The model, with s the prefill worker's SM share (knob `prefill_sm_share`):

- Compute. A worker with a share f of the SMs reaches f of every compute peak: the GPU's fitted kernel
  compute efficiencies are scaled by f (`worker`), and the unchanged cost model prices the phase. Each op then takes
  max(FLOPs / (f x peak x eff), bytes / bw) = t_min x max(1, s_sat / f), the saturating form Nexus describes
  (diminishing returns of SMs; seed_systems.md section 5), with s_sat = (FLOPs / (peak x eff)) / (bytes / bw):
  the op's arithmetic intensity over the ridge point (`saturation_share`). A memory-bound decode step
  saturates at a small share (it needs only enough SMs to keep up with the bandwidth); a compute-bound prefill
  slows ~1/f. Fixed per-kernel and per-iteration overheads (launches, scheduling) do not depend on SMs. The
  GEMM efficiency curve keeps the full GPU's ridge point: it describes tile occupancy of the matmul shape,
  which a smaller SM share does not change.
- Memory bandwidth (documented choice: fair sharing, not an additive term). Each worker's demand is the share
  of the attainable bandwidth its traffic would take over its iteration, d = traffic time at full bandwidth /
  iteration time (`traffic_s`). The memory system serves both streams max-min fairly: a worker is left
  max(1/2, 1 - d_other) of the bandwidth (`bandwidth_left`), so a compute-bound prefill (small demand) costs a
  memory-bound decode only the bytes it moves, and neither can be starved below half. The decode step runs at
  the left-over bandwidth while the prefill worker is busy (a share u_p of the time) and at full bandwidth
  otherwise: t_decode = u_p t_contended + (1 - u_p) t_alone. Demands are taken from the uncontended times
  (one pass, slightly pessimistic: contention lowers demand).
- Scheduling. The decode worker holds up to `max_batch` sequences (KV permitting) and is never stalled by
  prompts. The prefill worker serves prompts in batches of whatever is waiting, up to the engine's token
  budget: an M/D/1 queue whose per-prompt service is t_prefill(k) / k at the mean batch k = 1 + Lq (the
  queue a service start finds), solved by bisection; Lq = rho^2 / (2 (1 - rho)) (M/D/1), rho = R t(k) / k.
- TTFT = wait for the prefill worker (M/D/1, exponential tail; base.queue_waits_s) + its own prefill on s of
  the SMs + the marginal cost of the k - 1 prompts batched with it + the wait for a decode slot (M/M/c).
- TPOT = the decode step on 1 - s of the SMs with its bandwidth share, at the batch B = R (O - 1) t_decode(B)
  (Little's law). TBT p99 = the contended step once prompts occupy more than 1% of the time.
- Capacity (offline) = min(prefill capacity k_max / t_prefill(k_max), decode capacity), where the decode
  capacity X solves X (O - 1) (t_alone + (X / P) (t_contended - t_alone)) = B_max.
- Memory: one weight copy and one KV cache, plus a second runtime reserve (each worker is its own process
  with a CUDA context and buffers, the engine's per-process reserve) and the decode worker's activations.

Not modelled: PP (semi-PD is an SGLang fork serving TP instances), the dynamic re-partitioning of semi-PD and
the greedy SM search of Nexus (the share is a searched knob, fixed per configuration), the finite number of
SMs an MPS client needs to pull full bandwidth (no cited figure), and link contention between the workers'
TP all-reduces.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from planner.cost.compiled import compile_stage
from planner.cost.iteration import iteration_cost
from planner.cost.memory import activation_bytes_per_gpu, memory_breakdown
from planner.cost.ops import BatchShape
from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.specs.hardware import GIB
from planner.strategies import continuous
from planner.strategies.base import (
    Candidate,
    Context,
    Infeasible,
    Knob,
    Latencies,
    Memory,
    Strategy,
    layout_candidates,
    layouts,
    mdl_wait_s,
    queue_waits_s,
    register,
    require_request_fits,
)

FAIR_SHARE = 0.5  # max-min fair share of the memory bandwidth when both workers want more than half

# --- SM and bandwidth shares ----------------------------------------------------------------------------------


def saturation_share(flops: float, bytes_moved: float, flops_s: float, bytes_s: float) -> float:
    """SM share past which an op stops speeding up: its compute time at the full peak over its memory time,
    i.e. its arithmetic intensity (FLOPs/byte) over the ridge point (flops_s / bytes_s). Above 1 the op is
    compute-bound even on the whole GPU and speeds up with every SM."""
    return (flops / flops_s) / (bytes_moved / bytes_s)


def phase_time_s(t_min_s: float, s_sat: float, sm_share: float) -> float:
    """Nexus's saturating phase time (seed_systems.md section 5): t_min below saturation, 1/share above."""
    return t_min_s * max(1.0, s_sat / sm_share)


def worker(deployment: Deployment, sm_share: float, bw_share: float = 1.0) -> Deployment:
    """The deployment as a worker holding `sm_share` of each GPU's SMs and `bw_share` of its attainable
    memory bandwidth sees it: every compute rate scales with the SMs (the kernels' compute efficiencies x
    share), every memory rate with the bandwidth left to it (their bandwidth efficiencies x share); fixed
    latencies and links do not change."""
    k = deployment.kernels
    scaled = k.model_copy(
        update={
            "gemm": {
                key: c.model_copy(
                    update={"compute_eff": c.compute_eff * sm_share, "memory_eff": c.memory_eff * bw_share}
                )
                for key, c in k.gemm.items()
            },
            "prefill_attention": {
                key: c.model_copy(update={"compute_eff": c.compute_eff * sm_share})
                for key, c in k.prefill_attention.items()
            },
            "decode_attention": {
                key: c.model_copy(update={"kv_bw_eff": c.kv_bw_eff * bw_share}) for key, c in k.decode_attention.items()
            },
            "elementwise": k.elementwise.model_copy(update={"bw_eff": k.elementwise.bw_eff * bw_share}),
        }
    )
    return deployment.model_copy(update={"kernels": scaled})


def traffic_s(deployment: Deployment, batch: BatchShape) -> float:
    """Seconds one iteration's memory traffic holds one GPU's whole attainable bandwidth: every op's bytes
    over bandwidth x its efficiency; all-reduces and sends use the links, not memory."""
    return float(compile_stage(deployment).traffic_s(batch.features())[0])


def bandwidth_left(other_demand: float) -> float:
    """Share of the bandwidth a worker gets beside another whose demand is `other_demand` (max-min fairness
    between two streams): what the other leaves, but never below half."""
    return max(FAIR_SHARE, 1.0 - other_demand)


# --- the two workers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workers:
    """Both workers' phase times for one configuration at one operating point."""

    prefill: Deployment  # s of the SMs, the bandwidth the decode worker leaves
    decode_alone: Deployment  # 1 - s of the SMs, the whole bandwidth (prefill idle)
    decode_contended: Deployment  # 1 - s of the SMs, the bandwidth a busy prefill leaves
    decode_context: float

    def decode_step_s(self, batch: float, prefill_busy: float) -> float:
        """Mean decode step when the prefill worker is busy a share `prefill_busy` of the time."""
        alone = continuous.decode_step(self.decode_alone, batch, self.decode_context).time_s
        contended = continuous.decode_step(self.decode_contended, batch, self.decode_context).time_s
        return prefill_busy * contended + (1.0 - prefill_busy) * alone


def build_workers(
    base: Deployment,
    sm_share: float,
    input_len: float,
    prefill_batch: float,
    decode_batch: float,
    decode_context: float,
) -> Workers:
    """Price both workers with their SM shares and the bandwidth each leaves the other (module docstring):
    demands from the uncontended iterations, then each worker's share of the bandwidth."""
    prompts = BatchShape.prefill(input_len, prefill_batch)
    decodes = BatchShape.decode(decode_batch, decode_context)
    prefill_alone = worker(base, sm_share)
    decode_alone = worker(base, 1.0 - sm_share)
    prefill_demand = traffic_s(base, prompts) / iteration_cost(prefill_alone, prompts).time_s
    decode_demand = traffic_s(base, decodes) / continuous.decode_step(decode_alone, decode_batch, decode_context).time_s
    return Workers(
        prefill=worker(base, sm_share, bandwidth_left(decode_demand)),
        decode_alone=decode_alone,
        decode_contended=worker(base, 1.0 - sm_share, bandwidth_left(prefill_demand)),
        decode_context=decode_context,
    )


def prefill_batch(prefill: Deployment, input_len: float, max_prompts: float, rate_req_s: float) -> float | None:
    """Mean prompts per prefill iteration under Poisson arrivals: k = 1 + Lq(rho(k)), rho(k) = R t(k) / k,
    Lq = rho^2 / (2 (1 - rho)) (M/D/1 queue at a service start), capped at the token budget. None when even
    full batches cannot keep up."""

    def rho(k: float) -> float:
        return rate_req_s * iteration_cost(prefill, BatchShape.prefill(input_len, k)).time_s / k

    def excess(k: float) -> float:
        r = rho(k)
        return math.inf if r >= 1 else 1.0 + r * r / (2 * (1 - r)) - k

    if rho(max_prompts) >= 1:
        return None
    if excess(max_prompts) >= 0:
        return max_prompts
    low, high = 1.0, max_prompts
    for _ in range(30):  # excess falls with k: larger batches amortise the weight reads
        mid = (low + high) / 2
        low, high = (mid, high) if excess(mid) > 0 else (low, mid)
    return high


@register
class SmPartition(Strategy):
    name = "sm-partition"
    summary = "prefill and decode workers split each GPU's SMs (MPS), sharing one copy of weights and KV"
    reference = "semi-PD (arXiv 2504.19867); Nexus (arXiv 2507.06608)"
    knobs = (
        Knob(
            name="prefill_sm_share",
            default=0.5,
            search=(0.3, 0.4, 0.5, 0.6, 0.7),
            help="share of each GPU's SMs given to the prefill worker (the decode worker gets the rest): more "
            "cuts TTFT and raises prompt capacity, less keeps decode steps short",
        ),
        Knob(
            name="max_batch",
            default=256,
            search=(64, 256, 1024),
            help="cap on sequences the decode worker holds: lower caps cut TPOT, higher caps raise throughput",
        ),
    )

    def deployment(self, ctx: Context, candidate: Candidate) -> Deployment:
        """One instance with the decode batch cap; each worker runs a single phase (no mixed batches)."""
        engine = ctx.engine.model_copy(
            update={"mixed_batching": False, "max_batch_size": int(candidate.knobs["max_batch"])}
        )
        return ctx.deployment(candidate.tp, candidate.pp, engine)

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        return layout_candidates(self, ctx, layouts(ctx, max_pp=1), knobs)

    def _sized(self, ctx: Context, candidate: Candidate) -> Deployment:
        """The instance with both workers' reserves: a second per-process runtime reserve and the decode
        worker's activations (a decode iteration of max_batch tokens), on top of the prefill worker's."""
        base = self.deployment(ctx, candidate)
        engine = base.engine
        decode_engine = engine.model_copy(update={"max_num_tokens": engine.max_batch_size})
        decode_act_gib = activation_bytes_per_gpu(base.model_copy(update={"engine": decode_engine})) / GIB
        sized = engine.model_copy(update={"runtime_reserve_gib": 2 * engine.runtime_reserve_gib + decode_act_gib})
        return base.model_copy(update={"engine": sized})

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        if not 0 < candidate.knobs["prefill_sm_share"] < 1:
            raise PlannerError("prefill_sm_share must lie strictly between 0 and 1: both workers need SMs")
        sized = self._sized(ctx, candidate)
        memory = memory_breakdown(sized)
        require_request_fits(ctx, memory)
        gib = memory.as_gib()
        reserve_gib = 2 * ctx.engine.runtime_reserve_gib
        gib["decode_activations"] = gib["runtime_reserve"] - reserve_gib
        gib["runtime_reserve"] = reserve_gib
        return Memory(gib=gib, kv_capacity_tokens=memory.kv_capacity_tokens)

    def _limits(self, ctx: Context, candidate: Candidate) -> tuple[Deployment, float, float]:
        """(instance, largest decode batch, most prompts per prefill iteration)."""
        sized = self._sized(ctx, candidate)
        w = ctx.workload
        kv_tokens = memory_breakdown(sized).kv_capacity_tokens
        max_batch = continuous.max_decode_batch(sized, round(w.mean_input_len), round(w.mean_output_len), kv_tokens)
        max_prompts = float(max(1, sized.engine.max_num_tokens // round(w.mean_input_len)))
        return sized, max_batch, max_prompts

    def workers(self, ctx: Context, candidate: Candidate) -> Workers:
        """Both workers priced at the offline operating point: full prompt batches, the largest decode batch."""
        base, max_batch, max_prompts = self._limits(ctx, candidate)
        w = ctx.workload
        share = candidate.knobs["prefill_sm_share"]
        return build_workers(base, share, w.mean_input_len, max_prompts, max_batch, w.mean_decode_context)

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        base, max_batch, max_prompts = self._limits(ctx, candidate)
        w = ctx.workload
        share = candidate.knobs["prefill_sm_share"]
        workers = build_workers(base, share, w.mean_input_len, max_prompts, max_batch, w.mean_decode_context)
        prefill_s = iteration_cost(workers.prefill, BatchShape.prefill(w.mean_input_len, max_prompts)).time_s
        prefill_req_s = max_prompts / prefill_s
        steps = w.mean_output_len - 1
        if steps <= 0:
            return prefill_req_s * candidate.replicas
        alone = workers.decode_step_s(max_batch, 0.0)
        contended = workers.decode_step_s(max_batch, 1.0)
        # X (O - 1) (alone + X / P (contended - alone)) = B: quadratic a X^2 + b X - B = 0 in the rate X.
        a, b = steps * (contended - alone) / prefill_req_s, steps * alone
        decode_req_s = max_batch / b if a <= 0 else (-b + math.sqrt(b * b + 4 * a * max_batch)) / (2 * a)
        return min(prefill_req_s, decode_req_s) * candidate.replicas

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        base, max_batch, max_prompts = self._limits(ctx, candidate)
        w = ctx.workload
        share = candidate.knobs["prefill_sm_share"]
        rate = rate_req_s / candidate.replicas
        mean_in, steps = w.mean_input_len, max(w.mean_output_len - 1, 0.0)
        # First pass at the full decode batch (the most bandwidth decode can demand), then at the solved batch.
        workers = build_workers(base, share, mean_in, max_prompts, max_batch, w.mean_decode_context)
        batch_k = prefill_batch(workers.prefill, mean_in, max_prompts, rate)
        if batch_k is None:
            return None
        t_k = iteration_cost(workers.prefill, BatchShape.prefill(mean_in, batch_k)).time_s
        busy = min(1.0, rate * t_k / batch_k)

        def excess(batch: float) -> float:  # Little's law on the decode worker: B = R (O - 1) t_decode(B)
            return rate * steps * workers.decode_step_s(max(batch, 1.0), busy) - batch

        if excess(max_batch) > 0:
            return None
        low, high = 0.0, max_batch
        for _ in range(30):
            mid = (low + high) / 2
            low, high = (mid, high) if excess(mid) > 0 else (low, mid)
        decode_batch = max(high, 1.0)
        workers = build_workers(base, share, mean_in, batch_k, decode_batch, w.mean_decode_context)
        batch_k = prefill_batch(workers.prefill, mean_in, max_prompts, rate)
        if batch_k is None:
            return None
        one_s = iteration_cost(workers.prefill, BatchShape.prefill(mean_in)).time_s
        t_k = iteration_cost(workers.prefill, BatchShape.prefill(mean_in, batch_k)).time_s
        rho, mean_wait = mdl_wait_s(rate, t_k / batch_k)
        if rho >= 1:
            return None
        inputs = np.array(w.input_lens)
        own_s = continuous.prefill_latencies_s(workers.prefill, inputs)
        slot_wait = continuous.slot_wait_s(high, max_batch, rate)
        p_wait = max(rho, high / max_batch)
        ttft = queue_waits_s(len(inputs), p_wait, mean_wait + slot_wait) + own_s + (t_k - one_s)
        step_s = workers.decode_step_s(decode_batch, rho)
        tpot = np.full(len(inputs), step_s)
        worst_step = workers.decode_step_s(decode_batch, 1.0 if rho > 0.01 else 0.0)
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=worst_step)
