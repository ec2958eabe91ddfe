"""`colocated`: vLLM-style continuous batching, prompts first (Orca; vLLM V0 default scheduler).

Each replica runs prefill iterations as soon as prompts wait, stalling every running decode; a batch cap
limits the sequences in flight. With PP > 1 it is the naive pipeline (vLLM V0's pp virtual engines, each with
1/pp of the KV cache and its own batch cap), whose prompt micro-batches set the pace of the decode micro-batches
in flight with them (continuous.packed_prefill_share_s).

The batch cap is the KV cache over the workload's output-weighted footprint in 16-token blocks, and a full
cache preempts by recompute (continuous.batch_limit). A prefill iteration holds the prompts that arrived during
the iteration before (one at low load), or, with the batch full, those the completions make room for
(continuous.poisson), so t_prompt is one such iteration over its prompts.

Per request, under Poisson arrivals at rate R per replica:
- TTFT = queueing for a batch slot (M/M/c, continuous.slot_wait_s) and for the prompt server (M/D/1 at
  utilisation rho = R x t_prompt) + its own prefill iteration (with the prompts that came with it) + half a
  decode step already running;
- TPOT = (pure decode time + stalls) / (O - 1), where prompts of others arrive during the request's decode
  phase, and during the stalls themselves, as a Poisson stream: the number of stalls is Poisson with mean
  R x decode time / (1 - rho);
- TBT p99: a stall lands in a given gap with probability R x t_step; beyond 1% of gaps the p99 gap holds a
  whole prefill iteration: a long-tail prompt plus the prompts batched with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np

from planner.cost.memory import memory_breakdown
from planner.specs.deployment import Deployment
from planner.strategies import continuous
from planner.strategies.base import (
    Candidate,
    Context,
    Infeasible,
    Knob,
    Latencies,
    Memory,
    Strategy,
    instance_memory,
    layout_candidates,
    layouts,
    mdl_wait_s,
    queue_waits_s,
    register,
    seeded_quantiles,
)
from planner.strategies.numerics import poisson_ppf, quantile


@register
class Colocated(Strategy):
    name = "colocated"
    summary = "continuous batching, prompts first; prompts stall decodes (vLLM default)"
    reference = "Orca (OSDI'22); vLLM (SOSP'23)"
    knobs: ClassVar[tuple[Knob, ...]] = (
        Knob(
            name="max_batch",
            default=256,
            search=(64, 256, 1024),
            help="cap on sequences in flight per scheduler, as vLLM's max_num_seqs (with PP > 1 each of the pp "
            "virtual engines has it): lower caps cut TPOT and KV use, higher caps raise throughput while decode "
            "is memory-bound",
        ),
    )
    mixed_batching = False

    def deployment(self, ctx: Context, candidate: Candidate) -> Deployment:
        """The replica with this strategy's scheduling on the context's engine calibration."""
        engine = ctx.engine.model_copy(
            update={
                "mixed_batching": self.mixed_batching,
                # Paged KV, allocated block by block as tokens are generated (vLLM V0, as the simulator runs this
                # strategy whatever the engine profile): not a reservation of the whole sequence at admission.
                "reserves_full_sequence": False,
                "max_batch_size": int(candidate.knobs.get("max_batch", ctx.engine.max_batch_size)),
                **self.engine_overrides(candidate),
            }
        )
        return ctx.deployment(candidate.tp, candidate.pp, engine)

    def engine_overrides(self, candidate: Candidate) -> dict[str, float]:
        return {}

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        return layout_candidates(self, ctx, layouts(ctx), knobs)

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        return instance_memory(ctx, self.deployment(ctx, candidate))

    def _limit(self, ctx: Context, deployment: Deployment) -> continuous.BatchLimit:
        """Batch caps over the workload's requests: the KV footprint is output-weighted and block-rounded, and a
        full cache preempts (continuous.batch_limit)."""
        w = ctx.workload
        kv_tokens = memory_breakdown(deployment).kv_capacity_tokens
        # With PP > 1 the instance runs pp virtual engines (vLLM V0), each with 1/pp of the cache and its own cap.
        engines = deployment.pp_size
        return continuous.batch_limit(deployment, w.input_lens, w.output_lens, kv_tokens, virtual_engines=engines)

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        deployment = self.deployment(ctx, candidate)
        w = ctx.workload
        limit = self._limit(ctx, deployment)
        point = continuous.steady_state(
            deployment,
            round(w.mean_input_len),
            round(w.mean_output_len),
            limit.max_batch,
            w.mean_decode_context,
            limit,
        )
        return point.request_rate_req_s * candidate.replicas

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        deployment = self.deployment(ctx, candidate)
        w = ctx.workload
        mean_in, mean_out = round(w.mean_input_len), round(w.mean_output_len)
        rate = rate_req_s / candidate.replicas
        limit = self._limit(ctx, deployment)
        max_batch = limit.max_batch
        scv = continuous.holding_scv(np.array(w.output_lens))
        point = continuous.poisson(deployment, mean_in, mean_out, max_batch, rate, w.mean_decode_context, limit, scv)
        if not point.stable:
            return None
        slot_wait = continuous.slot_wait_s(point.batch_size, max_batch, rate, scv)
        step_s = point.decode_step.time_s
        # Prompts per prefill iteration as continuous.poisson has them (one at low load, capacity's pack near
        # capacity); a prompt's own iteration prefills the others with it too (their time on the secant).
        prompts = point.prompts_per_prefill if mean_out > 1 else None
        others_s = 0.0
        if deployment.pp_size == 1 and prompts is not None:
            others_s = (prompts - 1) * continuous.prefill_iteration_secant(deployment, mean_in)[1]
        # With PP > 1 the prompt's cost is the pipeline beat's at this batch (packed_prefill_share_s), as capacity
        # has it: the output length and the batch limit say how often and how unevenly prefills come.
        share_s = continuous.prefill_share_s(
            deployment, mean_in, max(point.batch_size, 1.0), w.mean_decode_context, mean_out, prompts, limit
        )
        rho, mean_wait = mdl_wait_s(rate, share_s)
        if rho >= 1:
            return None
        inputs, outputs = np.array(w.input_lens), np.array(w.output_lens)
        decode_s = np.maximum(outputs - 1, 0) * step_s
        # Prompts keep arriving during the stalls themselves, so the decode phase lasts decode_s / (1 - rho) and
        # holds Poisson(rate x decode_s / (1 - rho)) stalls: mean TPOT t_step / (1 - rho), as continuous.poisson.
        stalls = poisson_ppf(seeded_quantiles(len(inputs), 1), rate * decode_s / (1 - rho))
        tpot = np.where(outputs > 1, (decode_s + stalls * share_s) / np.maximum(outputs - 1, 1), step_s)
        # A new prompt waits out half of the iteration running. With PP > 1 a virtual engine has one micro-batch
        # in flight, so it waits for that to come back: half of the engine's round, prefills in flight included,
        # which is the time between two tokens of its sequences (the mean TPOT), not the pure decode step.
        round_s = step_s if deployment.pp_size == 1 else float(np.mean(tpot))
        residual = round_s / 2 * min(1.0, point.batch_size)
        # A request waits when the prompt server is busy or every slot is taken; the chance of either is at
        # least the larger utilisation.
        p_wait = max(rho, point.batch_size / max_batch)
        prompt_s = continuous.prefill_latencies_s(deployment, inputs)
        ttft = queue_waits_s(len(inputs), p_wait, mean_wait + slot_wait) + prompt_s + others_s + residual
        stall_share = min(1.0, rate * step_s)  # share of inter-token gaps that hold a prefill iteration
        tbt_p99 = step_s
        if stall_share > 0.01:
            # The p99 gap is a stalled one: among stalled gaps, take the prompt length at the matching level, plus
            # the prompts that arrived within the step and are batched into the same prefill iteration.
            level = 1 - 0.01 / stall_share
            batched = rate * step_s * w.mean_input_len
            tokens = min(quantile(inputs, level) + batched, deployment.engine.max_num_tokens)
            tbt_p99 = step_s + continuous.prefill_latency_s(deployment, round(tokens))
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)
