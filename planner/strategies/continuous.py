"""Colocated continuous batching (Orca, vLLM, TensorRT-LLM in-flight batching) in steady state.

B requests are in flight on one instance and each finishes once per cycle, so by Little's law the cycle is one
request's life: its first token, then O - 1 decode steps of the batch stretched by the prompts of the other
B - 1 requests (each admitted once per cycle):

    E2E(B) = TTFT + (O - 1) x TPOT,   TPOT = t_decode(B) + (B - 1) x t_prefill_share / (O - 1)
    X(B) = B / E2E(B)   requests/s;   O = 1: E2E(B) = max(t_prefill, B x t_prefill_share), prompt-only iterations

(mixed batching costs the riding prompts together with the decodes of a step, see `steady_state`).

t_prefill_share depends on how the engine schedules prompts:
- prefill-first (vLLM V0): prompts run in their own iterations, k = max_num_tokens // I at a time, stalling
  every decode: share = t_iteration(k prompts) / k;
- mixed (TensorRT-LLM in-flight batching, chunked prefill): prompt chunks ride along decode iterations, so a
  prompt costs only its marginal compute: share = [t(decodes + chunk) - t(decodes)] x I / chunk.
With mixed batching the per-iteration token budget also caps the decode batch: in steady state each iteration
holds d decodes and max_num_tokens - d prompt tokens, and completions (d / O) balance admissions
((max_num_tokens - d) / I), so d <= max_num_tokens x O / (I + O).

With PP > 1 the batch is split into pp micro-batches that occupy the stages in turn; a decode step of the whole
batch is pp x (stage time of B / pp + send), and a prompt occupies each stage once (its latency is pp stages).
Prefill-first with PP > 1 is vLLM V0's naive pipeline: pp virtual engines (schedulers), each with 1/pp of the KV
cache, its own sequence cap and one micro-batch in flight, and a prefill micro-batch paces the pipeline while
it is in flight (`packed_prefill_share_s`, `pipeline_beat_s`).

Three scheduler facts, with the discrete-event simulator (planner.sim) as the reference:
- KV memory holds paged blocks of 16 tokens, and a request holds a slot for longer the longer its output, so
  the cache's batch is its capacity over the output-weighted, block-rounded footprint (`kv_tokens_per_sequence`).
- Prompts per prefill iteration (prefill-first) follow the load: below capacity, the prompts that arrived during
  the iteration in progress (`arrival_prompts_per_iteration`, 1 at low load); with prompts always waiting, the
  room completions release at once, up to the token budget (`saturated_prompts_per_iteration`).
- vLLM admits a prompt on its prompt's blocks alone, so a full KV cache overbooks and preempts by recompute
  (`BatchLimit.preemptions_per_request`); the recomputed prompts stretch the cycle like the others' prompts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from planner.cost.iteration import IterationCost, iteration_cost, stage_step
from planner.cost.ops import BatchShape
from planner.specs.deployment import Deployment
from planner.strategies.numerics import bracketed_root, sorted_unique, weibull_for_scv


@dataclass(frozen=True, slots=True)
class ServingPoint:
    """Steady state of one instance at a mean in-flight batch."""

    batch_size: float  # mean requests in flight (decode batch)
    request_rate_req_s: float  # completions per second
    ttft_s: float  # mean time to first token, queueing included
    tpot_s: float  # mean time per output token after the first
    decode_step: IterationCost  # one decode step of the whole batch
    prefill_time_s: float  # one prompt of I tokens alone, through every stage
    stable: bool = True
    prompts_per_prefill: float = 1.0  # mean prompts in a prefill iteration (prefill-first; 1 otherwise)


def decode_step(deployment: Deployment, batch_size: float, mean_context: float) -> IterationCost:
    """One output token for each of `batch_size` sequences (all pp micro-batches)."""
    pp = deployment.pp_size
    return stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context)).scaled(pp)


def prefill_latency_s(deployment: Deployment, input_len: int) -> float:
    """One prompt alone through the whole model."""
    return iteration_cost(deployment, BatchShape.prefill(input_len)).time_s


def prefill_latencies_s(deployment: Deployment, input_lens: np.ndarray) -> np.ndarray:
    """`prefill_latency_s` for many prompt lengths: exact at 24 lengths spaced evenly in log scale over the
    range, linearly interpolated between them (prefill time is smooth in the length)."""
    lengths = np.asarray(input_lens, dtype=float)
    grid = sorted_unique(np.rint(np.geomspace(lengths.min(), lengths.max(), 24)))
    times = np.array([prefill_latency_s(deployment, int(n)) for n in grid])
    interpolated: np.ndarray = np.interp(lengths, grid, times)
    return interpolated


KV_BLOCK_TOKENS = 16  # paged KV block: vLLM --block-size and TensorRT-LLM tokens_per_block default (as planner.sim)
WATERMARK_FRACTION = 0.01  # vLLM V0 BlockSpaceManager watermark: prompt admission keeps 1% of blocks free


def _ceil_blocks(tokens: np.ndarray, block_tokens: int) -> np.ndarray:
    blocks: np.ndarray = np.ceil(np.asarray(tokens, dtype=float) / block_tokens)
    return blocks


def _block_sum(last_token: np.ndarray, block_tokens: int) -> np.ndarray:
    """S(n) = sum over m = 1..n of ceil(m / b), elementwise: with n = q b + r (0 <= r < b), the q full blocks give
    b (1 + 2 + ... + q) = b q (q + 1) / 2 and the r tokens after them r (q + 1)."""
    n = np.asarray(last_token, dtype=float)
    q = np.floor(n / block_tokens)
    total: np.ndarray = block_tokens * q * (q + 1) / 2 + (n - q * block_tokens) * (q + 1)
    return total


def kv_tokens_per_sequence(
    input_lens: ArrayLike, output_lens: ArrayLike, reserves_full_sequence: bool, block_tokens: int = KV_BLOCK_TOKENS
) -> float:
    """Mean KV tokens a running sequence holds, in whole blocks of `block_tokens`, averaged over the running set.

    A request of I prompt and O output tokens is in the batch for O iterations: its prefill, then O - 1 decode
    steps (planner.sim.instance's accounting). In iteration k = 0 .. O - 1 its cache holds I + k tokens, as
    ceil((I + k) / b) blocks of b tokens (paged KV allocated as tokens are generated: vLLM), or from admission
    the ceil((I + O) / b) blocks of its whole sequence (reserved: TensorRT-LLM GUARANTEED_NO_EVICT).
    The running set samples requests in proportion to the iterations they stay, O, so the mean footprint is the
    output-weighted one:
        paged:    b E[sum_{k=0}^{O-1} ceil((I + k) / b)] / E[O] = b E[S(I + O - 1) - S(I - 1)] / E[O]
        reserved: b E[O ceil((I + O) / b)] / E[O]
    with S(n) = sum_{m <= n} ceil(m / b) (`_block_sum`). Without blocks (b = 1) and large O the paged one is
    E[O (I + O / 2)] / E[O], Workload.mean_decode_context."""
    inputs, outputs = np.asarray(input_lens, dtype=float), np.asarray(output_lens, dtype=float)
    if reserves_full_sequence:
        held = outputs * _ceil_blocks(inputs + outputs, block_tokens)
    else:
        held = _block_sum(inputs + outputs - 1, block_tokens) - _block_sum(inputs - 1, block_tokens)
    return float(block_tokens * held.sum() / outputs.sum())


@dataclass(frozen=True, slots=True)
class BatchLimit:
    """The largest steady-state decode batch of one instance, what sets it, and what a full KV cache costs."""

    max_batch: float  # sequences in flight at most: the smallest of the caps below, at least 1
    kv_batch: float  # sequences the KV cache holds at their mean footprint (less vLLM's admission watermark)
    kv_tokens_per_seq: float  # kv_tokens_per_sequence, tokens
    kv_bound: bool  # KV memory sets max_batch (rather than the sequence cap or the token budget)
    lockstep: bool  # one output length: prompts admitted together finish together, so the batch turns over in waves
    preemptions_per_request: float  # recomputes per completed request, cache full and prompts always waiting
    recompute_tokens: float  # prompt tokens one recompute prefills again
    # Squared coefficients of variation over the workload's requests (Var / mean^2) of the prompt, I, and of the
    # whole context, I + O: the sizes of what a completion frees (a slot's prompt, or its KV) and so of the
    # prompts a prefill iteration takes in its place (`prefill_tokens_scv`).
    prompt_scv: float = 0.0
    context_scv: float = 0.0


def batch_limit(
    deployment: Deployment,
    input_lens: ArrayLike,
    output_lens: ArrayLike,
    kv_capacity_tokens: int,
    virtual_engines: int = 1,
) -> BatchLimit:
    """Batch caps of one instance serving requests of these lengths: KV memory, the engine's sequence cap, and
    (mixed batching) the per-iteration token budget, with the preemptions a full cache costs.

    KV: C tokens hold (C - w) / F sequences at the mean footprint F (`kv_tokens_per_sequence`), w being vLLM V0's
    admission watermark (1% of the cache; prefill-first only, as planner.sim). Token budget (mixed batching): in
    steady state each iteration holds d decodes and max_num_tokens - d prompt tokens, and completions (d / O)
    balance admissions ((max_num_tokens - d) / I), so d <= max_num_tokens x O / (I + O) per micro-batch.

    Preemption (vLLM, prefill-first, when KV sets the batch and prompts always wait): vLLM admits a prompt when
    its prompt's blocks fit above the watermark, not its growth, so a full cache overbooks and the newest
    running request is preempted and prefilled again later (its prompt and generated tokens). Per completed
    request (I_b = b E[ceil(I / b)], the prompt's blocks in tokens):
    - waves (one output length): prompts admitted together finish together, so the batch turns over as a whole
      (offline, a closed loop, and Poisson arrivals at capacity, whose queue makes the same waves). A wave
      admits N_a = min(cap, (C - w) / I_b) prompts at their prompt's blocks, and the cache carries
      N_e = kv_batch of them at their mean footprint: N_a / N_e - 1 preemptions per completion. Each
      recomputes I + g tokens, g its generated tokens: while the wave grows from context u1 = (C - w) / N_a
      (the cache full) to u2 = I + O - 1 the cache holds (C - w) / u sequences at context u, so preemptions
      come at u with density 1 / u^2, and g = u - I averages
      [ln(u2 / u1) - I (1 / u1 - 1 / u2)] / (1 / u1 - 1 / u2);
    - spread out (several output lengths): completions are a Poisson stream of B / E[O - 1] per decode step
      (Little's law). After each, the engine admits until the free cache p is below the next prompt plus the
      watermark, so p ~ uniform on [w, w + I_b]; the B running sequences use it up in p / B steps (one token
      each per step), and no completion comes in that time with probability exp(-p / E[O - 1]): the newest
      request, just admitted, is preempted and its prompt (E[I] tokens) recomputed. Averaged over p:
      E[O - 1] / I_b x exp(-w / E[O - 1]) x (1 - exp(-I_b / E[O - 1])).
    Both are approximations of the simulator, which carries preempted requests into later waves and whose
    completions come in clumps (docs/cost-model.md, section 9, gives how close they come).

    `virtual_engines` (vLLM V0 pipeline parallelism: pp schedulers on one instance): each has its own
    C / virtual_engines tokens of cache, its own watermark and its own sequence cap (max_num_seqs is per
    scheduler), so the caps and preemptions are those of one virtual engine, and the batch the instance holds
    is virtual_engines times one's."""
    engines = max(int(virtual_engines), 1)
    kv_capacity_tokens = kv_capacity_tokens // engines  # one virtual engine's share of the cache (planner.sim)
    engine = deployment.engine
    inputs, outputs = np.asarray(input_lens, dtype=float), np.asarray(output_lens, dtype=float)
    mean_in, mean_out = float(inputs.mean()), float(outputs.mean())
    footprint = kv_tokens_per_sequence(inputs, outputs, engine.reserves_full_sequence)
    paged_prefill_first = not engine.mixed_batching and not engine.reserves_full_sequence
    watermark = WATERMARK_FRACTION * kv_capacity_tokens if paged_prefill_first else 0.0
    kv_batch = (kv_capacity_tokens - watermark) / footprint
    cap = float(engine.max_batch_size)
    if engine.mixed_batching:
        cap = min(cap, engine.max_num_tokens * mean_out / (mean_in + mean_out) * deployment.pp_size / engines)
    kv_bound = kv_batch < cap
    prompt_tokens = float(np.mean(_ceil_blocks(inputs, KV_BLOCK_TOKENS))) * KV_BLOCK_TOKENS  # I_b
    decodes = mean_out - 1  # decode steps per request, E[O - 1]
    lockstep = bool(np.all(outputs == outputs[0]))
    waves = spread = 0.0
    wave_recompute = mean_in
    if kv_bound and paged_prefill_first and decodes > 0:
        admitted = min(cap, (kv_capacity_tokens - watermark) / prompt_tokens)  # N_a
        waves = max(admitted / kv_batch - 1.0, 0.0)
        spread = decodes / prompt_tokens * math.exp(-watermark / decodes) * -math.expm1(-prompt_tokens / decodes)
        filled = (kv_capacity_tokens - watermark) / admitted  # u1: context at which the wave fills the cache
        last = mean_in + mean_out - 1  # u2: the wave's last context
        if last > filled:
            span = 1 / filled - 1 / last
            wave_recompute = mean_in + (math.log(last / filled) - mean_in * span) / span
    return BatchLimit(
        max_batch=max(min(cap, kv_batch), 1.0) * engines,  # every virtual engine holds as many
        kv_batch=kv_batch * engines,
        kv_tokens_per_seq=footprint,
        kv_bound=kv_bound,
        lockstep=lockstep,
        preemptions_per_request=waves if lockstep else spread,
        recompute_tokens=wave_recompute if lockstep else mean_in,
        prompt_scv=float(inputs.var() / mean_in**2),
        context_scv=float((inputs + outputs).var() / (mean_in + mean_out) ** 2),
    )


def max_decode_batch(deployment: Deployment, input_len: int, output_len: int, kv_capacity_tokens: int) -> float:
    """Largest steady-state decode batch for requests of one shape (`batch_limit`)."""
    return batch_limit(deployment, [input_len], [output_len], kv_capacity_tokens).max_batch


def prompt_budget(deployment: Deployment, input_len: int, batch_size: float) -> int:
    """Prompts one prefill iteration holds at most: the token budget max_num_tokens // I, no more than the
    batch (at least one: vLLM's budget covers any prompt the model takes)."""
    return max(1, min(int(deployment.engine.max_num_tokens // input_len), math.ceil(batch_size)))


PACKED_ITERATIONS = 4096  # prefill iterations drawn to average the packing over


@functools.lru_cache(maxsize=256)  # one packing per workload and token budget, whatever the layout
def packed_prefill_iteration(input_lens: tuple[int, ...], budget_tokens: int) -> BatchShape:
    """The mean prefill iteration of an instance with prompts always queued, FCFS under a token budget.

    The engine packs waiting prompts in arrival order while their tokens fit the budget and stops at the first
    that does not (vLLM V0 `Scheduler._schedule_prefills`: `if not budget.can_schedule(...)`: break;
    TensorRT-LLM's MicroBatchScheduler likewise stops adding context requests past max_num_tokens, without
    chunked context); the first prompt always goes in (the budget covers any prompt the model takes). So an
    iteration holds fewer tokens than the budget by the prompt that did not fit, which opens the next one,
    and long prompts bring their quadratic attention pairs: with varied prompts the mean iteration is not
    budget // E[I] prompts of E[I] tokens. Prompts are drawn i.i.d. from `input_lens` (seed 0), as the
    simulator's offline stream draws them (planner.sim.streams.draw_requests), and PACKED_ITERATIONS
    iterations packed (relative error of the mean prompts per iteration about CV(k) / 64); the result is
    their mean shape (fractional counts). One prompt length packs budget // I prompts every iteration."""
    lens = np.asarray(input_lens, dtype=np.int64)
    rng = np.random.default_rng(0)
    # about the prompts the iterations take (budget / E[I] each), and one more per iteration
    draws = rng.choice(lens, size=PACKED_ITERATIONS * (int(budget_tokens // lens.mean()) + 1))
    tokens = np.concatenate([[0], np.cumsum(draws)])  # prompt tokens of the first n draws
    fullest = budget_tokens // int(lens.min()) + 1  # most draws one iteration can look at
    first = 0
    for _ in range(PACKED_ITERATIONS):
        if len(draws) - first <= fullest:
            draws = np.concatenate([draws, rng.choice(lens, size=len(draws))])
            tokens = np.concatenate([[0], np.cumsum(draws)])
        # the largest n with tokens[n] - tokens[first] <= budget, at least one prompt
        first = max(int(np.searchsorted(tokens, tokens[first] + budget_tokens, side="right")) - 1, first + 1)
    taken = draws[:first]
    return BatchShape(
        prefill_tokens=float(taken.sum()) / PACKED_ITERATIONS,
        prefill_seqs=first / PACKED_ITERATIONS,
        prefill_attn_pairs=float((taken * (taken + 1) / 2).sum()) / PACKED_ITERATIONS,  # I (I + 1) / 2 per prompt
    )


def saturated_prompts_per_iteration(
    deployment: Deployment, input_len: int, output_len: int, batch_size: float, limit: BatchLimit | None
) -> float:
    """Mean prompts per prefill iteration (prefill-first) with prompts always waiting (offline, or a closed
    loop whose clients resubmit as their requests finish): as many as the room completions released since the
    last prefill iteration, at most the budget (`prompt_budget`).
    - Lockstep (one output length, or no `limit` given): prompts admitted together finish together and free
      room for as many, so packs of the budget persist from the cold start (planner.sim: 8.0 prompts of 1,024
      tokens per iteration for a budget of 8).
    - Otherwise completions are spread out: c = B / E[O - 1] per decode step (Little's law: a request decodes
      E[O - 1] steps), about a Poisson count, and a prefill iteration follows each decode step that had one:
      c / (1 - exp(-c)) completions each (the mean of a Poisson count given at least one). When KV memory sets
      the batch, room is released in tokens: a completion frees its whole context, I + O tokens, and vLLM
      admits prompts on their prompt's blocks, so (I + O) / I of them at once (the running set's growth then
      holds back the next admissions until the surplus is repaid).
    With PP > 1 (prefill-first: vLLM's virtual engines) each of the pp schedulers packs its own prefill
    micro-batch from the room its own B / pp sequences release, its completions being B / pp / E[O - 1] per
    decode micro-batch of its own."""
    engines = deployment.pp_size if not deployment.engine.mixed_batching else 1
    per_engine = batch_size / engines  # sequences one scheduler runs
    budget = prompt_budget(deployment, input_len, per_engine)
    if limit is None or limit.lockstep or output_len <= 1:
        return float(budget)
    completions = per_engine / (output_len - 1)
    room = completions / -math.expm1(-completions) if completions > 0 else 1.0
    if limit.kv_bound and batch_size >= limit.kv_batch:
        room *= (input_len + output_len) / input_len
    return float(min(budget, max(room, 1.0)))


def prefill_iteration_secant(deployment: Deployment, input_len: int) -> tuple[float, float, int]:
    """(T(1), dT/dk, budget): the prefill iteration of one prompt of `input_len` tokens (s), the secant slope per
    added prompt up to the budget max_num_tokens // I (s per prompt), and that budget."""
    budget = max(1, int(deployment.engine.max_num_tokens // input_len))
    one_s = stage_step(deployment, BatchShape.prefill(input_len)).time_s
    if budget == 1:
        return one_s, 0.0, budget
    full_s = stage_step(deployment, BatchShape.prefill(input_len, budget)).time_s
    return one_s, (full_s - one_s) / (budget - 1), budget


def arrival_prompts_per_iteration(
    rate_req_s: float, decode_step_s: float, one_prompt_s: float, per_prompt_s: float, budget: int
) -> float:
    """Mean prompts per prefill iteration (prefill-first) under Poisson arrivals at `rate_req_s` below capacity:
    the prompts that arrived during the iteration in progress (vLLM V0 runs waiting prompts first).

    Iterations form a two-state chain: after a decode step of t_d s a prefill iteration follows with probability
    p_d = 1 - exp(-R t_d) (an arrival during it), after a prefill iteration of T s with 1 - q, q = exp(-R T).
    The stationary chain runs p_d / q prefill iterations per decode step, and every prompt arriving during a
    decode step (R t_d of them) or a prefill iteration (R T) goes into the next prefill, so the mean is
        k = R t_d q / p_d + R T(k):
    1 at low load (R t_d and R T -> 0), R T(k) once prefill iterations run back to back. T(k), the iteration of
    k prompts, is taken on its secant T(1) + (k - 1) dT/dk (`prefill_iteration_secant`; prefill time is close to
    affine in the prompts). The right side is at least 1 at k = 1 (e^-x A + x >= 1 for A >= 1), so k is its
    root on [1, budget], or the budget when the arrivals outgrow it."""
    if rate_req_s <= 0:
        return 1.0
    during_decode = rate_req_s * decode_step_s  # R t_d, mean arrivals during a decode step
    # R t_d q / p_d = q x (mean arrivals during a decode step that had any: a Poisson count given at least one)
    per_decode = during_decode / -math.expm1(-during_decode) if during_decode > 0 else 1.0

    def excess(prompts: float) -> float:
        during_prefill = rate_req_s * (one_prompt_s + (prompts - 1) * per_prompt_s)  # R T(k)
        return math.exp(-during_prefill) * per_decode + during_prefill - prompts

    if budget <= 1 or excess(float(budget)) >= 0:
        return float(budget)
    if excess(1.0) <= 0:
        return 1.0
    return bracketed_root(excess, 1.0, float(budget), xtol=1e-9)


def prefill_share_s(
    deployment: Deployment,
    input_len: int,
    batch_size: float,
    mean_context: float,
    output_len: int | None = None,
    prompts: float | None = None,
    limit: BatchLimit | None = None,
) -> float:
    """Engine time one prompt costs the instance (see the module docstring). With `output_len` 1 no request
    ever decodes, so under mixed batching too prompts fill their own iterations, packed as prefill-first.
    `prompts` is the mean number per prefill iteration (prefill-first; default the budget). With PP > 1,
    `output_len` and `limit` say how often and how unevenly prefill micro-batches come (`packed_prefill_share_s`)."""
    engine, pp = deployment.engine, deployment.pp_size
    if engine.mixed_batching and output_len != 1:
        # A prompt rides along the decodes of the other B - 1 requests; with none running (B <= 1) it runs
        # alone and pays the whole iteration. Between the two, blend by the chance others are running.
        others = min(max(batch_size - 1.0, 0.0), 1.0)
        alone = stage_step(deployment, BatchShape.prefill(input_len)).time_s
        if others == 0.0:
            return alone
        decodes = BatchShape.decode(batch_size / pp, mean_context)
        chunk = max(1.0, min(float(input_len), engine.max_num_tokens - batch_size / pp))
        with_chunk = stage_step(deployment, decodes + BatchShape.prefill(chunk)).time_s
        marginal = (with_chunk - stage_step(deployment, decodes).time_s) * input_len / chunk
        return others * marginal + (1.0 - others) * alone
    return packed_prefill_share_s(deployment, input_len, batch_size, mean_context, prompts, output_len, limit)


def prefill_tokens_scv(completions: float, unit_scv: float) -> float:
    """Squared coefficient of variation of the prompt tokens in one prefill iteration (prefill-first, prompts
    always waiting): the room released by the N >= 1 completions since the last one, N a Poisson count of mean
    `completions` given at least one (`saturated_prompts_per_iteration`), each freeing a unit of SCV `unit_scv`
    (a prompt's slot, or its context's KV). A sum of N i.i.d. units:
        Var / mean^2 = unit_scv / E[N] + Var[N] / E[N]^2,
    with E[N] = c / (1 - e^-c) and Var[N] = E[N] (1 + c - E[N]) for the zero-truncated Poisson count of mean c."""
    if completions <= 0:
        return unit_scv
    count = completions / -math.expm1(-completions)  # E[N]
    count_var = max(count * (1 + completions - count), 0.0)  # Var[N]
    return unit_scv / count + count_var / count**2


def pipeline_beat_s(
    pp: int, decode_stage_s: float, prefill_fraction: float, prefill_stage_s: float, spread_s: float, scv: float
) -> float:
    """Mean beat of a naive pipeline of pp stages with pp micro-batches in flight, one per virtual engine: the
    longest stage time among them. A stage hands its micro-batch on only when the next stage is free, and a
    virtual engine sends its next micro-batch only when its last one has left the pipeline, so the pp
    micro-batches advance together, stage by stage, at the pace of the slowest in flight (slightly pessimistic:
    a micro-batch ahead of the slow one can run a little ahead before it waits).

    Each micro-batch in flight is, independently, a decode one (stage time t) with probability 1 - f, or with
    probability f a prefill one of stage time T + s (g - 1): T its mean, s its slope in the micro-batch's size
    relative to the mean (the prefill iteration is close to affine in its prompts, `prefill_iteration_secant`),
    and g the relative size, of mean 1 and squared coefficient of variation `scv` (the two moments of
    `prefill_tokens_scv`), drawn from the Weibull distribution with those two moments
    (`numerics.weibull_for_scv`: a closed-form CDF, so the integral below costs no special functions). The
    beat is the largest of pp such draws, of mean
        E = integral over x >= 0 of 1 - F(x)^pp,   F(x) = (1 - f) [x >= t] + f G(x),
    G(x) = P(T + s (g - 1) <= x) = 1 - exp(-((1 + (x - T) / s) / lambda)^k). Alike prefills (s scv = 0) give
    E = t + max(T - t, 0) (1 - (1 - f)^pp): the beat is T whenever any prefill is in flight."""
    f = min(max(prefill_fraction, 0.0), 1.0)
    if spread_s <= 0 or scv <= 0 or f == 0:
        return decode_stage_s + max(prefill_stage_s - decode_stage_s, 0.0) * -math.expm1(pp * math.log1p(-f))
    shape, scale = weibull_for_scv(scv)  # k, lambda of the Weibull of mean 1 and this scv
    largest = scale * (-math.log(1e-9)) ** (1 / shape)  # the relative size a draw exceeds 1e-9 of the time
    top_s = max(decode_stage_s, prefill_stage_s + spread_s * (largest - 1))
    # Trapezoids on either side of t, where F steps by 1 - f, so that each side's integrand is smooth.
    total = 0.0
    for start, stop, decodes_done in ((0.0, decode_stage_s, 0.0), (decode_stage_s, top_s, 1 - f)):
        if stop <= start:
            continue
        xs = np.linspace(start, stop, 1001)
        sizes = np.maximum(1 + (xs - prefill_stage_s) / spread_s, 0.0)
        prefill_cdf = -np.expm1(-((sizes / scale) ** shape))  # G(x): the Weibull CDF
        total += float(np.trapezoid(1 - (decodes_done + f * prefill_cdf) ** pp, xs))  # 1 - F(x)^pp
    return total


def packed_prefill_share_s(
    deployment: Deployment,
    input_len: int,
    batch_size: float,
    mean_context: float,
    prompts: float | None = None,
    output_len: int | None = None,
    limit: BatchLimit | None = None,
) -> float:
    """Engine time per prompt when prompts fill their own iterations, `prompts` at a time (default
    max_num_tokens // I, at most the batch: `prompt_budget`): prefill-first scheduling, or any engine with no
    decodes to ride along."""
    pp = deployment.pp_size
    if pp > 1:
        # Naive pipeline (vLLM V0 PP): pp virtual engines, each with one micro-batch in flight, share the pp
        # stages as a flow shop; a prefill micro-batch of k prompts (stage time T_k, k one when not given)
        # sets the pace at every stage it passes, holding up the decode micro-batches (stage time t) behind it.
        per_batch = prompts if prompts is not None else 1.0  # k
        packed_s = stage_step(deployment, BatchShape.prefill(input_len, per_batch)).time_s  # T_k
        decode_stage_s = stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context)).time_s  # t
        if output_len is None or output_len <= 1 or limit is None:
            # One prefill micro-batch alone in a stream of decodes: those queued behind it wait T_k at each of the
            # pp - 1 later stages instead of their own t, so it costs pp T_k - (pp - 1) t of pipeline time rather
            # than T_k (on identical stages a micro-batch delays the stream behind it by (pp - 1) x (its stage
            # time - the stream's), the proportionate flow-shop makespan), shared by its k prompts.
            return (pp * packed_s - (pp - 1) * min(decode_stage_s, packed_s)) / per_batch
        # In steady state prefill micro-batches overlap in the pipeline: with pp in flight the pipeline moves
        # at the pace of the slowest, `pipeline_beat_s`. Each virtual engine runs B / pp sequences, which
        # complete c = B / pp / (O - 1) per decode micro-batch of its own, and a prefill micro-batch of k
        # prompts refills the room of c / k decode micro-batches: a share f = c / (c + k) of micro-batches
        # are prefills. Their tokens vary with the room the completions before them released
        # (`prefill_tokens_scv`: a completion frees its context's KV when the cache is full, its slot else),
        # stretching the stage time along the secant, k x dT/dk per unit of relative size.
        completions = batch_size / pp / (output_len - 1)  # c
        fraction = completions / (completions + per_batch)  # f
        kv_full = limit.kv_bound and batch_size >= limit.kv_batch
        scv = prefill_tokens_scv(completions, limit.context_scv if kv_full else limit.prompt_scv)
        spread_s = per_batch * prefill_iteration_secant(deployment, input_len)[1]  # k dT/dk
        beat_s = pipeline_beat_s(pp, decode_stage_s, fraction, packed_s, spread_s, scv)  # E
        # A virtual engine's round is pp beats, holding one micro-batch of each of the pp virtual engines: a
        # decode of a 1 / pp of the batch with probability 1 - f (the decode step, pp t, per 1 / (1 - f) rounds
        # in all) or k prompts with probability f. The round's time beyond its decodes, pp (E - (1 - f) t), is
        # its pp f k prompts' share: (E - (1 - f) t) / (f k) each (with TPOT = pp t + B x share / (O - 1), a
        # virtual engine's decode micro-batches are pp E / (1 - f) apart).
        return (beat_s - (1 - fraction) * decode_stage_s) / (fraction * per_batch)
    per_batch = prompts if prompts is not None else float(prompt_budget(deployment, input_len, batch_size))
    return stage_step(deployment, BatchShape.prefill(input_len, per_batch)).time_s / per_batch


def _first_token_service_s(
    deployment: Deployment, input_len: int, batch_size: float, mean_context: float, t_decode: float
) -> float:
    """Time from admission to the first token: the prompt's own iterations, after waiting (on average) half
    of the iteration already running when other requests are in flight."""
    engine, pp = deployment.engine, deployment.pp_size
    residual = t_decode / 2 * (1 - 1 / max(batch_size, 1.0))
    if not engine.mixed_batching or batch_size <= 1:
        return prefill_latency_s(deployment, input_len) + residual
    budget = max(1.0, engine.max_num_tokens - batch_size / pp)
    chunks = math.ceil(input_len / budget)
    chunk = input_len / chunks
    step = stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context) + BatchShape.prefill(chunk))
    return chunks * step.time_s * pp + residual


def recompute_share_s(
    deployment: Deployment, batch_size: float, mean_context: float, prompts: float, limit: BatchLimit | None
) -> float:
    """Engine time per completed request spent prefilling preempted requests again (vLLM recompute), s: with
    the batch at the KV cache's capacity, `limit.preemptions_per_request` recomputes of
    `limit.recompute_tokens` tokens each, packed into prefill iterations as the prompts are (`prompts` at a
    time, at most the budget's worth of their length). Below the cache's capacity nothing overbooks: 0."""
    if limit is None or limit.preemptions_per_request <= 0 or batch_size < limit.kv_batch:
        return 0.0
    tokens = max(round(limit.recompute_tokens), 1)
    packed = max(1.0, min(prompts, deployment.engine.max_num_tokens // tokens))
    return limit.preemptions_per_request * packed_prefill_share_s(deployment, tokens, batch_size, mean_context, packed)


def steady_state(
    deployment: Deployment,
    input_len: int,
    output_len: int,
    batch_size: float,
    mean_context: float | None = None,
    limit: BatchLimit | None = None,
) -> ServingPoint:
    """The instance with `batch_size` requests always in flight (closed loop, no queue). `mean_context` is the
    mean KV context of a decode step: input + output / 2 for one request shape, the output-weighted mean over a
    workload of mixed lengths (Workload.mean_decode_context). `limit` (`batch_limit` of the workload) says how
    prompts pack into prefill iterations and what a full KV cache costs in recomputes; without it prompts pack
    to the budget and nothing is preempted."""
    mean_context = mean_context or input_len + output_len / 2
    step = decode_step(deployment, batch_size, mean_context)
    prompts = saturated_prompts_per_iteration(deployment, input_len, output_len, batch_size, limit)
    share = prefill_share_s(deployment, input_len, batch_size, mean_context, output_len, prompts, limit)
    # Preempted requests are prefilled again: more prompt work per cycle, stalling the others' decodes as
    # prompts do (prefill-first only: BatchLimit).
    share += recompute_share_s(deployment, batch_size, mean_context, prompts, limit)
    ttft = _first_token_service_s(deployment, input_len, batch_size, mean_context, step.time_s)
    # Little's law ties the cycle to one request's life: B requests finish per cycle and each lives one cycle,
    # its first token and then O - 1 decode steps of the batch, stretched by the prompts of the other B - 1
    # requests (each admitted once per cycle). Counting the cycle as the engine's work instead, O - 1 decode
    # steps plus B prompt shares, would miss that a request holds its batch slot through its whole first-token
    # time without decoding (its prompt's iteration, and the wait for it), and put TPOT below a decode step.
    others = max(batch_size - 1.0, 0.0)
    if deployment.engine.mixed_batching and output_len > 1:
        # The others' prompts ride along the decode steps: (B - 1) I / (O - 1) prompt tokens per step, as
        # whole prompts on average (chunks of one prompt attend to its earlier chunks), costed with the
        # decodes in one iteration rather than as a sum of single-chunk margins, so that the step stays an
        # iteration time (never slower on faster hardware).
        pp = deployment.pp_size
        riders = BatchShape.prefill(input_len, others / (output_len - 1) / pp)
        tpot = stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context) + riders).time_s * pp
    else:
        tpot = step.time_s + others * share / (output_len - 1) if output_len > 1 else 0.0
    busy = ttft + (output_len - 1) * tpot
    if output_len == 1:
        # Nothing ever decodes: the engine runs prompt-only iterations back to back, B prompts per cycle, and
        # a request takes at least its own prompt's latency. The first token ends the request, so TTFT is the
        # whole cycle (Little's law).
        busy = ttft = max(prefill_latency_s(deployment, input_len), batch_size * share)
    return ServingPoint(
        batch_size=batch_size,
        request_rate_req_s=batch_size / busy,
        ttft_s=ttft,
        tpot_s=tpot,
        decode_step=step,
        prefill_time_s=prefill_latency_s(deployment, input_len),
        prompts_per_prefill=prompts if not deployment.engine.mixed_batching or output_len == 1 else 1.0,
    )


def offline(
    deployment: Deployment,
    input_len: int,
    output_len: int,
    max_batch: float,
    num_requests: int,
    limit: BatchLimit | None = None,
) -> ServingPoint:
    """All `num_requests` queued at once: the batch runs full; a request waits for its prompt's turn, and
    beyond the batch for a slot first.

    The first B = min(N, batch) prompts are prefilled one after another, prompt j waiting j x t_prefill_share
    (prompt-only iterations, `packed_prefill_share_s`);
    request i > B is admitted once i - B earlier ones finished, at (i - B) / X. Mean wait over the N requests:
    [B (B - 1) / 2 x t_prefill_share + (N - B)^2 / (2 X)] / N."""
    point = steady_state(deployment, input_len, output_len, min(max_batch, num_requests), limit=limit)
    first = point.batch_size
    # The first prompts meet an empty batch: there are no decodes to ride along yet, so whatever the engine's
    # scheduling they are admitted as fast as prompt-only iterations run them.
    share = packed_prefill_share_s(deployment, input_len, first, input_len + output_len / 2)
    waiting = (
        first * (first - 1) / 2 * share + max(0.0, num_requests - first) ** 2 / (2 * point.request_rate_req_s)
    ) / num_requests
    return replace(point, ttft_s=point.ttft_s + waiting)


def closed_loop(
    deployment: Deployment,
    input_len: int,
    output_len: int,
    max_batch: float,
    concurrency: float,
    limit: BatchLimit | None = None,
) -> ServingPoint:
    """`concurrency` clients, each sending its next request when the last one finishes. Clients beyond the
    batch limit wait in the queue: (C - B) / X on average (Little's law on the queue)."""
    point = steady_state(deployment, input_len, output_len, min(max_batch, concurrency), limit=limit)
    waiting = max(0.0, concurrency - point.batch_size) / point.request_rate_req_s
    return replace(point, ttft_s=point.ttft_s + waiting)


def full_batch_probability(utilisation: float, max_batch: float) -> float:
    """Chance that an arrival finds every batch slot taken: the M/M/c waiting probability at c = max_batch
    servers and utilisation rho = B / c, in Sakasegawa's approximation (as `slot_wait_s`):
    Lq = P_wait rho / (1 - rho) with Lq = rho^sqrt(2 (c + 1)) / (1 - rho) gives P_wait = rho^(sqrt(2 (c + 1)) - 1).
    Near 0 well below a full batch (0.8^21.7 = 0.008 for 256 slots), 1 when it is full."""
    rho = min(max(utilisation, 0.0), 1.0)
    return float(rho ** (math.sqrt(2 * (max(max_batch, 1.0) + 1)) - 1))


def slot_wait_s(batch_size: float, max_batch: float, rate_req_s: float, service_scv: float = 1.0) -> float:
    """Mean wait for a free batch slot when `batch_size` of `max_batch` slots are busy on average: the G/G/c
    queue with c = max_batch servers at utilisation rho = B / c. Sakasegawa's approximation (1977) of the
    M/M/c queue length, Lq = rho^sqrt(2 (c + 1)) / (1 - rho), and Little's law, Wq = Lq / rate, scaled by
    Allen and Cunneen's factor (ca^2 + cs^2) / 2 for the variability of arrivals (Poisson: ca^2 = 1) and of
    the time a request holds its slot (`service_scv`, its squared coefficient of variation: 1 is the M/M/c
    queue, 0 requests of one length, which hold their slots for the same time)."""
    rho = batch_size / max_batch
    if rho >= 1:
        return math.inf
    servers = max(max_batch, 1.0)
    return float(rho ** math.sqrt(2 * (servers + 1)) / (1 - rho) / rate_req_s * (1.0 + service_scv) / 2)


def holding_scv(output_lens: np.ndarray) -> float:
    """Squared coefficient of variation of the time a request holds its batch slot, Var / mean^2: the slot is
    held for the request's decode steps, so the time is about proportional to its output length."""
    outputs = np.asarray(output_lens, dtype=float)
    mean = float(outputs.mean())
    return float(outputs.var() / mean**2) if mean > 0 else 0.0


def poisson(
    deployment: Deployment,
    input_len: int,
    output_len: int,
    max_batch: float,
    rate_req_s: float,
    mean_context: float | None = None,
    limit: BatchLimit | None = None,
    service_scv: float = 1.0,
) -> ServingPoint:
    """Poisson arrivals at `rate_req_s` (an open system). `service_scv`: the variability of the time a
    request holds its batch slot (`slot_wait_s`; `holding_scv` of the output lengths).

    A prompt arriving while others decode stalls them (prefill-first) or slows their steps (mixed): prompts take
    a share rho = rate x t_prefill_share of engine time, so TPOT = t_decode(B) / (1 - rho); prompts queue for
    that share as in an M/D/1 queue, wait = rho t / (2 (1 - rho)). Prefill-first iterations hold the prompts
    that arrived during the iteration before (`arrival_prompts_per_iteration`: one at low load). The mean
    in-flight batch solves B = rate x E2E(B) (Little's law). At or beyond the capacity of a full batch (prompts
    always waiting, `steady_state` with `limit`) the point is returned at capacity with `stable` False. Requests
    also wait for a batch slot as the offered rate nears the capacity (`slot_wait_s`)."""
    mean_context = mean_context or input_len + output_len / 2
    full = steady_state(deployment, input_len, output_len, max_batch, mean_context, limit)
    if rate_req_s >= full.request_rate_req_s:
        return replace(full, stable=False)
    # Prefill-first prompts run in iterations of their own, as many as arrived during the iteration before
    # (decode steps and prefill iterations alternating), and, when every slot is taken and arrivals queue, as
    # many as the completions make room for, as at capacity: the two weighted by the chance that the batch of
    # B in flight is full, so the pack rises to capacity's as the batch fills. (A flood of prompts that would
    # starve the decodes fills the batch, and then room, not arrivals, sets the pack.) With nothing ever
    # decoding (O = 1) prefill iterations run back to back or idle, and the pack stays the budget.
    packs = not deployment.engine.mixed_batching and output_len > 1 and deployment.pp_size == 1
    secant = prefill_iteration_secant(deployment, input_len) if packs else None
    saturated = saturated_prompts_per_iteration(deployment, input_len, output_len, max_batch, limit)

    def at(batch: float) -> ServingPoint:
        step = decode_step(deployment, max(batch, 1.0), mean_context)
        prompts = None
        if secant:
            arrived = arrival_prompts_per_iteration(rate_req_s, step.time_s, *secant)
            full_chance = full_batch_probability(batch / max_batch, max_batch)
            prompts = (1 - full_chance) * arrived + full_chance * saturated
        elif deployment.pp_size > 1 and not deployment.engine.mixed_batching and output_len > 1:
            # Virtual engines: each refills, in one prefill micro-batch, the room its own completions released
            # since its last (steady state: arrivals replace completions), at this batch as at capacity.
            prompts = saturated_prompts_per_iteration(deployment, input_len, output_len, max(batch, 1.0), limit)
        share = prefill_share_s(deployment, input_len, max(batch, 1.0), mean_context, output_len, prompts, limit)
        rho = min(rate_req_s * share, 0.999)
        tpot = step.time_s / (1 - rho) if output_len > 1 else 0.0  # no token after the first, as steady_state
        service = _first_token_service_s(deployment, input_len, batch, mean_context, step.time_s)
        if secant and prompts:
            service += (prompts - 1) * secant[1]  # the prompt's iteration also prefills the k - 1 others with it
        ttft = service + rho * share / (2 * (1 - rho))
        return ServingPoint(
            batch_size=batch,
            request_rate_req_s=rate_req_s,
            ttft_s=ttft,
            tpot_s=tpot,
            decode_step=step,
            prefill_time_s=prefill_latency_s(deployment, input_len),
            prompts_per_prefill=prompts or 1.0,
        )

    def excess(batch: float) -> float:
        point = at(batch)
        return rate_req_s * (point.ttft_s + (output_len - 1) * point.tpot_s) - batch

    low, high = 0.0, max_batch
    if excess(high) <= 0:
        for _ in range(50):  # bisection on B = rate x E2E(B), the batch excluding requests waiting for a slot
            mid = (low + high) / 2
            low, high = (mid, high) if excess(mid) > 0 else (low, mid)
    # Otherwise the batch runs full below capacity (the stretched latencies above ask for more than max_batch in
    # flight) and the rest wait for a slot. Slots free at the full batch's completion rate, so the slot queue
    # is M/M/c with c = max_batch servers of total rate `full.request_rate_req_s`: its utilisation is the offered
    # rate over that capacity, which reaches 1 exactly where the point turns unstable (one capacity, the
    # offline throughput of a full batch).
    point = at(high)
    utilisation = rate_req_s / full.request_rate_req_s
    slot_s = slot_wait_s(utilisation * max_batch, max_batch, rate_req_s, service_scv)
    return replace(point, ttft_s=point.ttft_s + slot_s)


def static_batch(deployment: Deployment, input_len: int, output_len: int, batch_size: int) -> ServingPoint:
    """Static batching (TensorRT-LLM before in-flight batching): `batch_size` requests start together, one
    prefill iteration for all their prompts, then output_len - 1 decode steps of the whole batch at the mean
    context; the batch ends when its last request does."""
    mean_context = input_len + output_len / 2
    prefill = iteration_cost(deployment, BatchShape.prefill(input_len, batch_size)).time_s
    step = decode_step(deployment, batch_size, mean_context)
    total = prefill + (output_len - 1) * step.time_s
    return ServingPoint(
        batch_size=batch_size,
        request_rate_req_s=batch_size / total,
        ttft_s=prefill,
        tpot_s=step.time_s,
        decode_step=step,
        prefill_time_s=prefill,
    )
