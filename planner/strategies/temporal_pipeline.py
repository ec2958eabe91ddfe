"""`temporal-pipeline`: pipeline parallelism with alternating prefill and decode phases (TD-Pipe, ICPP'25).

The model is split into pp stages (TP 1 per stage by default, small TP allowed). Instead of mixing prompts
into the decode stream one by one, as a naive pipeline does (continuous.py: each prompt micro-batch stalls the
decode micro-batches behind it at every later stage), the engine alternates whole phases (TD-Pipe code,
`TD_Pipe/core/scheduler.py`):
- prefill phase: prompts in micro-batches of about `prefill_tokens` tokens (TD-Pipe's peak_batch_size 192),
  back to back, until the predicted KV footprint reaches `kv_fill` (0.9) of capacity or the queue empties;
- decode phase: the running batch B in pp micro-batches of B / pp (work stealing keeps them balanced), one
  decode round = pp x stage time of B / pp; back to prefill when the spatial-temporal intensity test fires.

The phase cycle, offline (every term per instance):
    B0 = batch at which the predicted KV footprint of the b* survivors and the new prompts reaches kv_fill x
        capacity (TD-Pipe usage[m] horizons)
    b* = switch point: `switch_share` x B0 if pinned, else the largest b <= min(B0, 192 pp) with
        I_d(b / pp) < I_p(b)   (TD-Pipe update_mode)
        I_d(b) = (b / t(b)) / (256 / t(256)), 1 when b >= 192;  t = decode micro-batch time
        I_p = (prefill_time - bubble) / prefill_time, prefill_time = P + (Tmax / pp)(pp - 1),
        bubble = (Tmax / pp - decode_time)(pp - 1): P, Tmax over the prompts that would fit in the KV left
    decode phase: B drains from B0 to b_end = min(b*, B0 e^(-1/mu)) (at least one round); with geometric
        remaining lengths (mean mu = E[O] - 1 decode tokens) a round finishes B / mu requests, so
        dk = mu dB / B and D = mu x integral over [b_end, B0] of t_round(B) dB / B
    prefill phase: n = B0 - b_end prompts, P = n x mean stage time per prompt, plus the flow-shop switch loss
        (pp - 1) x max(0, Tmb_max(n) - t_stage(b_end / pp)): on identical stages a block of micro-batches
        delays the stream behind it by (pp - 1) x its longest stage time (proportionate flow shop; the naive
        pipeline pays the same term per prompt)
    throughput = n E[O] / (P + loss + D)
Under Poisson arrivals the engine switches at the first micro-batch boundary at which a prompt is queued and
the running batch is at or below b* (the switch point of the offline cycle, as planner.sim.temporal has it):
below capacity the batch is mostly under b*, so phases are short (a few prompts) and frequent, and each pays
the stages' drain loss (Pipeline.drain_loss_s). TTFT = wait for the next micro-batch boundary or the end of the
drain window + prompts ahead (fluid backlog, plus the M/G/1 wait of Poisson bursts) + own pass through the
stages; TPOT = round time + the pause (phase and drain loss) every `rounds` decode rounds (open_cycle).
Near capacity the batch Little's law asks for outgrows the KV fill target: the batch is then held at the
target, each phase admits what the finished requests freed, and the decode between phases stretches until
they have (open_cycle); TTFT keeps rising with the longer window, TPOT falls as B_kv / (r mu).
The strategy targets offline throughput, not latency.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from planner.cost.iteration import stage_step
from planner.cost.memory import memory_breakdown
from planner.cost.ops import BatchShape
from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.specs.workload import Workload
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
from planner.strategies.numerics import sorted_unique

INTENSITY_REF_BATCH = 256  # TD-Pipe update_mode: I_d normalised to the micro-batch of 256
CHECK_MICRO_BATCH = 192  # TD-Pipe update_mode: the test runs only when B / pp <= 192 (I_d = 1 above)
KV_HORIZONS = (5, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # TD-Pipe future-footprint horizons (steps)
BLOCK_TOKENS = 16  # vLLM paged-KV block size (default; TD-Pipe runs on vLLM): usage counts whole blocks
GRID_POINTS = 16  # prompt lengths costed exactly; others interpolated (stage time is smooth in the length)


def stage_s(deployment: Deployment, batch: BatchShape) -> float:
    """One micro-batch through one stage and across one boundary, plus the engine's per-iteration overhead
    (the same step as continuous.py's pipeline)."""
    return stage_step(deployment, batch).time_s


@dataclass(frozen=True)
class DecodeTable:
    """Stage time of a decode micro-batch, exact at GRID_POINTS sizes spaced in log scale, interpolated
    between them (smooth in the size: weights streamed once, GEMM efficiency rising with rows)."""

    sizes: np.ndarray
    times_s: np.ndarray

    @classmethod
    def build(cls, deployment: Deployment, largest: float, mean_context: float) -> DecodeTable:
        sizes = np.geomspace(1.0, max(largest, INTENSITY_REF_BATCH), GRID_POINTS)
        return cls(sizes, np.array([stage_s(deployment, BatchShape.decode(b, mean_context)) for b in sizes]))

    def stage_s(self, micro_batch: float) -> float:
        return float(np.interp(max(micro_batch, 1.0), self.sizes, self.times_s))


@dataclass(frozen=True)
class Prompts:
    """Stage times of the workload's prompts, per request (seconds), alone and in a full micro-batch."""

    alone_s: np.ndarray  # the prompt alone at one stage: TD-Pipe's T(len) / pp in the I_p simulation
    packed_s: np.ndarray  # the full micro-batch of `pack` prompts of its length at one stage
    pack: np.ndarray  # prompts in a full micro-batch: ceil(prefill_tokens / len), at least 1

    def size(self, queued: float) -> np.ndarray:
        """Prompts per micro-batch: a full pack, unless the phase has fewer prompts."""
        size: np.ndarray = np.minimum(self.pack, max(queued, 1.0))
        return size

    def micro_batch_s(self, queued: float) -> np.ndarray:
        """Stage time of the micro-batch holding each prompt in a phase of `queued` prompts: interpolated
        between alone and the full pack by the prompts it holds (stage time grows about linearly in tokens)."""
        extra = (self.size(queued) - 1) / np.maximum(self.pack - 1, 1.0)
        micro: np.ndarray = self.alone_s + extra * (self.packed_s - self.alone_s)
        return micro

    def share_s(self, queued: float) -> float:
        """Mean stage time per prompt (its micro-batch over the prompts in it) in a phase of `queued`."""
        return float(np.mean(self.micro_batch_s(queued) / self.size(queued)))

    @staticmethod
    def expected_max(values: np.ndarray, n: float | np.ndarray) -> np.ndarray:
        """Expected largest of n draws (at least one), as the n / (n + 1) quantile (linear between order
        statistics, as numpy's default quantile)."""
        n = np.maximum(n, 1.0)
        ranks = np.arange(len(values), dtype=float)
        largest: np.ndarray = np.interp(n / (n + 1) * (len(values) - 1), ranks, np.sort(values))
        return largest

    @staticmethod
    def mean_max(values: np.ndarray, n: float) -> float:
        """Mean of the largest of n draws (at least one) from the empirical distribution F of `values`:
        sum over the sorted values x_(i) of x_(i) (F_i^n - F_(i-1)^n), F_i = i / N (smooth in n, fractional
        n included, where the quantile of expected_max steps across clusters of equal values)."""
        ranks = np.arange(len(values) + 1, dtype=float) / len(values)
        return float(np.sum(np.sort(values) * np.diff(ranks ** max(n, 1.0))))


def prompt_profile(deployment: Deployment, input_lens: np.ndarray, prefill_tokens: float) -> Prompts:
    """TD-Pipe packs prompts FCFS until (prompts x longest length) >= peak_batch_size, so a prompt of L tokens
    shares its micro-batch with ceil(prefill_tokens / L) - 1 others of about its length (alone when longer)."""
    lengths = np.asarray(input_lens, dtype=float)
    grid = sorted_unique(np.rint(np.geomspace(lengths.min(), lengths.max(), GRID_POINTS)))
    pack = np.maximum(1.0, np.ceil(prefill_tokens / grid))
    packed = np.array([stage_s(deployment, BatchShape.prefill(n, k)) for n, k in zip(grid, pack, strict=True)])
    alone = np.array([stage_s(deployment, BatchShape.prefill(n)) for n in grid])
    return Prompts(
        alone_s=np.interp(lengths, grid, alone),
        packed_s=np.interp(lengths, grid, packed),
        pack=np.maximum(1.0, np.ceil(prefill_tokens / lengths)),
    )


def footprint_tokens(workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Predicted KV footprint per request at each TD-Pipe horizon m, in tokens (usage[m] of scheduler.py,
    sum over requests with at least m decode steps left of their blocks at length + m):
    - fresh: just prefilled (length I + 1, O - 1 steps left): (I + 1 + m) [O - 1 >= m];
    - running: the equilibrium population of a continuous batch, a request present with probability
      proportional to O at an age a uniform in [0, O): averaged, (O - m)+ (I + m + (O - m) / 2) / E[O].
    Both plus half a block on average for rounding up to whole blocks."""
    inputs, outputs = np.array(workload.input_lens, float), np.array(workload.output_lens, float)
    m = np.array(KV_HORIZONS, float)[:, None]
    half_block = (BLOCK_TOKENS - 1) / 2
    fresh = np.mean((inputs + 1 + m + half_block) * (outputs - 1 >= m), axis=1)
    left = np.maximum(outputs - m, 0.0)
    running = np.sum(left * (inputs + m + left / 2 + half_block), axis=1) / np.sum(outputs)
    return fresh, running


def batch_at_fill(fresh: np.ndarray, running: np.ndarray, kv_tokens: float, survivors: float) -> float:
    """Batch after admitting fresh prompts on top of `survivors` running requests until the predicted peak
    footprint max_m [survivors running(m) + fresh_count fresh(m)] reaches kv_tokens."""
    room = (kv_tokens - survivors * running) / np.maximum(fresh, 1e-9)
    return max(survivors + float(np.min(room)), 0.0)


@dataclass(frozen=True)
class Cycle:
    """One prefill phase plus one decode phase of one instance (seconds, requests)."""

    full_batch: float  # B0: batch when the prefill phase stops
    switch_batch: float  # b_end: batch when the decode phase stops
    admitted: float  # prompts per prefill phase = completions per cycle
    prefill_s: float  # prefill work of the phase (stage time sum)
    switch_loss_s: float  # flow-shop delay of the phase switch
    decode_s: float  # decode phase
    rounds: float  # decode rounds per cycle

    @property
    def cycle_s(self) -> float:
        return self.prefill_s + self.switch_loss_s + self.decode_s

    @property
    def request_rate_req_s(self) -> float:
        return self.admitted / self.cycle_s


@dataclass(frozen=True)
class Pipeline:
    """The quantities of one temporal-pipeline instance that every formula above uses."""

    pp: int
    kv_tokens: float  # KV capacity of the instance
    kv_fill: float
    switch_share: float
    mu: float  # mean decode tokens per request, E[O] - 1
    max_batch: float  # each micro-batch is one engine iteration at a stage, within the engine's sequence cap
    prompts: Prompts
    decode: DecodeTable
    fresh: np.ndarray  # footprint_tokens
    running: np.ndarray

    @classmethod
    def build(cls, ctx: Context, deployment: Deployment, knobs: Mapping[str, float]) -> Pipeline:
        w, pp = ctx.workload, deployment.pp_size
        max_batch = float(deployment.engine.max_batch_size * pp)
        # The tables depend on the deployment and the prompt budget only: every switch_share shares them.
        fresh, running = ctx.cached("temporal-pipeline footprint", lambda: footprint_tokens(w))
        tokens = knobs["prefill_tokens"]
        return cls(
            pp=pp,
            kv_tokens=float(memory_breakdown(deployment).kv_capacity_tokens),
            kv_fill=knobs["kv_fill"],
            switch_share=knobs["switch_share"],
            mu=max(w.mean_output_len - 1.0, 1.0),
            max_batch=max_batch,
            prompts=ctx.cached(
                ("temporal-pipeline prompts", deployment, tokens),
                lambda: prompt_profile(deployment, np.array(w.input_lens), tokens),
            ),
            decode=ctx.cached(
                ("temporal-pipeline decode", deployment),
                lambda: DecodeTable.build(deployment, max_batch / pp, w.mean_decode_context),
            ),
            fresh=fresh,
            running=running,
        )

    def round_s(self, batch: float) -> float:
        """One decode round: pp micro-batches of B / pp through every stage (as continuous.decode_step)."""
        return self.pp * self.decode.stage_s(batch / self.pp)

    def decode_intensity(self, batch: float) -> float:
        """I_d of the micro-batch b = B / pp: its throughput over that of a 256 micro-batch (1 from 192)."""
        b = batch / self.pp
        if b >= CHECK_MICRO_BATCH:
            return 1.0
        return (b / self.decode.stage_s(b)) / (INTENSITY_REF_BATCH / self.decode.stage_s(INTENSITY_REF_BATCH))

    def prefill_intensity(self, queued: float, batch_after: float) -> float:
        """I_p for a prefill phase of `queued` prompts leaving `batch_after` running (TD-Pipe update_mode);
        -inf when nothing would be admitted."""
        if queued < 1:
            return -math.inf
        t_max = float(Prompts.expected_max(self.prompts.alone_s, queued))  # Tmax / pp
        prefill_time = queued * float(np.mean(self.prompts.alone_s)) + t_max * (self.pp - 1)
        decode_time = self.round_s(batch_after)  # T(B' // pp): one micro-batch through the whole model
        bubble = (t_max - decode_time) * (self.pp - 1)
        return (prefill_time - bubble) / prefill_time

    def fill_batch(self, survivors: float, fill: float) -> float:
        return min(batch_at_fill(self.fresh, self.running, fill * self.kv_tokens, survivors), self.max_batch)

    def criterion_switch(self, top: float) -> float:
        """b*: the largest total batch b <= top at which I_d(b / pp) < I_p(b), the prompts that would fit in
        the whole KV (TD-Pipe's simulation admits up to 100%) queued. 1 when the test never fires."""

        def fires(b: float) -> bool:
            after = self.fill_batch(b, 1.0)
            return self.decode_intensity(b) < self.prefill_intensity(after - b, after)

        top = min(top, CHECK_MICRO_BATCH * self.pp)
        if fires(top):
            return top
        if not fires(1.0):
            return 1.0
        low, high = 1.0, top
        for _ in range(20):
            mid = math.sqrt(low * high)
            low, high = (mid, high) if fires(mid) else (low, mid)
        return low

    def switch_loss_s(self, admitted: float, batch: float) -> float:
        t_mb = float(Prompts.expected_max(self.prompts.micro_batch_s(admitted), admitted))
        return (self.pp - 1) * max(0.0, t_mb - self.decode.stage_s(batch / self.pp))

    def drain_loss_s(self, admitted: float, batch: float) -> float:
        """Stage time lost after a prefill phase of `admitted` prompts, with `batch` running (seconds). The
        virtual engine of the last prompt micro-batch (stage time T, the longest of the phase) next decodes
        once that prompt's first token leaves the last stage, and micro-batches enter the first stage in the
        order they are scheduled (planner.sim.pipeline):
            T + (pp - 1) max(T, t)     the prompt leaves the last stage (behind decode micro-batches of t
                                       per stage when those are the longer ones)
            T + min((pp - 1) t, T)     the first stage has finished the prompt and the decode micro-batches
                                       scheduled while it ran (one every t, at most pp - 1 of them)
        loss = (pp - 1) max(T, t) - min((pp - 1) t, T); the flow-shop switch loss (pp - 1)(T - t) when
        T >= (pp - 1) t."""
        t_mb = Prompts.mean_max(self.prompts.micro_batch_s(admitted), admitted)
        t_decode = self.decode.stage_s(batch / self.pp)
        return (self.pp - 1) * max(t_mb, t_decode) - min((self.pp - 1) * t_decode, t_mb)

    def decode_phase_s(self, high: float, low: float) -> float:
        """mu x integral of t_round(B) dB / B from low to high (trapezoid in log B)."""
        if high <= low:
            return 0.0
        grid = np.geomspace(low, high, 8)
        times = np.array([self.round_s(b) for b in grid])
        return self.mu * float(np.sum((times[1:] + times[:-1]) / 2 * np.diff(np.log(grid))))

    def cycle(self) -> Cycle:
        """The offline phase cycle (module docstring). B0 and b* depend on each other through the footprint
        of the survivors: a few fixed-point passes settle them."""
        switch = 0.0
        for _ in range(4):
            full = self.fill_batch(switch, self.kv_fill)
            if full < 1:
                raise PlannerError(f"KV cache of {self.kv_tokens:.0f} tokens holds less than one request")
            switch = self.switch_share * full if self.switch_share else self.criterion_switch(full)
            switch = min(switch, full * math.exp(-1 / self.mu))  # the test runs after one decode round
        admitted = full - switch
        return Cycle(
            full_batch=full,
            switch_batch=switch,
            admitted=admitted,
            prefill_s=admitted * self.prompts.share_s(admitted),
            switch_loss_s=self.switch_loss_s(admitted, switch),
            decode_s=self.decode_phase_s(full, switch),
            rounds=self.mu * math.log(full / switch),
        )


@dataclass(frozen=True)
class OpenCycle:
    """The cycle under Poisson arrivals (seconds, requests): after a prefill phase, the stages idle for `loss`
    while the last prompt micro-batch drains, at least `rounds` decode rounds follow, then `idle` more decode
    until a prompt arrives; the next phase runs the `queued` prompts that arrived in the cycle."""

    rounds: float  # decode rounds per cycle (forced and idle)
    forced_rounds: float  # decode rounds before the engine may switch again
    batch: float
    round_s: float
    cycle_s: float
    queued: float
    loss_s: float
    idle_s: float

    @property
    def decode_s(self) -> float:
        return self.rounds * self.round_s

    @property
    def pause_s(self) -> float:
        return self.cycle_s - self.decode_s

    @property
    def window_s(self) -> float:
        """From the end of a prefill phase to the first micro-batch boundary at which a new one may start."""
        return self.loss_s + self.forced_rounds * self.round_s


def kv_batch_cap(pipe: Pipeline, queued: float) -> float:
    """Largest mean batch B whose peak B + n / 2 after a phase of n = `queued` prompts stays within the KV
    fill target, the B - n / 2 survivors of the decode phase held at the running footprint (batch_at_fill):
        (B - n / 2) running(m) + n fresh(m) <= kv_fill x KV at every horizon m
        -> B <= n / 2 + (kv_fill x KV - n fresh(m)) / running(m)
    and B + n / 2 within the engine's sequence cap."""
    kv = pipe.kv_fill * pipe.kv_tokens
    room = np.where(pipe.running > 0, (kv - queued * pipe.fresh) / np.maximum(pipe.running, 1e-9), np.inf)
    return min(queued / 2 + float(np.min(room)), pipe.max_batch - queued / 2)


def open_cycle(pipe: Pipeline, rate_req_s: float, rounds: float) -> OpenCycle | None:
    """Fixed point of the cycle when the engine switches to prompts at the first micro-batch boundary, after
    `rounds` decode rounds (k), at which a prompt is queued (the running batch is at or below b*):
        W = L(n, B) + k t_round(B)        window after a phase: drain loss, then the forced decode rounds
        q = exp(-r W)                     chance that no prompt arrived in the window (Poisson)
        I = q / r                         decode then continues until the next arrival (memoryless)
        C = (k t_round + I + L) / (1 - r p)   the phase serves every prompt of the cycle, p seconds each
        n = r C,  B = r mu t_round C / (k t_round + I)   (Little's law: a request advances one token a round)
    When that B exceeds the KV cap B_kv(n) (kv_batch_cap), a phase admits only the prompts the finished
    requests made room for, so the batch stays at B_kv and the decode lasts until the k' rounds have freed n
    requests' KV (each round finishes B_kv / mu of them): k' t_round + I = r mu t_round C / B_kv, and
        C = L / (1 - r p - r mu t_round / B_kv)
    the same C and k as above where B reaches B_kv, so the two branches join. Prompts arriving meanwhile
    queue for the next phase (the window W grows with k'). None when even an unbounded phase cannot keep up
    (r (p + mu t_round / B_kv) >= 1)."""
    batch, queued, forced = 1.0, 1.0, rounds
    loss_s = idle_s = cycle_s = round_s = 0.0
    for _ in range(16):
        share = pipe.prompts.share_s(queued)
        if rate_req_s * share >= 1:
            return None
        round_s = pipe.round_s(batch)
        loss_s = pipe.drain_loss_s(queued, batch)
        idle_s = math.exp(-rate_req_s * (loss_s + rounds * round_s)) / rate_req_s
        cycle_s = (rounds * round_s + idle_s + loss_s) / (1 - rate_req_s * share)
        little = rate_req_s * pipe.mu * round_s * cycle_s / (rounds * round_s + idle_s)
        cap = kv_batch_cap(pipe, rate_req_s * cycle_s)
        if little <= cap:
            forced, queued = rounds, rate_req_s * cycle_s
            # geometric mean of the old and new batch: damps the round time's feedback on the batch
            batch = math.sqrt(batch * max(little, 1.0))
        else:
            # KV-bound: the batch held at the cap, the decode stretched to free the next phase's KV
            idle_s = math.exp(-rate_req_s * (loss_s + forced * round_s)) / rate_req_s
            cap = kv_batch_cap(pipe, queued)  # at the phase size of the last pass (the same at the fixed point)
            spare = 1 - rate_req_s * share - rate_req_s * pipe.mu * round_s / cap
            if spare <= 0:
                return None
            cycle_s = loss_s / spare
            forced = max(rounds, (rate_req_s * pipe.mu * round_s * cycle_s / cap - idle_s) / round_s)
            queued = rate_req_s * cycle_s
            batch = max(kv_batch_cap(pipe, queued), 1.0)
    return OpenCycle(
        rounds=forced + idle_s / round_s,
        forced_rounds=forced,
        batch=batch,
        round_s=round_s,
        cycle_s=cycle_s,
        queued=queued,
        loss_s=loss_s,
        idle_s=idle_s,
    )


def settle(pipe: Pipeline, rate_req_s: float, max_rounds: float, switch_batch: float) -> OpenCycle | None:
    """The cycle with the fewest forced decode rounds (at least one: the micro-batches queued behind the
    phase) after which the batch has drained to the switch point b*, where the engine switches as soon as a
    prompt is queued (planner.sim.temporal)."""

    def switches(rounds: float) -> OpenCycle | None:
        point = open_cycle(pipe, rate_req_s, rounds)
        if point is None:
            return None
        return point if max(point.batch - point.queued / 2, 1.0) <= switch_batch else None

    if switches(max_rounds) is None:
        return open_cycle(pipe, rate_req_s, max_rounds)
    low, high = 1.0, max_rounds
    if (first := switches(low)) is not None:
        return first
    while high - low > 0.002 * low:  # the switch point moves smoothly with the rate: so must the rounds
        mid = math.sqrt(low * high)
        low, high = (low, mid) if switches(mid) is not None else (mid, high)
    return open_cycle(pipe, rate_req_s, high)


def request_latencies(pipe: Pipeline, point: OpenCycle, rate_req_s: float, workload: Workload) -> Latencies:
    """Per-request TTFT and TPOT in the cycle `point`. An arrival falls, in proportion to their lengths, in
    - the window W after a phase: it waits for the window's end and the prompts that arrived before it;
    - the idle decode I: it starts the next phase at the next micro-batch boundary (one decode stage time);
    - the phase: it waits for the prompt work queued, which starts at r p W + q p (the window's arrivals, or
      the one that ended the idle decode) and drains at 1 - r p.
    Then its micro-batch leaves the last stage after its own stage time and (pp - 1) times the longest stage
    time so far, of the prompts before it or of the decode micro-batches ahead of the phase (flow shop).
    TPOT = round time + the pause (phase and drain loss) every `rounds` rounds."""
    n, outputs = len(workload.input_lens), np.array(workload.output_lens, dtype=float)
    share, micro = pipe.prompts.share_s(point.queued), pipe.prompts.micro_batch_s(point.queued)
    window_s, idle_s = point.window_s, point.idle_s
    arrival = seeded_quantiles(n, 2) * point.cycle_s  # from the end of the previous prefill phase
    in_window, in_phase = arrival < window_s, arrival >= window_s + idle_s
    offset = arrival - window_s - idle_s  # into the phase
    start_work = share * (rate_req_s * window_s + math.exp(-rate_req_s * window_s))
    queued_work = np.maximum(0.0, start_work - offset * (1 - rate_req_s * share))
    ahead = np.where(in_window, rate_req_s * arrival * share, np.where(in_phase, queued_work, 0.0))
    t_decode = pipe.decode.stage_s(point.batch / pipe.pp)
    boundary = np.where(in_window, window_s - arrival, np.where(in_phase, 0.0, t_decode))
    # longest micro-batch ahead in the stages: the prompts up to this one, or the decode micro-batches before
    longest = np.maximum(Prompts.expected_max(micro, ahead / share + 1), t_decode)
    # Fuhrmann-Cooper decomposition (M/G/1 with vacations): the wait above is the vacations' part (for a fixed
    # window V the fluid backlog averages V / 2 = E[V^2] / 2E[V]); the Poisson bursts of prompt work add the
    # M/G/1 (Pollaczek-Khinchine) wait r E[S^2] / (2 (1 - r p)), S the stage time per prompt, drawn with its
    # exponential tail
    per_prompt = micro / pipe.prompts.size(point.queued)
    rho = rate_req_s * share
    burst = queue_waits_s(n, rho, rate_req_s * float(np.mean(per_prompt**2)) / (2 * (1 - rho)), seed=4)
    ttft = boundary + ahead + burst + micro + (pipe.pp - 1) * np.maximum(micro, longest)
    steps = np.maximum(outputs - 1, 1.0)
    pauses = np.floor(steps / point.rounds + seeded_quantiles(n, 3))  # prefill phases during its decode
    tpot = np.where(outputs > 1, (steps * point.round_s + pauses * point.pause_s) / steps, point.round_s)
    tbt_p99 = point.round_s + (point.pause_s if 1 / point.rounds > 0.01 else 0.0)
    return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)


@register
class TemporalPipeline(Strategy):
    name = "temporal-pipeline"
    summary = "pipeline with long prefill and decode phases switched by an intensity test (TD-Pipe); throughput"
    reference = "TD-Pipe (ICPP'25, arXiv 2506.10470)"
    knobs = (
        Knob(
            name="prefill_tokens",
            default=192,
            search=(192, 512),
            help="tokens per prefill micro-batch (TD-Pipe peak_batch_size 192, the knee of its L20 profile)",
        ),
        Knob(
            name="kv_fill",
            default=0.9,
            search=(0.9,),
            help="share of the KV cache the predicted footprint may reach before the prefill phase stops",
        ),
        Knob(
            name="switch_share",
            default=0,
            search=(0, 0.5, 0.8),
            help="decode->prefill switch point b* as a share of the full batch B0 (0: TD-Pipe's intensity test "
            "decides); lower shares mean longer phases, fewer switch bubbles, smaller late decode batches",
        ),
    )

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        # A temporal pipeline needs stages to alternate over: PP >= 2.
        pairs = ((tp, pp) for tp, pp in layouts(ctx) if pp >= 2)
        return layout_candidates(self, ctx, pairs, knobs)

    def pipeline(self, ctx: Context, candidate: Candidate) -> Pipeline:
        deployment = ctx.deployment(candidate.tp, candidate.pp)
        key = (deployment, tuple(sorted(candidate.knobs.items())))
        return ctx.cached(("temporal-pipeline", key), lambda: Pipeline.build(ctx, deployment, candidate.knobs))

    def cycle(self, ctx: Context, candidate: Candidate) -> Cycle:
        """The offline cycle, worked out once per configuration (the capacity and every rate tabulated use it)."""
        key = (ctx.deployment(candidate.tp, candidate.pp), tuple(sorted(candidate.knobs.items())))
        return ctx.cached(("temporal-pipeline cycle", key), lambda: self.pipeline(ctx, candidate).cycle())

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        return instance_memory(ctx, ctx.deployment(candidate.tp, candidate.pp))

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        return self.cycle(ctx, candidate).request_rate_req_s * candidate.replicas

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        pipe = self.pipeline(ctx, candidate)
        full, rate = self.cycle(ctx, candidate), rate_req_s / candidate.replicas
        if rate >= full.request_rate_req_s:
            return None
        point = settle(pipe, rate, max(full.rounds, 1.0), full.switch_batch)
        if point is None:
            return None
        return request_latencies(pipe, point, rate, ctx.workload)
