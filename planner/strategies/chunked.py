"""`chunked`: Sarathi-Serve (OSDI'24) chunked prefills with stall-free batching.

Every iteration (every micro-batch with PP > 1) holds at most `chunk_size` tokens: the running decodes go
first, one token each, and prompt chunks fill the rest of the budget (microsoft/sarathi-serve
`sarathi_scheduler.py`: ongoing decodes, then partial prefills, then new prefills). A prompt never runs as a
whole iteration of its own, so decodes are slowed by the chunk riding along but never stalled by a prompt.

Notation, per replica: C the token budget, pp the pipeline stages, B the mean decodes in flight, d = B / pp the
decodes of one micro-batch, c = C - d the prompt tokens a micro-batch can carry, I and O a request's prompt
and output lengths (E[.] over the workload), t_dec the stage step of d decodes alone and t_full with a full
chunk of c tokens besides; a stage step is the busiest stage plus one activation send plus the engine's
per-iteration overhead (the same step continuous.py uses).

- A chunk re-reads the KV of the prompt's earlier chunks: the chunk's attention is costed after a cached
  context equal to the token-weighted mean start of a chunk over the workload's prompts split into chunks of
  c (`mean_cached_tokens`); FLOPs and KV bytes are linear in that context, so the mean is exact for them.
- m = (t_full - t_dec) / c is the marginal stage time of one prompt token riding along the decodes.
- Flow balance: prompt tokens arrive at R E[I] per second; a round of the pp micro-batches takes pp t_round
  and carries P = R E[I] pp t_round of them. The stages are a flow shop: the busiest micro-batch of a round
  paces every stage, so t_round = t_dec + m x (its prompt tokens). Up to one chunk (P <= c) the tokens ride
  in one micro-batch: t_round = t_dec / (1 - pp R E[I] m); beyond, they spread and the busiest holds a full
  chunk: t_round = t_full. With PP 1 this is t_dec / (1 - R E[I] m), the mean iteration.
  Little's law on the decodes: B = R E[O - 1] pp t_round (a decode token
  of a request is one round of pp micro-batches), solved for B by Brent's method.
- Offline (requests always waiting) B sits at its cap, the smallest of the batch knob, KV memory and the token
  budget: admissions (d E[I] / E[O - 1] prompt tokens per micro-batch) and decodes must share C, so
  d <= C E[O - 1] / (E[I] + E[O - 1]). Then X = B / (E[O - 1] pp t_dec + pp B E[I] m) while a round's
  prompt tokens fit one chunk, else B / (E[O - 1] pp t_full), at most the prompt rate the budget admits,
  c / (E[I] t_full). A small budget caps the decode batch, so weights and the per-iteration
  overhead are paid for fewer tokens: very small chunks cost throughput.
- TTFT = queueing for the prefill budget (an M/G/1 server of utilisation rho = R E[I] t_full / c whose
  service for request i is I_i t_full / c; Pollaczek-Khinchine mean wait R E[S^2] / (2 (1 - rho)), spread
  by base.queue_waits_s) + waiting for a batch slot (continuous.slot_wait_s) + half a stage slot + the
  ceil(I / c) rounds that carry its chunks, each its own micro-batch through all pp stages.
- TPOT: a share f = min(1, R E[ceil(I / c)] pp t_round) of rounds carry prompt tokens, their busiest
  micro-batch min(c, P / f) of them. Request i's O - 1 rounds hold Binomial(O - 1, f) such rounds (seeded
  quantiles), each slower than pp t_dec by pp x the chunk's tokens x m; the mean is pp t_round.
- TBT p99: a round with a chunk as soon as more than 1% of rounds carry one, else pp pure decode stages. The
  chunk is the size at level 1 - 1% / f among the chunks the workload's prompts make (topped up from the
  queue, at most c): the full budget once long prompts or queues fill it, less when every prompt is short
  (`chunk_size_quantile`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from planner.cost.iteration import stage_step
from planner.cost.memory import memory_breakdown
from planner.cost.ops import BatchShape
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
    queue_waits_s,
    register,
    seeded_quantiles,
)
from planner.strategies.numerics import binom_ppf, bracketed_root, quantile, sorted_unique

ROOT_TOLERANCE = 1e-6  # decode batch found to a millionth of its cap


def stage_step_s(deployment: Deployment, batch: BatchShape) -> float:
    """One micro-batch through the busiest stage and across one boundary, plus the engine's per-iteration
    overhead (scheduling, sampling, launch), in seconds."""
    return stage_step(deployment, batch).time_s


def mean_cached_tokens(input_lens: np.ndarray, chunk_tokens: float) -> float:
    """Token-weighted mean context already cached when a prompt token is prefilled in chunks of
    `chunk_tokens` (`mean_cached_tokens_by_chunk` of one chunk size)."""
    return float(mean_cached_tokens_by_chunk(input_lens, np.array([chunk_tokens]))[0])


def mean_cached_tokens_by_chunk(input_lens: np.ndarray, chunk_tokens: np.ndarray) -> np.ndarray:
    """`mean_cached_tokens` for each of several chunk sizes: prompt I splits into n = ceil(I / c) chunks, chunk k
    (0-based) starts after k c tokens; sum over chunks of (chunk length x start) = c^2 (n - 1)(n - 2) / 2 +
    (I - (n - 1) c)(n - 1) c, divided by the prompt tokens. Zero when every prompt fits one chunk."""
    lens = np.asarray(input_lens, dtype=float)[:, None]
    c = np.maximum(np.asarray(chunk_tokens, dtype=float), 1.0)[None, :]
    n = np.ceil(lens / c)
    weighted = c * c * (n - 1) * (n - 2) / 2 + (lens - (n - 1) * c) * (n - 1) * c
    mean: np.ndarray = weighted.sum(axis=0) / lens.sum()
    return mean


def budget_decode_cap(budget_tokens: float, mean_input: float, mean_decodes: float, pp: int) -> float:
    """Decodes in flight that a token budget sustains with prompts always waiting: a micro-batch of d decodes
    admits d E[I] / E[O - 1] prompt tokens (admissions balance completions), and d + d E[I] / E[O - 1] <= C,
    so d <= C E[O - 1] / (E[I] + E[O - 1]); pp micro-batches are in flight."""
    if mean_decodes <= 0:
        return 0.0
    return pp * budget_tokens * mean_decodes / (mean_input + mean_decodes)


@dataclass(frozen=True, slots=True)
class ChunkedPoint:
    """One replica at a mean decode batch. Stage times in seconds, rates per replica."""

    decode_batch: float  # B, decodes in flight
    chunk_tokens: float  # c, prompt tokens one micro-batch can carry
    decode_stage_s: float  # t_dec
    full_stage_s: float  # t_full
    marginal_token_s: float  # m, stage time per prompt token riding along
    round_stage_s: float  # t_round at the arrival rate: the busiest micro-batch of a round, which sets its pace
    prefill_rho: float  # utilisation of the prefill budget, R E[I] t_full / c


def chunked_point(
    deployment: Deployment, input_lens: np.ndarray, mean_context: float, decode_batch: float, prompt_tok_s: float
) -> ChunkedPoint:
    """The replica with `decode_batch` decodes in flight while prompt tokens arrive at `prompt_tok_s`."""
    pp, budget = deployment.pp_size, float(deployment.engine.max_num_tokens)
    per_mb = max(decode_batch, 1.0) / pp  # at least one sequence runs while the replica is busy
    chunk = max(budget - per_mb, 1.0)
    decodes = BatchShape.decode(per_mb, mean_context)
    t_dec = stage_step_s(deployment, decodes)
    prompt = BatchShape.prefill(chunk, cached_len=mean_cached_tokens(input_lens, chunk))
    t_full = stage_step_s(deployment, decodes + prompt)
    marginal = (t_full - t_dec) / chunk
    # A round of pp micro-batches takes P = R E[I] pp t_round prompt tokens. Up to one chunk they ride in one
    # micro-batch (a prompt's chunk fills its micro-batch first), which then paces every stage of the round:
    # t_round = t_dec + m P, so t_round = t_dec / (1 - pp R E[I] m). Beyond a chunk they spread over the
    # micro-batches and the busiest holds a full one: t_round = t_full, up to pp chunks per round (rho = 1).
    load = prompt_tok_s * marginal * pp
    t_round = t_dec / (1 - load) if load < 1 else math.inf
    if prompt_tok_s * pp * t_round > chunk:
        t_round = t_full
    return ChunkedPoint(
        decode_batch=decode_batch,
        chunk_tokens=chunk,
        decode_stage_s=t_dec,
        full_stage_s=t_full,
        marginal_token_s=marginal,
        round_stage_s=t_round,
        prefill_rho=prompt_tok_s * t_full / chunk,
    )


def solve_decode_batch(
    point_at: Callable[[float], ChunkedPoint], arrivals_req_s: float, decodes_per_req: float, pp: int, cap: float
) -> ChunkedPoint | None:
    """Root of B = R E[O - 1] pp t_round(B) on [0, cap] (numerics.bracketed_root); None when even `cap` decodes
    cannot keep up or the prefill budget saturates first."""

    def excess(batch: float) -> float:
        t_round = point_at(batch).round_stage_s
        if not math.isfinite(t_round):  # no prompts and no decodes at all: a guard (t_round is t_full beyond one
            return cap + 1.0  # chunk per round; saturation is caught by prefill_rho below)
        return arrivals_req_s * decodes_per_req * pp * t_round - batch

    if excess(cap) > 0:
        return None
    batch = cap if excess(0.0) <= 0 else bracketed_root(excess, 0.0, cap, xtol=cap * ROOT_TOLERANCE)
    point = point_at(batch)
    return point if point.prefill_rho < 1 else None


def chunk_size_quantile(input_lens: np.ndarray, chunk_tokens: float, queued_tokens: float, level: float) -> float:
    """Prompt tokens in a chunk-carrying micro-batch at quantile `level` (prompt tokens, at most the budget c):
    prompt i fills ceil(I_i / c) - 1 micro-batches with c tokens and its last with the remainder, topped up
    from the `queued_tokens` waiting behind it (stall-free batching fills the budget from the queue)."""
    lens, c = np.asarray(input_lens, dtype=float), float(chunk_tokens)
    chunks = np.ceil(lens / c)
    last = np.minimum(lens - (chunks - 1) * c + queued_tokens, c)
    sizes = np.concatenate([np.full(int(np.sum(chunks - 1)), c), last])
    return quantile(sizes, min(max(level, 0.0), 1.0))


def chunk_rounds_s(
    deployment: Deployment, input_lens: np.ndarray, point: ChunkedPoint, mean_context: float
) -> np.ndarray:
    """Time from a prompt's first chunk to its first token, per request: ceil(I / c) rounds; in each, its own
    micro-batch carries a chunk (d decodes + a chunk after the prompt's earlier chunks) through all pp stages,
    and the next chunk starts when it leaves the last (vLLM's virtual engines: one micro-batch in flight each).
    The chunks' marginal time is exact on 24 lengths spread in log scale and interpolated (it is smooth in I;
    the step in ceil(I / c) is kept exact)."""
    pp, c = deployment.pp_size, point.chunk_tokens
    lens = np.asarray(input_lens, dtype=float)
    decodes = BatchShape.decode(max(point.decode_batch, 1.0) / pp, mean_context)
    grid = sorted_unique(np.rint(np.geomspace(lens.min(), lens.max(), 24)))
    marginal = []
    for length in grid:
        n = math.ceil(length / c)
        # n equal chunks; the mean cached context of a chunk is (n - 1) / 2 chunks (exact for the linear terms)
        chunk = BatchShape.prefill(length / n, cached_len=length * (n - 1) / (2 * n))
        marginal.append(n * (stage_step_s(deployment, decodes + chunk) - point.decode_stage_s))
    rounds = np.ceil(lens / c)
    own = rounds * point.decode_stage_s + np.interp(lens, grid, np.array(marginal))
    rounds_s: np.ndarray = pp * own
    return rounds_s


@register
class Chunked(Strategy):
    name = "chunked"
    summary = "chunked prefills under a per-iteration token budget, decodes first: stall-free batching"
    reference = "Sarathi-Serve (OSDI'24)"
    knobs: ClassVar[tuple[Knob, ...]] = (
        Knob(
            name="chunk_size",
            default=512,
            search=(256, 512, 1024, 2048),
            help="token budget of one iteration (decodes + prompt chunk): smaller cuts the p99 time between "
            "tokens, larger raises throughput (Sarathi-Serve default 512)",
        ),
        Knob(
            name="max_batch",
            default=256,
            search=(64, 256, 1024),
            help="cap on sequences in flight per scheduler, as vLLM's max_num_seqs (with PP > 1 each of the pp "
            "virtual engines has it)",
        ),
    )

    def deployment(self, ctx: Context, candidate: Candidate) -> Deployment:
        """A replica on the context's engine calibration with Sarathi-Serve scheduling: mixed iterations of at
        most chunk_size tokens, at most max_batch sequences."""
        engine = ctx.engine.model_copy(
            update={
                "mixed_batching": True,
                "max_num_tokens": int(candidate.knobs.get("chunk_size", 512)),
                "max_batch_size": int(candidate.knobs.get("max_batch", ctx.engine.max_batch_size)),
            }
        )
        return ctx.deployment(candidate.tp, candidate.pp, engine)

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        return layout_candidates(self, ctx, layouts(ctx), knobs)

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        return instance_memory(ctx, self.deployment(ctx, candidate))

    def _caps(self, ctx: Context, deployment: Deployment) -> tuple[float, float]:
        """(sequences in flight that the batch knob and KV memory allow, decodes that the token budget sustains
        (`budget_decode_cap`)). A sequence holds KV in blocks of 16 tokens for its context as it grows (vLLM
        allocates KV as tokens are generated; the whole sequence from admission when the engine reserves it),
        and longer outputs hold it longer: continuous.kv_tokens_per_sequence, the output-weighted mean."""
        w, engine = ctx.workload, deployment.engine
        kv_tokens = memory_breakdown(deployment).kv_capacity_tokens
        per_seq = continuous.kv_tokens_per_sequence(w.input_lens, w.output_lens, engine.reserves_full_sequence)
        # The sequence cap is per scheduler, as vLLM's max_num_seqs: each of the pp virtual engines has it.
        slots = max(min(float(engine.max_batch_size) * deployment.pp_size, kv_tokens / per_seq), 1.0)
        if w.mean_output_len <= 1:
            return slots, slots
        budget = budget_decode_cap(engine.max_num_tokens, w.mean_input_len, w.mean_output_len - 1, deployment.pp_size)
        return slots, budget

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        deployment = self.deployment(ctx, candidate)
        w = ctx.workload
        inputs, decodes_per_req = np.array(w.input_lens), w.mean_output_len - 1
        cap = min(self._caps(ctx, deployment))
        point = chunked_point(deployment, inputs, w.mean_decode_context, cap, 0.0)
        budget_rate = point.chunk_tokens / (w.mean_input_len * point.full_stage_s)  # the budget's prompt rate
        if decodes_per_req <= 0:
            return budget_rate * candidate.replicas
        # Little's law at the cap, B = X E[O-1] pp t_round, with the round of chunked_point: while a round's
        # P = X E[I] pp t_round prompt tokens fit one chunk, t_round = t_dec / (1 - pp X E[I] m), so
        # X = B / (E[O-1] pp t_dec + pp B E[I] m); beyond, t_round = t_full and X = B / (E[O-1] pp t_full).
        pp, m = deployment.pp_size, point.marginal_token_s
        rate = cap / (decodes_per_req * pp * point.decode_stage_s + pp * cap * w.mean_input_len * m)
        if cap * w.mean_input_len / decodes_per_req > point.chunk_tokens:  # P = B E[I] / E[O-1] by Little's law
            rate = cap / (decodes_per_req * pp * point.full_stage_s)
        return min(rate, budget_rate) * candidate.replicas

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        deployment = self.deployment(ctx, candidate)
        w = ctx.workload
        pp, rate = deployment.pp_size, rate_req_s / candidate.replicas
        inputs, outputs = np.array(w.input_lens, dtype=float), np.array(w.output_lens, dtype=float)
        mean_context, mean_input = w.mean_decode_context, w.mean_input_len

        def point_at(batch: float) -> ChunkedPoint:
            return chunked_point(deployment, inputs, mean_context, batch, rate * mean_input)

        slot_cap, budget_cap = self._caps(ctx, deployment)
        point = solve_decode_batch(point_at, rate, max(w.mean_output_len - 1, 0.0), pp, min(slot_cap, budget_cap))
        if point is None:
            return None
        c, t_dec, t_round = point.chunk_tokens, point.decode_stage_s, point.round_stage_s
        # Prefill budget as an M/G/1 server: request i holds it for I_i t_full / c (Pollaczek-Khinchine).
        service = inputs * point.full_stage_s / c
        rho = point.prefill_rho
        mean_wait = rate * float(np.mean(service**2)) / (2 * (1 - rho))
        slots = point.decode_batch + rate * float(np.mean(service))  # decoding + prefilling sequences
        if slots >= slot_cap:
            return None
        slot_wait = continuous.slot_wait_s(slots, slot_cap, rate)
        waits = queue_waits_s(len(inputs), max(rho, slots / slot_cap), mean_wait + slot_wait)
        ttft = waits + t_round / 2 + chunk_rounds_s(deployment, inputs, point, mean_context)
        # Share of rounds carrying prompt tokens (chunks start at R E[ceil(I / c)] over a round of pp t_round),
        # and the prompt tokens of the busiest micro-batch of such a round, which paces all pp of its stages.
        share = min(1.0, rate * float(np.mean(np.ceil(inputs / c))) * pp * t_round)
        chunk_tokens = min(c, rate * w.mean_input_len * pp * t_round / share) if share > 0 else 0.0
        carrying = binom_ppf(seeded_quantiles(len(inputs), 1), np.maximum(outputs - 1, 0), share)
        extra = carrying * pp * chunk_tokens * point.marginal_token_s / np.maximum(outputs - 1, 1)
        tpot = pp * t_dec + extra
        # p99 gap: a round with a chunk once more than 1% of rounds carry one, its busiest micro-batch carrying
        # the chunk found at the matching level of the chunk sizes (1 - 0.01 / share), through all pp stages.
        tbt_p99 = pp * t_dec
        if share > 0.01:
            level = 1 - 0.01 / share
            queued_tokens = rate * mean_wait * mean_input  # Little's law on the prompts waiting for the budget
            chunk_p99 = chunk_size_quantile(inputs, c, queued_tokens, level)
            prompt = BatchShape.prefill(chunk_p99, cached_len=mean_cached_tokens(inputs, c))
            decodes = BatchShape.decode(max(point.decode_batch, 1.0) / pp, mean_context)
            tbt_p99 = pp * stage_step_s(deployment, decodes + prompt)
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)


def tbt_capacity_req_s(
    strategy: Strategy, ctx: Context, candidate: Candidate, tbt_slo_s: float, resolution: float = 0.01
) -> float:
    """Sarathi-Serve's serving capacity: the largest Poisson rate (req/s, whole configuration) at which the
    configuration is stable and its p99 time between tokens stays within `tbt_slo_s`. Bisection between 0
    and the offline capacity to `resolution` of it; 0 when even 1% of capacity misses the target."""
    top = strategy.capacity_req_s(ctx, candidate)

    def meets(rate: float) -> bool:
        lat = strategy.latencies(ctx, candidate, rate)
        return lat is not None and lat.tbt_p99_s <= tbt_slo_s

    low, high = top * resolution, top
    if not meets(low):
        return 0.0
    while high - low > top * resolution:
        mid = (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low
