"""`throttled-pipeline`: gLLM (SC'25) pipeline parallelism with token throttling.

Each of the pp micro-batches in flight carries about N_dec / pp decodes and a prompt chunk whose size the
scheduler throttles per micro-batch (gLLM @ecab5d8 `gllm/pp_scheduler.py`, seed notes section 3.1):

    UT = round(maxp x max(0, (free_ratio - kvthresh) / (1 - kvthresh)))     KV utilisation: less as KV fills
    WT = max(waiting_prompt_tokens // iterp, minp)                           waiting tokens: 1/iterp of the queue
    prefill budget = min(WT, UT, page_size x (free_pages - kvthresh x initial_free_pages))
    decode budget  = N_dec if N_dec < pp else floor((N_dec + jitter) / pp), jitter in 0..pp-1

so micro-batches are balanced and no whole prompt enters the pipeline: there are no prompt-induced bubbles,
unlike the naive pipeline of `colocated` (PP > 1), where a prompt micro-batch sets the pace of the stages.

Notation, per replica: d decodes and P prompt tokens per micro-batch, t the stage step of one micro-batch
(busiest stage + one activation send + the engine's per-iteration overhead, chunked.stage_step_s, with the
chunk's attention after the mean cached context of the prompt's earlier chunks, chunked.mean_cached_tokens),
I and O a request's prompt and output lengths, ctx the mean decode context, KV the KV capacity in tokens.

- Offline (prompts always waiting) WT is never the limit and UT settles where admissions balance
  completions: P = d E[I] / E[O - 1] and P = maxp (1 - k - pp d ctx / KV) / (1 - k) (KV in use: pp d
  sequences of ctx tokens), so d = maxp / (E[I] / E[O - 1] + maxp pp ctx / ((1 - k) KV)), at most maxd.
  Throughput: a micro-batch leaves the pipeline every t, with d decode tokens: X = d / (E[O - 1] t).
- Poisson arrivals at R: flow balance P = R E[I] t, Little's law d = R E[O - 1] t (a decode token is one
  round of pp micro-batches, each t), so t solves t = t_stage(R E[O - 1] t, R E[I] t) (Brent's method).
  TPOT = round time = pp t for every request (balanced micro-batches).
- TTFT: prompts wait in the throttled queue, which admits 1/iterp of its tokens per micro-batch: with P
  tokens admitted per micro-batch the queue holds Q = iterp P tokens (Little's law, WT-bound). A prompt of I
  joins behind Q; micro-batch j admits clip((Q + I (1 - 1/iterp)^j) / iterp, minp, UT) (its own excess
  drains geometrically), and the prompt is in once Q + I tokens are admitted, after k micro-batches. Chunks
  of one prompt ride in consecutive micro-batches (each stage already holds the earlier chunks' KV), so
  TTFT = t / 2 (to the next micro-batch) + (k - 1) t + pp t (the last chunk crosses every stage).
- TBT p99: the round in which the throttle admits the most, when the 99th-percentile prompt joins the queue:
  pp x t_stage(d, clip((Q + I_p99) / iterp, minp, UT)).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np

from planner.cost.memory import memory_breakdown
from planner.cost.ops import BatchShape
from planner.specs.deployment import Deployment
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
    register,
)
from planner.strategies.chunked import mean_cached_tokens, stage_step_s
from planner.strategies.numerics import bracketed_root, quantile

PAGE_SIZE_TOKENS = 16  # gLLM KV page (block) size, default [CODE gLLM @ecab5d8]
MAX_DECODES_PER_MICRO_BATCH = 256  # gLLM `maxd` default [CODE]; read as the cap of one micro-batch [INFERRED]
ROOT_TOLERANCE = 1e-9  # stage time found to a billionth of its bracket


# --- the token-throttling equations (gLLM pp_scheduler.py) --------------------------------------------------


def utilisation_budget_tokens(
    free_pages: float, total_pages: float, max_prefill_tokens: float, kv_threshold: float
) -> int:
    """UT: prefill tokens allowed by KV utilisation, maxp x max(0, (free_ratio - kvthresh) / (1 - kvthresh))."""
    free_ratio = free_pages / total_pages
    return round(max_prefill_tokens * max(0.0, (free_ratio - kv_threshold) / (1 - kv_threshold)))


def waiting_budget_tokens(waiting_tokens: int, min_prefill_tokens: int, iterp: int) -> int:
    """WT: prefill tokens allowed by the queue, max(waiting // iterp, minp)."""
    return max(waiting_tokens // iterp, min_prefill_tokens)


def prefill_budget_tokens(
    free_pages: int,
    total_pages: int,
    waiting_tokens: int,
    max_prefill_tokens: int,
    min_prefill_tokens: int,
    iterp: int,
    kv_threshold: float,
) -> float:
    """Prompt tokens one micro-batch may carry: min(WT, UT, page_size (free_pages - kvthresh x initial free
    pages)), never negative. The initial free pages are the whole cache (nothing allocated at start)."""
    pages = PAGE_SIZE_TOKENS * (free_pages - kv_threshold * total_pages)
    ut = utilisation_budget_tokens(free_pages, total_pages, max_prefill_tokens, kv_threshold)
    wt = waiting_budget_tokens(waiting_tokens, min_prefill_tokens, iterp)
    return max(0.0, min(wt, ut, pages))


def decode_budget(decodes: int, pp_size: int, jitter: int) -> int:
    """Decodes one micro-batch takes: all of them when fewer than pp, else floor((N_dec + jitter) / pp)."""
    return decodes if decodes < pp_size else (decodes + jitter) // pp_size


def offline_decodes_per_micro_batch(
    max_prefill_tokens: float,
    kv_threshold: float,
    kv_capacity_tokens: float,
    pp_size: int,
    mean_input: float,
    mean_decodes: float,
    mean_context: float,
) -> float:
    """Decodes per micro-batch when UT settles with prompts always waiting (see the module docstring):
    d = maxp / (E[I] / E[O - 1] + maxp pp ctx / ((1 - k) KV)), at most maxd."""
    prompt_per_decode = mean_input / mean_decodes  # prompt tokens admitted per decode token, in balance
    kv_per_decode = max_prefill_tokens * pp_size * mean_context / ((1 - kv_threshold) * kv_capacity_tokens)
    return min(max_prefill_tokens / (prompt_per_decode + kv_per_decode), float(MAX_DECODES_PER_MICRO_BATCH))


def throttle_micro_batches(
    input_lens: np.ndarray, queued_tokens: float, min_prefill_tokens: float, iterp: float, cap_tokens: float
) -> np.ndarray:
    """Micro-batches until each prompt is fully admitted (see TTFT in the module docstring), per prompt."""
    lens = np.asarray(input_lens, dtype=float)
    floor = max(min(min_prefill_tokens, cap_tokens), 1.0)
    per_step = max(floor, min(queued_tokens / iterp, cap_tokens))
    steps = math.ceil((queued_tokens + float(lens.max())) / per_step) + 1
    j = np.arange(steps)
    excess = lens[:, None] * (1 - 1 / iterp) ** j[None, :]  # the prompt's own tokens still above the queue
    admitted = np.cumsum(np.clip((queued_tokens + excess) / iterp, floor, max(cap_tokens, floor)), axis=1)
    done = admitted >= (queued_tokens + lens)[:, None]
    return np.asarray(np.argmax(done, axis=1) + 1, dtype=float)


@register
class ThrottledPipeline(Strategy):
    name = "throttled-pipeline"
    summary = "pipeline parallelism with per-micro-batch prefill/decode token budgets: balanced micro-batches"
    reference = "gLLM (SC'25)"
    knobs: ClassVar[tuple[Knob, ...]] = (
        Knob(
            name="max_prefill_tokens",
            default=2048,
            search=(1024, 2048, 4096),
            help="maxp: prompt tokens a micro-batch may carry with the KV cache empty (gLLM default 2048)",
        ),
        Knob(
            name="min_prefill_tokens",
            default=32,
            search=(32,),
            help="minp: prompt tokens a micro-batch carries at least while prompts wait (gLLM default 32)",
        ),
        Knob(
            name="iterp",
            default=8,
            search=(4, 8, 16),
            help="micro-batches over which the waiting prompt tokens are spread: lower admits prompts faster "
            "(shorter TTFT), higher keeps micro-batches smoother (gLLM default 8)",
        ),
        Knob(
            name="kv_threshold",
            default=0.05,
            search=(0.05,),
            help="share of the KV cache kept free for decodes: prefill stops when less is free (gLLM 0.05)",
        ),
    )

    def deployment(self, ctx: Context, candidate: Candidate) -> Deployment:
        """A replica on the context's engine calibration with mixed micro-batches; buffers are sized for one
        micro-batch: maxp prompt tokens plus maxd decodes."""
        maxp = int(self.knob(candidate, "max_prefill_tokens"))
        engine = ctx.engine.model_copy(
            update={
                "mixed_batching": True,
                "max_num_tokens": maxp + MAX_DECODES_PER_MICRO_BATCH,
                "max_batch_size": MAX_DECODES_PER_MICRO_BATCH,
            }
        )
        return ctx.deployment(candidate.tp, candidate.pp, engine)

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        """PP 2 and up (PP 1 has no pipeline to balance), TP within a node; replicas over the rest."""
        pairs = [(tp, pp) for tp, pp in layouts(ctx) if pp >= 2 and tp <= ctx.cluster.gpus_per_node]
        return layout_candidates(self, ctx, pairs, knobs)

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        return instance_memory(ctx, self.deployment(ctx, candidate))

    def knob(self, candidate: Candidate, name: str) -> float:
        """The candidate's value of a knob, or its default."""
        return candidate.knobs.get(name, next(k.default for k in self.knobs if k.name == name))

    def _stage_s(
        self, deployment: Deployment, inputs: np.ndarray, mean_context: float, decodes: float, prompt: float
    ) -> float:
        """Stage step of a micro-batch with `decodes` decodes and `prompt` prompt tokens (a chunk after the mean
        cached context of chunks of that size)."""
        batch = BatchShape.decode(max(decodes, 1e-3), mean_context)
        if prompt > 0:
            batch = batch + BatchShape.prefill(prompt, cached_len=mean_cached_tokens(inputs, prompt))
        return stage_step_s(deployment, batch)

    def _offline(self, ctx: Context, candidate: Candidate) -> tuple[Deployment, float, float, float]:
        """(deployment, decodes d and prompt tokens P per micro-batch, stage step t) with prompts always waiting."""
        deployment = self.deployment(ctx, candidate)
        w = ctx.workload
        decodes_per_req = max(w.mean_output_len - 1, 1e-9)
        d = offline_decodes_per_micro_batch(
            self.knob(candidate, "max_prefill_tokens"),
            self.knob(candidate, "kv_threshold"),
            memory_breakdown(deployment).kv_capacity_tokens,
            deployment.pp_size,
            w.mean_input_len,
            decodes_per_req,
            w.mean_decode_context,
        )
        prompt = d * w.mean_input_len / decodes_per_req
        t = self._stage_s(deployment, np.array(w.input_lens), w.mean_decode_context, d, prompt)
        return deployment, d, prompt, t

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        _, _, prompt, t = self._offline(ctx, candidate)
        # One micro-batch leaves the pipeline every t: d decode tokens, i.e. d / E[O - 1] requests, which is
        # also P / E[I] prompts admitted.
        return prompt / ctx.workload.mean_input_len / t * candidate.replicas

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        deployment, _, prompt_cap, t_cap = self._offline(ctx, candidate)
        w = ctx.workload
        pp, rate = deployment.pp_size, rate_req_s / candidate.replicas
        if rate >= prompt_cap / w.mean_input_len / t_cap:  # at or beyond the offline capacity of a replica
            return None
        maxp, minp = self.knob(candidate, "max_prefill_tokens"), self.knob(candidate, "min_prefill_tokens")
        iterp, kv_threshold = self.knob(candidate, "iterp"), self.knob(candidate, "kv_threshold")
        inputs = np.array(w.input_lens, dtype=float)
        mean_context, decodes_per_req = w.mean_decode_context, max(w.mean_output_len - 1, 0.0)

        def stage_at(t: float) -> float:
            return self._stage_s(
                deployment, inputs, mean_context, rate * decodes_per_req * t, rate * w.mean_input_len * t
            )

        t = bracketed_root(lambda x: stage_at(x) - x, 1e-9, t_cap, xtol=t_cap * ROOT_TOLERANCE)
        d, prompt = rate * decodes_per_req * t, rate * w.mean_input_len * t
        kv_tokens = memory_breakdown(deployment).kv_capacity_tokens
        free_tokens = max(kv_tokens - pp * d * mean_context, 0.0)
        ut = utilisation_budget_tokens(free_tokens, kv_tokens, maxp, kv_threshold)
        queued = iterp * prompt  # Little's law on the throttled queue (WT-bound)
        admitted = throttle_micro_batches(inputs, queued, minp, iterp, max(ut, prompt))  # UT >= P below capacity
        ttft = t / 2 + (admitted - 1) * t + pp * t
        tpot = np.full(len(inputs), pp * t)
        burst = (queued + quantile(inputs, 0.99)) / iterp
        burst = min(max(burst, minp), max(ut, prompt))
        tbt_p99 = pp * self._stage_s(deployment, inputs, mean_context, d, burst)
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)
