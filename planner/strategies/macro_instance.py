"""`macro-instance`: groups of N instances alternating prefill and decode, with rolling activation (EcoServe).

EcoServe (arXiv 2504.18154, OSDI'26) runs N unmodified vLLM instances per macro instance under one scheduler
(author code `ecoserve/macro_instance.py`, read through a byte-copy of the author code). A single pointer names
the instance that takes new prompts; it moves to the next instance (mod N) when the current one cannot admit
the next prompt (its free KV blocks or its decoding requests' saved-TPOT credit run out). Each instance is thus
prefill-active for a window and decodes undisturbed while the others take prompts: temporal disaggregation
inside every instance, with no KV cache crossing the network (only requests, control and tokens).

Per instance (TP x PP from the layout search, vLLM prefill-first scheduling) at total Poisson rate R, with M
macros of N instances: macro rate lambda = R / M, instance rate lambda_i = lambda / N.
- Capacity: every instance at its KV-limited batch B_max, its prompts prefilled in its windows:
  X = M N x B_max / ((O - 1) t_d(B_max) + B_max t_p)  (continuous.steady_state, prefill-first).
- Prefill share: f_p = lambda_i t_p of an instance's time goes to prompts, all of it inside its windows
  (a planner reading of EcoServe's credit rule: f_p = 1/N when the rotation is saturated, lambda t_p = 1).
- TPOT = t_d(B) / (1 - f_p) for every request: the windows pause decode, and EcoServe admits a prefill burst
  only while every decoding request's credit (TTFT + iterations x TPOT - elapsed) covers it, so the pauses
  are paced over all decoding requests alike; there is no per-request lottery of stalls as in colocated.
- Rotation period Theta: a window ends when the target's KV is full, so each instance refills to B_max once
  per rotation and drains for the rest of it; with geometric request lifetimes of mean L = (O - 1) TPOT its
  mean batch is B_max (1 - e^-x) / x, x = Theta / L, which Little's law sets to B = lambda_i (TTFT + L).
  Window W = Theta / N.
- TTFT = wait for a KV slot in the macro (the rotation reaching an instance that admits: the N instances'
  slots pooled, continuous.slot_wait_s) + the queue at the target, which takes the whole macro's prompts
  (M/D/1 at rho_w = lambda t_p), at most one window (a longer backlog rotates to the next instance) + the
  prompt's own prefill + half a decode step already running.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from planner.cost.memory import memory_breakdown
from planner.errors import PlannerError
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
    layouts,
    mdl_wait_s,
    queue_waits_s,
    register,
)


def rotation_period_s(batch: float, max_batch: float, lifetime_s: float) -> float:
    """Theta with max_batch (1 - e^-x) / x = batch, x = Theta / lifetime (module docstring): the batch of an
    instance refilled to max_batch once a rotation and draining geometrically between visits averages
    `batch`. 0 when the batch is at the cap (the pointer turns as fast as prompts arrive)."""
    target = batch / max_batch
    if target >= 1.0 or lifetime_s <= 0:
        return 0.0
    low, high = 1e-9, 1e9  # (1 - e^-x) / x falls from 1 to 0 as x grows
    for _ in range(100):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if -math.expm1(-mid) / mid > target else (low, mid)
    return high * lifetime_s


def prefill_active_share(macro_rate_req_s: float, macro_size: int, prompt_s: float) -> float:
    """f_p: share of an instance's time spent on prompts, lambda_i t_p with lambda_i = lambda / N. When the
    rotation is saturated (the prefill-active instance never idles, lambda t_p = 1) it is 1 / N."""
    return macro_rate_req_s / macro_size * prompt_s


def macro_queue_wait_s(n: int, rate_req_s: float, prompt_s: float, window_s: float, seed: int = 4) -> np.ndarray:
    """Per-request wait at the prefill-active instance: M/D/1 at rho_w = macro rate x prompt time (the whole
    macro's prompts go to one instance), capped at one window: EcoServe rotates once the queued prefill time
    exceeds what the instance can admit, so a longer backlog starts on the next instance."""
    rho, mean_wait = mdl_wait_s(rate_req_s, prompt_s)
    if rho >= 1:  # the target saturates: every window holds a backlog, uniform up to the window
        return np.random.default_rng(seed).permutation((np.arange(n) + 0.5) / n) * window_s
    waits: np.ndarray = np.minimum(queue_waits_s(n, rho, mean_wait, seed), window_s if window_s > 0 else math.inf)
    return waits


@register
class MacroInstance(Strategy):
    name = "macro-instance"
    summary = "N instances per macro alternate prefill and decode, rolling activation; no KV transfer (EcoServe)"
    reference = "EcoServe (arXiv 2504.18154; OSDI'26)"
    knobs = (
        Knob(
            name="macro_size",
            default=3,
            search=(2, 3, 4),
            help="instances per macro instance: more share the rotation (pooled slots, shorter windows) but "
            "concentrate the macro's prompts on one instance at a time (EcoServe's bounds: 2 to 3)",
        ),
    )

    def deployment(self, ctx: Context, candidate: Candidate) -> Deployment:
        """An instance: unmodified vLLM scheduling, prompts first (EcoServe instances run vLLM 0.7.3)."""
        return ctx.deployment(candidate.tp, candidate.pp, ctx.engine.model_copy(update={"mixed_batching": False}))

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        for tp, pp in layouts(ctx):
            for values in self.knob_grid(knobs):
                size = int(values["macro_size"])
                if ctx.instance_gpus is not None and size * tp * pp != ctx.instance_gpus:
                    continue
                macros = ctx.cluster.num_gpus // (tp * pp) // size
                if macros < 1:
                    reason = f"a macro of {size} instances of TP {tp} x PP {pp} needs {size * tp * pp} GPUs"
                    yield Infeasible(strategy=self.name, tp=tp, pp=pp, knobs=values, reason=reason)
                    continue
                candidate = Candidate(
                    strategy=self.name,
                    tp=tp,
                    pp=pp,
                    replicas=macros * size,
                    gpus_used=macros * size * tp * pp,
                    knobs=values,
                    detail={"macros": macros, "macro_size": size},
                )
                try:
                    self.memory(ctx, candidate)
                except PlannerError as err:
                    yield Infeasible(strategy=self.name, tp=tp, pp=pp, knobs=values, reason=str(err))
                    continue
                yield candidate

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        return instance_memory(ctx, self.deployment(ctx, candidate))

    def _limit(self, ctx: Context, deployment: Deployment) -> continuous.BatchLimit:
        """Each instance's batch caps and preemptions, as a colocated vLLM instance's (continuous.batch_limit)."""
        w = ctx.workload
        kv_tokens = memory_breakdown(deployment).kv_capacity_tokens
        return continuous.batch_limit(deployment, w.input_lens, w.output_lens, kv_tokens)

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
        size = int(candidate.knobs["macro_size"])
        macro_rate = rate_req_s * size / candidate.replicas  # lambda: one macro's arrivals
        rate = macro_rate / size  # lambda_i: one instance's share
        limit = self._limit(ctx, deployment)
        max_batch = limit.max_batch
        point = continuous.poisson(deployment, mean_in, mean_out, max_batch, rate, w.mean_decode_context, limit)
        if not point.stable:
            return None
        step_s = point.decode_step.time_s
        prompt_share_s = continuous.prefill_share_s(
            deployment, mean_in, max(point.batch_size, 1.0), w.mean_decode_context
        )
        prefill_share = prefill_active_share(macro_rate, size, prompt_share_s)
        if prefill_share >= 1:
            return None
        tpot_s = step_s / (1 - prefill_share)
        lifetime_s = (mean_out - 1) * tpot_s
        window_s = rotation_period_s(point.batch_size, max_batch, lifetime_s) / size
        inputs, outputs = np.array(w.input_lens), np.array(w.output_lens)
        # The rotation reaching an instance with a free KV slot: the macro's N x B_max slots pooled.
        slot_s = continuous.slot_wait_s(size * point.batch_size, size * max_batch, macro_rate)
        queue_s = macro_queue_wait_s(len(inputs), macro_rate, prompt_share_s, window_s)
        p_slot = point.batch_size / max_batch
        ttft = (
            queue_waits_s(len(inputs), p_slot, slot_s, seed=5)
            + queue_s
            + continuous.prefill_latencies_s(deployment, inputs)
            + step_s / 2 * min(1.0, point.batch_size)
        )
        tpot = np.full(len(inputs), tpot_s)
        tpot = np.where(outputs > 1, tpot, step_s)
        # Inside its window the target's decode gaps hold the macro's prompts; a window is 1/N >= 1/4 of an
        # instance's time, far above 1% of gaps, so the p99 gap holds a prompt whenever prompts arrive there
        # more often than once in 100 steps.
        tbt_p99 = step_s + (prompt_share_s if macro_rate * step_s > 0.01 else 0.0)
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)
