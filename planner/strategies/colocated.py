"""`colocated`: vLLM-style continuous batching, prompts first (Orca; vLLM V0 default scheduler).

Each replica runs prefill iterations as soon as prompts wait, stalling every running decode; a batch cap
limits the sequences in flight. With PP > 1 it is the naive pipeline, whose prompt micro-batches set the pace
of the decode micro-batches behind them (continuous.py).

Per request, under Poisson arrivals at rate R per replica:
- TTFT = queueing for a batch slot (M/M/c, continuous.slot_wait_s) and for the prompt server (M/D/1 at
  utilisation rho = R x t_prompt) + its own prefill + half a decode step already running;
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
from planner.strategies.numerics import poisson_ppf


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
            help="cap on sequences in flight per replica: lower caps cut TPOT and KV use, higher caps raise "
            "throughput while decode is memory-bound",
        ),
    )
    mixed_batching = False

    def deployment(self, ctx: Context, candidate: Candidate) -> Deployment:
        """The replica with this strategy's scheduling on the context's engine calibration."""
        engine = ctx.engine.model_copy(
            update={
                "mixed_batching": self.mixed_batching,
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

    def _max_batch(self, ctx: Context, deployment: Deployment, kv_capacity_tokens: int) -> float:
        w = ctx.workload
        return continuous.max_decode_batch(
            deployment, round(w.mean_input_len), round(w.mean_output_len), kv_capacity_tokens
        )

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        deployment = self.deployment(ctx, candidate)
        memory = memory_breakdown(deployment)
        w = ctx.workload
        point = continuous.steady_state(
            deployment,
            round(w.mean_input_len),
            round(w.mean_output_len),
            self._max_batch(ctx, deployment, memory.kv_capacity_tokens),
            w.mean_decode_context,
        )
        return point.request_rate_req_s * candidate.replicas

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        deployment = self.deployment(ctx, candidate)
        memory = memory_breakdown(deployment)
        w = ctx.workload
        mean_in, mean_out = round(w.mean_input_len), round(w.mean_output_len)
        rate = rate_req_s / candidate.replicas
        max_batch = self._max_batch(ctx, deployment, memory.kv_capacity_tokens)
        point = continuous.poisson(deployment, mean_in, mean_out, max_batch, rate, w.mean_decode_context)
        if not point.stable:
            return None
        slot_wait = continuous.slot_wait_s(point.batch_size, max_batch, rate)
        step_s = point.decode_step.time_s
        share_s = continuous.prefill_share_s(deployment, mean_in, max(point.batch_size, 1.0), w.mean_decode_context)
        rho, mean_wait = mdl_wait_s(rate, share_s)
        if rho >= 1:
            return None
        inputs, outputs = np.array(w.input_lens), np.array(w.output_lens)
        prompt_s = continuous.prefill_latencies_s(deployment, inputs)
        residual = step_s / 2 * min(1.0, point.batch_size)
        # A request waits when the prompt server is busy or every slot is taken; the chance of either is at
        # least the larger utilisation.
        p_wait = max(rho, point.batch_size / max_batch)
        ttft = queue_waits_s(len(inputs), p_wait, mean_wait + slot_wait) + prompt_s + residual
        decode_s = np.maximum(outputs - 1, 0) * step_s
        # Prompts keep arriving during the stalls themselves, so the decode phase lasts decode_s / (1 - rho) and
        # holds Poisson(rate x decode_s / (1 - rho)) stalls: mean TPOT t_step / (1 - rho), as continuous.poisson.
        stalls = poisson_ppf(seeded_quantiles(len(inputs), 1), rate * decode_s / (1 - rho))
        tpot = np.where(outputs > 1, (decode_s + stalls * share_s) / np.maximum(outputs - 1, 1), step_s)
        stall_share = min(1.0, rate * step_s)  # share of inter-token gaps that hold a prefill iteration
        tbt_p99 = step_s
        if stall_share > 0.01:
            # The p99 gap is a stalled one: among stalled gaps, take the prompt length at the matching level, plus
            # the prompts that arrived within the step and are batched into the same prefill iteration.
            level = 1 - 0.01 / stall_share
            batched = rate * step_s * w.mean_input_len
            tokens = min(float(np.quantile(inputs, level)) + batched, deployment.engine.max_num_tokens)
            tbt_p99 = step_s + continuous.prefill_latency_s(deployment, round(tokens))
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)
