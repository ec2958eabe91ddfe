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
- Poisson arrivals at R (planner.strategies.token_throttle holds the throttle's fluid model). A round T, the
  time between two micro-batches of one virtual engine and so a decode token of each of its sequences, solves
  T = F(T) (numerics.bracketed_root):
    d = R E[O - 1] T / pp decodes per micro-batch (Little's law; the balancer spreads them), UT from their KV;
    W, the prompt tokens not yet computed: a prompt's chunks ride its virtual engine's micro-batches, one per
      round (as planner.sim.throttled schedules them), each min(left, b(W)), b(W) = min(max(W / iterp, minp),
      UT); Little's law over those rounds and over the admission queue (an M/G/1 server: the pp budgets of a
      round against R E[I] T prompt tokens arriving) gives W, Campbell's theorem its variance (log-normal);
    a micro-batch carries its budget b(W) or no prompt, in the share R E[I] T / (pp E[b]) that flow balance
      asks; its stage step t(d, P) at P = 0 and at b(W) over the quantiles of W;
    F = E[t] + (pp - 1) E[slowest of the pp in flight] (the stages are a flow shop; W takes 1 + T / (its
      token sojourn W / (R E[I])) independent levels within a round).
  Beyond the rate where no round satisfies it (KV filling, UT shrinking) the replica is past what it carries.
- TTFT = T / (2 pp) (to the next micro-batch planned) + the admission wait (base.queue_waits_s at the M/G/1
  utilisation and mean wait) + the prompt's rounds (a mean over W's quantiles) x its own round: p + (pp - 1)
  max(p, slowest), p the step with its mean chunk, so a long prompt's chunks pace the rounds that carry them.
- TPOT: the round, moved for each request by the load it meets over its decode phase (the Poisson count of
  the decodes beside it; the round's fast and slow responses to the rate, see `latencies`).
- TBT p99: the own round of a micro-batch carrying the budget at the 99th percentile of W, p + (pp - 1)
  max(p, slowest) at p = t(d, b(W_99)), and at least the p99 of TPOT.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from planner.cost.iteration import stage_step_times_s
from planner.cost.memory import memory_breakdown
from planner.cost.ops import FEATURES
from planner.specs.deployment import Deployment
from planner.strategies import token_throttle
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
    queue_waits_s,
    register,
)
from planner.strategies.chunked import mean_cached_tokens_by_chunk
from planner.strategies.numerics import bracketed_root, quantile, upward_bracket

PAGE_SIZE_TOKENS = 16  # gLLM KV page (block) size, default [CODE gLLM @ecab5d8]
MAX_DECODES_PER_MICRO_BATCH = 256  # gLLM `maxd` default [CODE]; read as the cap of one micro-batch [INFERRED]
ROOT_TOLERANCE = 1e-7  # round found to this share of the top of its bracket
BRACKET_STEP = 1.5  # growth of the trial round while looking for the fixed point
MAX_BRACKET_STEPS = 24  # trial rounds before the rate counts as beyond what the throttle carries
DERIVATIVE_STEP = 1e-2  # relative step of the central differences of the round (far above ROOT_TOLERANCE)
REPRESENTATIVES = 64  # workload lengths the fixed points iterate over
CHUNK_GRID_POINTS = 24  # chunk sizes (log-spaced) at which a prompt's own rounds are costed, then interpolated


# --- the token-throttling equations (gLLM pp_scheduler.py) --------------------------------------------------


def utilisation_budget_tokens(
    free_pages: float, total_pages: float, max_prefill_tokens: float, kv_threshold: float
) -> int:
    """UT: prefill tokens allowed by KV utilisation, maxp x max(0, (free_ratio - kvthresh) / (1 - kvthresh))."""
    return round(utilisation_budget(free_pages / total_pages, max_prefill_tokens, kv_threshold))


def utilisation_budget(free_ratio: float, max_prefill_tokens: float, kv_threshold: float) -> float:
    """UT before gLLM rounds it to tokens (a mean over time, for the fluid model)."""
    return max_prefill_tokens * max(0.0, (free_ratio - kv_threshold) / (1 - kv_threshold))


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
        return float(micro_batch_steps_s(deployment, inputs, mean_context, decodes, np.array([prompt]))[0])

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
        inputs, outputs = np.array(w.input_lens, dtype=float), np.array(w.output_lens, dtype=float)
        prompts = representatives(inputs)
        mean_context, decodes_per_req = w.mean_decode_context, max(w.mean_output_len - 1, 0.0)
        kv_tokens = memory_breakdown(deployment).kv_capacity_tokens

        @functools.cache
        def at(round_s: float, rate_req_s: float, decodes_scale: float = 1.0) -> _Point | None:
            """The replica with rounds of round_s: decodes by Little's law (times decodes_scale), UT from the KV
            they hold, W."""
            decodes = decodes_scale * rate_req_s * decodes_per_req * round_s / pp  # per micro-batch, balanced
            free_ratio = max(kv_tokens - pp * decodes * mean_context, 0.0) / kv_tokens
            cap = utilisation_budget(free_ratio, maxp, kv_threshold)
            if cap <= 0:
                return None
            state = token_throttle.throttle_state(prompts, rate_req_s, round_s, pp, minp, iterp, cap)
            if state is None:
                return None
            budgets = token_throttle.budget_quantiles(state, minp, iterp, cap)
            steps = micro_batch_steps_s(deployment, prompts, mean_context, decodes, np.concatenate([[0.0], budgets]))
            # Flow balance: R E[I] T / pp prompt tokens per micro-batch on average, carried as whole budgets.
            share = min(1.0, rate_req_s * w.mean_input_len * round_s / pp / float(budgets.mean()))
            # W's levels within a round: it decorrelates over the time a prompt token stays uncomputed,
            # W / (R E[I]) (Little's law), so the pp micro-batches of a round see 1 + T / that of them.
            levels = min(pp, 1 + round_s * rate_req_s * w.mean_input_len / max(state.mean_tokens, 1.0))
            times = token_throttle.round_times(float(steps[0]), steps[1:], share, pp, levels)
            return _Point(times, decodes, cap, state)

        def excess_s(round_s: float, rate_req_s: float = rate, decodes_scale: float = 1.0) -> float:
            point = at(round_s, rate_req_s, decodes_scale)
            return math.inf if point is None else point.round.mean_s - round_s

        idle_s = pp * float(micro_batch_steps_s(deployment, prompts, mean_context, 0.0, np.zeros(1))[0])
        # From the offline round up (F - T > 0 at the empty pipeline's round), halving back where the KV cache
        # leaves no budget (F infinite).
        bracket = upward_bracket(excess_s, idle_s, pp * t_cap, BRACKET_STEP, MAX_BRACKET_STEPS)
        if bracket is None:
            return None
        t = bracketed_root(excess_s, *bracket, xtol=bracket[1] * ROOT_TOLERANCE)
        point = at(t, rate)
        if point is None:  # the root landed where the budgets no longer carry the prompts
            return None
        state = point.state

        # TTFT: the next micro-batch to be planned (one every T / pp) + the admission queue + one round per chunk,
        # the last round ending as its micro-batch leaves the last stage. The rounds that carry a prompt's chunks
        # are paced by them when they are the slowest in flight (Round.own_s at its mean chunk, I / rounds): a
        # long prompt's chunks of several hundred tokens stretch its own rounds well beyond the mean.
        rounds = token_throttle.mean_prompt_rounds(inputs, state, minp, iterp, point.cap_tokens)
        chunks = inputs / rounds
        grid = np.geomspace(1.0, float(chunks.max()), CHUNK_GRID_POINTS)
        grid_steps = micro_batch_steps_s(deployment, prompts, mean_context, point.decodes, grid)
        own_round = point.round.own_s(np.interp(chunks, grid, grid_steps))
        waits = queue_waits_s(len(inputs), state.utilisation, state.wait_s)
        ttft = t / (2 * pp) + waits + rounds * own_round

        # TPOT: a request's O - 1 rounds average out the round-to-round variation of the micro-batches (their
        # spread falls as 1 / sqrt(O - 1)), not the load it meets over its decode phase of L = (O - 1) T: the
        # Poisson arrivals it shares rounds with make the mean rate over it R + dR, dR / R = cv z
        # (token_throttle.lifetime_rate_cv; z normal scores in a seeded order). The round T = F(T, R, d)
        # answers through two loops, whose slopes are central differences at the fixed point:
        # - fast, through the prompt tokens (more per round, larger chunks; W settles within a few rounds):
        #   F_T, F_R at fixed decodes, so at once dT0 = F_R dR / c, c = 1 - F_T;
        # - slow, through the decodes in flight d = R E[O - 1] T / pp, which follow only over a decode lifetime
        #   E[S]: D = dF / d ln d, of gain g = D / T on T and D / R on R.
        # The slow part settles as a first-order lag of time constant E[S] c / (c - g); over the window L it
        # adds (c b + a g) L / (c ((c - g) L + c E[S])) to dT0 (a = F_R dR, b = D dR / R), which is finite even
        # where the fixed point is flat (c = g, and beyond: then it grows with L, capped there at c = g).
        tpot = np.full(len(outputs), t)
        if rate > 0 and decodes_per_req > 0:
            up, down = 1 + DERIVATIVE_STEP, 1 - DERIVATIVE_STEP
            # F - T at T (1 +- h), its decodes held by scaling them by 1 / (1 +- h); then at R (1 +- h), likewise.
            fast_t = (excess_s(t * up, rate, 1 / up) - excess_s(t * down, rate, 1 / down)) / (t * (up - down)) + 1
            fast_r = (excess_s(t, rate * up, 1 / up) - excess_s(t, rate * down, 1 / down)) / (rate * (up - down))
            by_decodes = (excess_s(t, rate, up) - excess_s(t, rate, down)) / math.log(up / down)  # dF / d ln d
            lifetimes = np.maximum(outputs - 1, 0) * t
            others = representatives(lifetimes)
            rate_change = math.sqrt(rate) * token_throttle.lifetime_rate_cv(lifetimes, others)  # R cv, cv ~ 1/sqrt(R)
            rate_change = rate_change * token_throttle.normal_scores(len(outputs), 1)
            c, g = 1 - fast_t, by_decodes / t
            if math.isfinite(c + g + fast_r) and c > 0:  # else a step past what the budgets carry: none to read
                a, b = fast_r * rate_change, by_decodes * rate_change / rate
                lag = c * (max(c - g, 0.0) * lifetimes + c * float(others.mean()))
                tpot = np.maximum(t + a / c + (c * b + a * g) * lifetimes / lag, idle_s)

        # TBT p99: a round paced by a micro-batch carrying the budget at the 99th percentile of W, behind the
        # slowest in flight (Round.own_s); and no shorter than the p99 of TPOT, since the requests slowed by the
        # load they meet (the slowest hundredth) see gaps that average to at least it.
        budget_p99 = token_throttle.budget_quantiles(state, minp, iterp, point.cap_tokens, (0.99,))
        step_p99 = micro_batch_steps_s(deployment, prompts, mean_context, point.decodes, budget_p99)
        tbt_p99 = max(float(point.round.own_s(step_p99)[0]), quantile(tpot, 0.99), t)
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)


@dataclass(frozen=True, slots=True)
class _Point:
    """One replica at a trial round: the round it implies, decodes per micro-batch, UT (tokens), W."""

    round: token_throttle.Round
    decodes: float
    cap_tokens: float
    state: token_throttle.ThrottleState


def representatives(values: np.ndarray, count: int = REPRESENTATIVES) -> np.ndarray:
    """At most `count` values standing for the workload's (its order statistics at evenly spaced quantiles), so
    the fixed points iterate over a short array whatever the workload's size."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if len(ordered) <= count:
        return ordered
    picked: np.ndarray = ordered[((np.arange(count) + 0.5) / count * len(ordered)).astype(int)]
    return picked


def micro_batch_steps_s(
    deployment: Deployment, inputs: np.ndarray, mean_context: float, decodes: float, prompt_tokens: np.ndarray
) -> np.ndarray:
    """Stage steps (s) of micro-batches of `decodes` decodes and each of `prompt_tokens` prompt tokens (none: a
    decode-only micro-batch), in one vectorised evaluation: row by row BatchShape.decode(decodes, ctx) +
    BatchShape.prefill(P, cached_len=c), c the mean cached context of chunks of P (chunked.
    mean_cached_tokens_by_chunk)."""
    prompt = np.asarray(prompt_tokens, dtype=float)
    carries = (prompt > 0).astype(float)
    cached = mean_cached_tokens_by_chunk(inputs, np.maximum(prompt, 1.0)) * carries
    decodes = max(decodes, 1e-3)  # BatchShape.decode of a vanishing batch: its fixed costs stay
    columns = {
        "one": np.ones_like(prompt),
        "prefill_tokens": prompt,
        "prefill_seqs": carries,
        "prefill_attn_pairs": prompt * cached + prompt * (prompt + 1) / 2,  # s c + s (s + 1) / 2 (BatchShape.prefill)
        "prefill_context_tokens": cached,
        "decode_seqs": np.full_like(prompt, decodes),
        "decode_context_tokens": np.full_like(prompt, decodes * mean_context),
    }
    shapes = np.stack([columns[name] for name in FEATURES], axis=1)
    return stage_step_times_s(deployment, shapes)
