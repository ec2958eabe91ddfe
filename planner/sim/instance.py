"""Mutable state of simulated engine instances, and how a planned run of iterations changes it.

An instance holds its running sequences in slots (numpy arrays indexed by slot, so that a decode step of the
whole batch is a few vector operations), a FCFS waiting queue and a count of free KV blocks. Per-request
bookkeeping that outlives a slot (lengths, tokens generated, timestamps, preemptions) sits in a `Ledger`
shared by all instances.

A `Run` is what a scheduler decides at one instant: its first iteration (prompts, decodes, or both), then,
when nothing can change the batch, further decode steps of the same sequences, timed together
(planner.sim.timing). The event loop commits a run whole, or only its first steps when an arrival
could change the schedule sooner; committing a prefix gives the same state as planning step by step.

Token accounting of one sequence with prompt I (I + g when recomputed after g tokens) and output O:
    prefill: computes the prompt's KV and yields a token; after it, ctx = I + 1
    decode step: appends the last token's KV (the cache then holds ctx tokens) and yields one; ctx += 1
so a decode step attends to ctx tokens, holds ceil(ctx / block) blocks, and the request's last token is its
O-th, after O - 1 decode steps.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from planner.sim.pipeline import StageClock
from planner.sim.policy import Role, SchedulerConfig
from planner.sim.timing import IterationTimer, prefill_shape

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class Phase(str, Enum):
    prefill = "prefill"  # prompt tokens only
    decode = "decode"  # decode steps only
    mixed = "mixed"  # decodes and prompt chunks together
    reshard = "reshard"  # weights and KV moving between layouts (phase re-sharding)


@dataclass
class Ledger:
    """Per-request records, indexed by request id (issue order), shared by all instances."""

    input_len: IntArray
    output_len: IntArray
    counted: NDArray[np.bool_]  # False for warm-up requests
    arrival_s: FloatArray
    generated: IntArray = field(init=False)
    first_token_s: FloatArray = field(init=False)
    finish_s: FloatArray = field(init=False)
    last_token_s: FloatArray = field(init=False)  # kept across a preemption, for the inter-token gap
    preemptions: IntArray = field(init=False)
    replica: IntArray = field(init=False)
    kv_ready: NDArray[np.bool_] = field(init=False)  # its KV arrived at a decode instance, not yet admitted
    kept_blocks: IntArray = field(init=False)  # blocks its KV keeps in a cache it stays in (SM partition)
    itl_values_s: list[FloatArray] = field(default_factory=list)  # inter-token gaps, with their counts
    itl_weights: list[IntArray] = field(default_factory=list)
    # the common record of one gap value and its count, as plain numbers (joined to the arrays at the end)
    itl_value_list: list[float] = field(default_factory=list)
    itl_weight_list: list[int] = field(default_factory=list)
    busy_s: dict[Phase, float] = field(default_factory=lambda: dict.fromkeys(Phase, 0.0))
    iterations: int = 0

    def __post_init__(self) -> None:
        n = len(self.input_len)
        self.generated = np.zeros(n, dtype=np.int64)
        self.first_token_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.last_token_s = np.full(n, np.nan)
        self.preemptions = np.zeros(n, dtype=np.int64)
        self.replica = np.full(n, -1, dtype=np.int64)
        self.kv_ready = np.zeros(n, dtype=bool)
        self.kept_blocks = np.zeros(n, dtype=np.int64)
        self.warmup_left = int(np.count_nonzero(~self.counted))  # warm-up requests not finished: while 0, all count

    def itl(self) -> tuple[FloatArray, IntArray]:
        """Every inter-token gap recorded, with its count."""
        values = [*self.itl_values_s, np.array(self.itl_value_list, dtype=float)]
        weights = [*self.itl_weights, np.array(self.itl_weight_list, dtype=np.int64)]
        return np.concatenate(values), np.concatenate(weights)


NO_SLOTS = np.zeros(0, dtype=np.int64)
NO_SLOTS.flags.writeable = False
_sum, _max, _min = np.add.reduce, np.maximum.reduce, np.minimum.reduce  # ndarray.sum / .max / .min, unwrapped


@dataclass(slots=True)
class Run:
    """Iterations planned at start_s. Step 0 holds `chunks` (slot, cached tokens, new tokens) and a decode step
    of `decode_slots`. Without chunks, steps 1.. are decode steps of the same sequences (those unfinished);
    after chunks, of `later_slots` (the running decodes and the prompts just completed)."""

    start_s: float
    ends_s: FloatArray
    phase: Phase  # of step 0
    decode_slots: IntArray
    chunks: list[tuple[int, int, int]]
    later_slots: IntArray = field(default_factory=lambda: NO_SLOTS)  # decoding in steps 1.. (replaced, not written)
    busy_s: float | None = None  # time the run occupies the instance, when not ends_s[0] - start_s (pipelines)
    free_s: float | None = None  # when the instance may plan again, when before ends_s[-1] (streamed prompts)

    @property
    def seqs(self) -> int:
        """Sequences in step 0."""
        return len(self.decode_slots) + len(self.chunks)


def ceil_div(a: IntArray, b: int) -> IntArray:
    return (a + (b - 1)) // b  # integers: ceil(a / b), in two numpy calls


def _record_first_gaps(ledger: Ledger, last_s: FloatArray, end_s: float) -> None:
    """Inter-token gaps of the counted sequences whose step ends at end_s, since their last tokens at last_s.
    Most got their last token when the previous iteration ended: one weighted entry for those."""
    n = len(last_s)
    if not n:
        return
    latest = _max(last_s)
    if _min(last_s) == latest:
        ledger.itl_value_list.append(float(end_s - latest))
        ledger.itl_weight_list.append(n)
        return
    at_latest = int(np.count_nonzero(last_s == latest))
    others = last_s[last_s != latest]
    ledger.itl_values_s.append(np.concatenate([[end_s - latest], end_s - others]))
    ledger.itl_weights.append(np.concatenate([[at_latest], np.ones(len(others), np.int64)]))


class KvBlocks:
    """The free blocks of one KV cache: an instance's, one virtual engine's, or one shared by the virtual
    engines of a pipelined instance under one scheduler."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total


class Tally:
    """Sums over the virtual engines sharing one scheduler (or over one instance) of their counters (sequences
    running, decoding, prompt tokens still to compute and prompt blocks still to take), kept as they change."""

    __slots__ = ("decoding", "prefill_left", "prefill_need", "used")

    def __init__(self) -> None:
        self.used = self.decoding = self.prefill_left = self.prefill_need = 0


class PhaseState:
    """Which phase the virtual engines of a temporal pipeline are in (planner.sim.temporal)."""

    def __init__(self) -> None:
        self.prefill = True  # prompt micro-batches; False: decode micro-batches


class WaitingQueue(collections.deque[int]):
    """A FCFS queue of request ids that keeps the sum of their prompt tokens (prompt + tokens generated before a
    preemption: what admission must compute), for schedulers that throttle by it."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger
        self.tokens = 0

    def _prompt(self, req: int) -> int:
        return int(self.ledger.input_len[req] + self.ledger.generated[req])

    def append(self, req: int) -> None:
        super().append(req)
        self.tokens += self._prompt(req)

    def popleft(self) -> int:
        req = super().popleft()
        self.tokens -= self._prompt(req)
        return req

    def extendleft(self, reqs: Iterable[int]) -> None:
        reqs = list(reqs)
        super().extendleft(reqs)
        self.tokens += sum(self._prompt(req) for req in reqs)


class Instance:
    """One engine instance (a replica), or one virtual engine of a pipelined instance sharing its `stages`:
    slots, waiting queue, KV blocks. A prefill instance hands each request off once its prompt is done
    (`handed`, for the event loop to move its KV to a decode instance)."""

    def __init__(
        self,
        index: int,
        config: SchedulerConfig,
        ledger: Ledger,
        timer: IterationTimer,
        role: Role = Role.serve,
        replica: int = 0,
        stages: StageClock | None = None,
        kv: KvBlocks | None = None,
        waiting: WaitingQueue | None = None,
    ) -> None:
        cap = config.max_batch_size
        self.index, self.config, self.ledger, self.timer = index, config, ledger, timer
        self.role, self.replica, self.stages = role, replica, stages
        self.kv = kv or KvBlocks(config.total_blocks)
        self.waiting = waiting if waiting is not None else WaitingQueue(ledger)
        self.siblings: list[Instance] = [self]  # the virtual engines sharing its queue (itself when none do)
        self.rows: SiblingRows | None = None  # their slot arrays as rows of one array each (join_siblings)
        self.keeps_kv = False  # a prefill worker whose decode worker shares its cache: hand-offs keep the blocks
        self.phase = PhaseState()  # shared by the siblings under the temporal scheduler
        self.tally = Tally()  # its counters summed over the siblings (shared by them)
        self.handed: list[int] = []
        self.slot_req = np.full(cap, -1, dtype=np.int64)
        self.ctx = np.zeros(cap, dtype=np.int64)  # decoding: KV tokens once the next decode step has run
        self.remaining = np.zeros(cap, dtype=np.int64)  # tokens still to generate
        self.prompt_left = np.zeros(cap, dtype=np.int64)  # prefilling: prompt tokens not yet computed
        self.computed = np.zeros(cap, dtype=np.int64)  # prefilling: prompt tokens in the KV cache
        self.blocks = np.zeros(cap, dtype=np.int64)  # KV blocks held
        self.order = np.zeros(cap, dtype=np.int64)  # admission counter: the largest is the newest
        self.last_token_s = np.zeros(cap)
        self.used = np.zeros(cap, dtype=bool)
        self.decoding = np.zeros(cap, dtype=bool)
        self.free_slots = list(range(cap - 1, -1, -1))
        self.num_used = 0
        self.num_decoding = 0  # slots with decoding set
        # over the partly prefilled prompts (used, not decoding): prompt tokens still to compute, and KV blocks
        # still to take for the whole prompt (its blocks less those held)
        self.prefill_left = 0
        self.prefill_need = 0
        self.admissions = 0
        self.run: Run | None = None
        self.version = 0
        self.wake_pending = False
        self.samples: list[tuple[float, int, int]] = []  # (time, waiting, running)
        self.decode_view: tuple[IntArray, IntArray, IntArray] | None = None  # decode_block_need's
        self.decoding_cache: IntArray | None = None  # decoding_slots(), until a slot starts or stops decoding
        self.common_last_s: float | None = None  # the last-token time all decoding slots share, when known

    @property
    def free_blocks(self) -> int:
        return self.kv.free

    @free_blocks.setter
    def free_blocks(self, blocks: int) -> None:
        self.kv.free = blocks

    # -- admission and release

    def admit(self, req: int, blocks: int) -> int:
        """Give the head of the queue a slot, `blocks` KV blocks, and its prompt (recomputed after a preemption:
        the prompt and the tokens generated so far)."""
        ledger = self.ledger
        slot = self.free_slots.pop()
        self.slot_req[slot] = req
        self.prompt_left[slot] = ledger.input_len[req] + ledger.generated[req]
        self.computed[slot] = 0
        self.remaining[slot] = ledger.output_len[req] - ledger.generated[req]
        self.blocks[slot] = blocks
        self.free_blocks -= blocks
        self.order[slot] = self.admissions
        self.admissions += 1
        self.used[slot] = True
        self.decoding[slot] = False  # (already: a free slot does not decode)
        self.num_used += 1
        left, need = int(self.prompt_left[slot]), self._prompt_need(slot)
        self.prefill_left += left
        self.prefill_need += need
        tally = self.tally
        tally.used += 1
        tally.prefill_left += left
        tally.prefill_need += need
        return slot

    def _prompt_need(self, slot: int) -> int:
        """KV blocks a partly prefilled prompt still needs for all of it."""
        whole = -(-int(self.computed[slot] + self.prompt_left[slot]) // self.config.block_size_tokens)
        return whole - int(self.blocks[slot])

    def grant_prompt_blocks(self, slot: int, blocks: int) -> None:
        """KV blocks for the next chunk of a partly prefilled prompt."""
        self.blocks[slot] += blocks
        self.free_blocks -= blocks
        self.prefill_need -= blocks
        self.tally.prefill_need -= blocks

    def admit_transferred(self, req: int, blocks: int) -> int:
        """A decode instance takes a request whose prompt KV (held in `blocks`) arrived from a prefill instance:
        it decodes from its first token on."""
        ledger = self.ledger
        slot = self.admit(req, blocks)
        ledger.kv_ready[req] = False
        left, need = int(self.prompt_left[slot]), self._prompt_need(slot)
        self.prefill_left -= left
        self.prefill_need -= need
        self.tally.prefill_left -= left
        self.tally.prefill_need -= need
        self.tally.decoding += 1
        self.computed[slot] = self.prompt_left[slot] - 1  # the prompt (and tokens generated before the first)
        self.prompt_left[slot] = 0
        self.ctx[slot] = self.computed[slot] + 1
        self._starts_decoding(float(ledger.last_token_s[req]))
        self.decoding[slot] = True
        self.decoding_cache = None
        self.num_decoding += 1
        self.last_token_s[slot] = ledger.last_token_s[req]
        return slot

    def move_to(self, other: Instance, slot: int) -> None:
        """Hand a running sequence, with its KV blocks, to another virtual engine sharing this KV cache (work
        stealing between the micro-batches of one pipelined instance)."""
        new = other.free_slots.pop()
        for name in ("slot_req", "ctx", "remaining", "prompt_left", "computed", "blocks", "order", "last_token_s"):
            getattr(other, name)[new] = getattr(self, name)[slot]
        decoding = bool(self.decoding[slot])
        if decoding:
            other._starts_decoding(float(self.last_token_s[slot]))
        other.used[new], other.decoding[new] = True, decoding
        other.decoding_cache = None
        other.num_used += 1
        other.num_decoding += decoding
        tally = other.tally
        tally.used += 1
        tally.decoding += decoding
        if not decoding:
            left, need = int(other.prompt_left[new]), other._prompt_need(new)
            other.prefill_left += left
            other.prefill_need += need
            tally.prefill_left += left
            tally.prefill_need += need
        moved = int(self.blocks[slot])
        self.release(slot)
        self.free_blocks -= moved  # the blocks go with it (one KV cache): release frees none

    def release(self, slot: int) -> None:
        tally = self.tally
        if not self.decoding[slot]:  # a partly prefilled prompt
            left, need = int(self.prompt_left[slot]), self._prompt_need(slot)
            self.prefill_left -= left
            self.prefill_need -= need
            tally.prefill_left -= left
            tally.prefill_need -= need
        self.free_blocks += int(self.blocks[slot])
        self.blocks[slot] = 0
        self.prompt_left[slot] = 0  # so that prompt_left sums over the slots to the prompt tokens still to compute
        self.used[slot] = False
        if self.decoding[slot]:
            self.decoding[slot] = False
            self.decoding_cache = None
            self.num_decoding -= 1
            tally.decoding -= 1
        self.slot_req[slot] = -1
        self.free_slots.append(slot)
        self.num_used -= 1
        tally.used -= 1

    def preempt_newest(self) -> int:
        """Evict the newest running request by recompute (vLLM): free its blocks; return it for re-queueing."""
        used = np.flatnonzero(self.used)
        slot = int(used[np.argmax(self.order[used])])
        req = int(self.slot_req[slot])
        self.ledger.preemptions[req] += 1
        if self.decoding[slot]:
            self.ledger.last_token_s[req] = self.last_token_s[slot]
        self.release(slot)
        return req

    def requeue_front(self, preempted: list[int]) -> None:
        """Preempted requests go back to the front of the queue, the oldest first (vLLM extendleft)."""
        self.waiting.extendleft(preempted)

    def _starts_decoding(self, last_s: float) -> None:
        """A slot is about to decode with its last token at last_s: common_last_s stays known while every
        decoding slot's last token came at one time."""
        if not self.num_decoding:
            self.common_last_s = last_s
        elif self.common_last_s != last_s:
            self.common_last_s = None

    def decoding_slots(self) -> IntArray:
        """The decoding slots, ascending (one array until the set changes: not to be written)."""
        slots = self.decoding_cache
        if slots is None:
            slots = self.decoding_cache = self.decoding.nonzero()[0] if self.num_decoding else NO_SLOTS
            slots.flags.writeable = False
        return slots

    def make_room_for_decodes(self, limit: int | None = None) -> IntArray:
        """The decoding slots whose next step runs (the oldest `limit` of them, else all), after preempting the
        newest running requests by recompute until that step's new KV blocks are free; the preempted go back to
        the front of the queue."""
        return self.room_for_decodes(limit)[0]

    def room_for_decodes(self, limit: int | None = None) -> tuple[IntArray, int]:
        """make_room_for_decodes, with the new KV blocks that step needs (decode_block_need)."""
        preempted = []
        while True:
            slots = self.decoding_slots()
            if limit is not None and len(slots) > limit:
                slots = slots[np.argsort(self.order[slots], kind="stable")][:limit]
            need = self.decode_block_need(slots)
            if need <= self.free_blocks:
                break
            preempted.append(self.preempt_newest())
        if preempted:
            self.requeue_front(preempted)
        return slots, need

    def decode_block_need(self, slots: IntArray) -> int:
        """New KV blocks the next decode step of `slots` needs (none when blocks were reserved at admission)."""
        if self.config.reserves_full_sequence or not len(slots):
            return 0
        ctx, held = self.ctx[slots], self.blocks[slots]
        # kept for reserve_decode_step and plan_decode_run of these very slots (the same array), planned next:
        # nothing changes the contexts or blocks of decoding sequences in between
        self.decode_view = (slots, ctx, held)
        return int(np.count_nonzero(ctx > held * self.config.block_size_tokens))  # ceil(ctx / block) > held

    def _decode_view(self, slots: IntArray) -> tuple[IntArray, IntArray, IntArray] | None:
        view = self.decode_view
        return view if view is not None and view[0] is slots else None

    def record(self, time_s: float) -> None:
        if len(self.siblings) == 1:
            self.samples.append((time_s, len(self.waiting), self.num_used))
        else:  # a shared queue: one record for the instance, on its first virtual engine
            self.siblings[0].samples.append((time_s, len(self.waiting), self.tally.used))

    # -- runs

    def kv_steps(self, ctx: IntArray, held: IntArray, free: int, steps: int) -> int:
        """Most decode steps (<= steps) of sequences at `ctx` holding `held` blocks whose new blocks fit `free`,
        ignoring blocks freed by sequences finishing within the run (0 when the first step does not fit). A
        step from ctx c holds ceil(c / block) blocks; over m steps a sequence needs at most ceil(m / block)
        new ones."""
        block = self.config.block_size_tokens
        if self.config.reserves_full_sequence or len(ctx) * -(-steps // block) <= free:
            return steps

        def need(m: int) -> int:
            return int((ceil_div(ctx + (m - 1), block) - held).sum())

        low, high = 0, steps
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if need(mid) <= free else (low, mid - 1)
        return low

    def decode_ends(
        self, start_s: float, ctx: IntArray, remaining: IntArray, held: IntArray, free: int, cut: bool
    ) -> FloatArray:
        """End times of decode steps from start_s of sequences at `ctx` with `remaining` tokens to go: until the
        first of them finishes when `cut` (the batch must be re-examined then), else until all finish; at most
        max_run_steps, and only as far as KV blocks last."""
        n = len(ctx)
        first = int(remaining.min())
        steps = min(first if cut else int(remaining.max()), self.config.max_run_steps)
        steps = self.kv_steps(ctx, held, free, steps)
        s = np.arange(steps)
        if steps <= first:
            seqs = np.full(steps, n)
            context = ctx.sum() + n * s
        else:  # sequences leave as they finish: at step s those with remaining > s decode
            order = np.argsort(remaining, kind="stable")
            prefix = np.concatenate([[0], np.cumsum(ctx[order])])
            done = np.searchsorted(remaining[order], s, side="right")
            seqs = n - done
            context = prefix[-1] - prefix[done] + s * seqs
        return start_s + np.cumsum(self.timer.decode(seqs, context.astype(float)))

    def reserve_decode_step(self, slots: IntArray, need: int | None = None) -> None:
        """Take now the new KV blocks the next decode step of `slots` needs (its commit would take them when the
        step ends, and another scheduler on a shared cache could hand them out in between); the commit then
        finds them held. `need`: decode_block_need(slots), when known (none needed: nothing to take)."""
        if need == 0 or self.config.reserves_full_sequence or not len(slots):
            return
        view = self._decode_view(slots)
        ctx, held = (view[1], view[2]) if view is not None else (self.ctx[slots], self.blocks[slots])
        want = ceil_div(ctx, self.config.block_size_tokens)
        grown = np.maximum(want, held)  # held + max(want - held, 0)
        self.kv.free -= int(_sum(grown - held))
        self.blocks[slots] = grown

    def plan_decode_run(self, start_s: float, slots: IntArray, cut: bool, need: int | None = None) -> Run:
        """Decode steps of `slots` (the scheduler has made room for the first, taking `need` new blocks)."""
        self.reserve_decode_step(slots, need)
        if self.config.single_step and len(slots) <= self.kv.free:
            # decode_ends of one step, in scalars: every sequence has a token to go and its blocks are held
            view = self._decode_view(slots)
            context = float(_sum(view[1] if view is not None else self.ctx[slots]))
            ends_s = np.array([start_s + self.timer.decode_one(len(slots), context)])
            return Run(start_s=start_s, ends_s=ends_s, phase=Phase.decode, decode_slots=slots, chunks=[])
        ends_s = self.decode_ends(
            start_s, self.ctx[slots], self.remaining[slots], self.blocks[slots], self.free_blocks, cut
        )
        return Run(start_s=start_s, ends_s=ends_s, phase=Phase.decode, decode_slots=slots, chunks=[])

    def prompt_run(
        self,
        start_s: float,
        chunks: list[tuple[int, int, int]],
        slots: IntArray,
        stalled: IntArray,
        then_decode: bool,
        cut: bool,
        need: int | None = None,
    ) -> Run:
        """One iteration of prompt chunks, with one decode step of `slots` (mixed batching), or alone while the
        `stalled` decodes wait (prefill-first). With `then_decode` (every chunk ends its prompt and nothing else
        waits) the next iterations are known to be decode steps of the running sequences and of those the
        chunks start, and the run carries them too. `need`: decode_block_need(slots), when known."""
        self.reserve_decode_step(slots, need)
        context = int(self.ctx[slots].sum()) if len(slots) else 0
        shape = prefill_shape([(c, s) for _, c, s in chunks], len(slots), context)
        end_s = start_s + self.timer.one(shape)
        phase = Phase.mixed if len(slots) else Phase.prefill
        run = Run(start_s=start_s, ends_s=np.array([end_s]), phase=phase, decode_slots=slots, chunks=chunks)
        if not then_decode or self.config.single_step or self.role is Role.prefill:
            return run
        stepped = 1 if len(slots) else 0  # a mixed iteration advances the running decodes by one step
        decoders = np.concatenate([slots, stalled])  # one of the two is empty
        started = np.array([slot for slot, _, _ in chunks], dtype=np.int64)
        later = np.concatenate([decoders, started])
        ctx = np.concatenate([self.ctx[decoders] + stepped, self.computed[started] + self.prompt_left[started] + 1])
        remaining = np.concatenate([self.remaining[decoders] - stepped, self.remaining[started] - 1])
        if self.config.reserves_full_sequence:
            held, free = self.blocks[later], self.free_blocks
        else:
            block = self.config.block_size_tokens
            held_before = self.blocks[decoders]
            held_decodes = np.maximum(held_before, ceil_div(self.ctx[decoders], block)) if stepped else held_before
            held = np.concatenate([held_decodes, self.blocks[started]])
            free = self.free_blocks - int((held_decodes - held_before).sum())
        going = remaining > 0
        if going.any() and (not cut or bool(going.all())):
            run.later_slots = later[going]
            run.ends_s = np.concatenate(
                [run.ends_s, self.decode_ends(end_s, ctx[going], remaining[going], held[going], free, cut)]
            )
        return run

    # -- commit

    def commit(self, run: Run, steps: int) -> list[int]:
        """Apply the first `steps` iterations of `run`; return the requests that finished."""
        ledger, ends = self.ledger, run.ends_s[:steps]
        self.decode_view = None  # contexts and blocks change: the next plan reads them afresh
        ledger.busy_s[run.phase] += float(ends[0]) - run.start_s if run.busy_s is None else run.busy_s
        if steps > 1:  # (one step adds 0.0)
            ledger.busy_s[Phase.decode] += float(ends[-1] - ends[0])
        if run.phase is Phase.reshard:
            return []
        ledger.iterations += steps
        finished: list[int] = []
        slots = run.decode_slots
        if not run.chunks:
            return self._commit_decodes(slots, ends, first_reserved=True)
        if len(slots):
            finished += self._commit_decodes(slots, ends[:1], first_reserved=True)
        for slot, _, tokens in run.chunks:
            if self._commit_chunk(slot, tokens, float(ends[0])):
                finished.append(int(self.slot_req[slot]))
                self._finish(slot, float(ends[0]))
        if steps > 1:
            finished += self._commit_decodes(run.later_slots, ends[1:])
        return finished

    def _commit_decodes(self, slots: IntArray, ends: FloatArray, first_reserved: bool = False) -> list[int]:
        """Decode steps of `slots` ending at `ends`; `first_reserved`: the first step's KV blocks were taken when
        it was planned (reserve_decode_step), as they are for the first step of a run."""
        ledger = self.ledger
        remaining = self.remaining[slots]
        if len(ends) == 1 and np.count_nonzero(remaining) == len(remaining):
            return self._commit_decode_step(slots, remaining, float(ends[0]), first_reserved)
        done = np.minimum(remaining, len(ends))  # steps each sequence took part in
        reqs = self.slot_req[slots]
        counted = ledger.counted[reqs]
        _record_first_gaps(ledger, self.last_token_s[slots][counted], float(ends[0]))
        if len(ends) > 1:  # later steps: every counted sequence still running gets one token after one step
            left = np.sort(remaining[counted])
            ledger.itl_values_s.append(np.diff(ends))
            ledger.itl_weights.append(len(left) - np.searchsorted(left, np.arange(1, len(ends)), side="right"))
        self.last_token_s[slots] = ends[done - 1]
        self.common_last_s = None
        self.remaining[slots] = remaining - done
        self.ctx[slots] += done
        ledger.generated[reqs] += done
        if not self.config.reserves_full_sequence:
            blocks = ceil_div(self.ctx[slots] - 1, self.config.block_size_tokens)
            self.free_blocks -= int((blocks - self.blocks[slots]).sum())
            self.blocks[slots] = blocks
        over = done == remaining
        finished = []
        if over.any():
            for slot, end_s in zip(slots[over].tolist(), ends[remaining[over] - 1].tolist(), strict=True):
                finished.append(int(self.slot_req[slot]))
                self._finish(slot, end_s)
        return finished

    def _commit_decode_step(self, slots: IntArray, remaining: IntArray, end_s: float, reserved: bool) -> list[int]:
        """_commit_decodes of one step ending at end_s (every decoding sequence has a token to go); `reserved`:
        its KV blocks were taken when it was planned."""
        ledger = self.ledger
        reqs = self.slot_req[slots]
        whole = len(slots) == self.num_decoding  # the step holds every decoding slot (they are a subset)
        common = self.common_last_s
        if whole and common is not None:  # _record_first_gaps when every last token came at `common`
            counted = len(slots) if not ledger.warmup_left else int(np.count_nonzero(ledger.counted[reqs]))
            if counted:
                ledger.itl_value_list.append(end_s - common)
                ledger.itl_weight_list.append(counted)
        else:
            last_s = self.last_token_s[slots]
            # every running request counts once the warm-up requests have all finished
            _record_first_gaps(ledger, last_s if not ledger.warmup_left else last_s[ledger.counted[reqs]], end_s)
        self.last_token_s[slots] = end_s
        self.common_last_s = end_s if whole else None
        self.remaining[slots] -= 1
        self.ctx[slots] += 1
        ledger.generated[reqs] += 1
        config = self.config
        if not (reserved or config.reserves_full_sequence):  # reserved: held since it was planned
            ctx = self.ctx[slots]
            blocks = (ctx + (config.block_size_tokens - 2)) // config.block_size_tokens  # ceil((ctx - 1) / block)
            self.kv.free -= int(_sum(blocks - self.blocks[slots]))
            self.blocks[slots] = blocks
        if np.minimum.reduce(remaining) > 1:
            return []
        finished = []
        for slot in slots[remaining == 1].tolist():
            finished.append(int(self.slot_req[slot]))
            self._finish(slot, end_s)
        return finished

    def _commit_chunk(self, slot: int, tokens: int, end_s: float) -> bool:
        """Prompt tokens computed; the last chunk yields a token. True when that token ends the request."""
        self.computed[slot] += tokens
        self.prompt_left[slot] -= tokens
        self.prefill_left -= tokens
        tally = self.tally
        tally.prefill_left -= tokens
        if self.prompt_left[slot]:
            return False
        need = self._prompt_need(slot)  # it decodes from now on
        self.prefill_need -= need
        tally.prefill_need -= need
        ledger, req = self.ledger, int(self.slot_req[slot])
        if ledger.generated[req] == 0:
            ledger.first_token_s[req] = end_s
        elif ledger.counted[req]:  # recomputed after a preemption: the gap since the token before it
            ledger.itl_value_list.append(float(end_s - ledger.last_token_s[req]))
            ledger.itl_weight_list.append(1)
        ledger.generated[req] += 1
        self.remaining[slot] -= 1
        self.ctx[slot] = self.computed[slot] + 1
        self._starts_decoding(end_s)
        self.decoding[slot] = True
        self.decoding_cache = None
        self.num_decoding += 1
        tally.decoding += 1
        self.last_token_s[slot] = end_s
        if self.role is Role.prefill and self.remaining[slot]:  # the KV leaves for a decode instance
            ledger.last_token_s[req] = end_s
            self.handed.append(req)
            if self.keeps_kv:  # it stays where it is, for the decode worker of the same cache
                ledger.kept_blocks[req] = self.blocks[slot]
                self.blocks[slot] = 0
            self.release(slot)
        return bool(self.remaining[slot] == 0)

    def _finish(self, slot: int, end_s: float) -> None:
        ledger, req = self.ledger, int(self.slot_req[slot])
        ledger.finish_s[req] = end_s
        ledger.last_token_s[req] = end_s
        if ledger.warmup_left and not ledger.counted[req]:
            ledger.warmup_left -= 1
        self.release(slot)


SLOT_ARRAYS = (
    "slot_req",
    "ctx",
    "remaining",
    "prompt_left",
    "computed",
    "blocks",
    "order",
    "last_token_s",
    "used",
    "decoding",
)


class SiblingRows:
    """The slot arrays of the virtual engines sharing one scheduler, stacked: row v is virtual engine v's array
    (the engine's own attribute is a view of it), so that a sum over all of them is one numpy call."""

    def __init__(self, engines: list[Instance]) -> None:
        stacked = {name: np.stack([getattr(engine, name) for engine in engines]) for name in SLOT_ARRAYS}
        self.used: NDArray[np.bool_] = stacked["used"]
        self.decoding: NDArray[np.bool_] = stacked["decoding"]
        self.ctx: IntArray = stacked["ctx"]
        self.remaining: IntArray = stacked["remaining"]
        self.prompt_left: IntArray = stacked["prompt_left"]
        self.computed: IntArray = stacked["computed"]
        self.blocks: IntArray = stacked["blocks"]
        self.flat = FlatRows(self)
        for v, engine in enumerate(engines):
            for name, array in stacked.items():
                setattr(engine, name, array[v])


class FlatRows:
    """The stacked slot arrays of SiblingRows flattened, as views (the rows are contiguous)."""

    def __init__(self, rows: SiblingRows) -> None:
        self.used = rows.used.reshape(-1)
        self.decoding = rows.decoding.reshape(-1)
        self.ctx = rows.ctx.reshape(-1)
        self.remaining = rows.remaining.reshape(-1)
        self.prompt_left = rows.prompt_left.reshape(-1)
        self.computed = rows.computed.reshape(-1)


def join_siblings(engines: list[Instance], phase: PhaseState) -> None:
    """Put the virtual engines of one pipelined instance under one scheduler: one queue (given at construction),
    one phase, and their slot arrays in rows of one array each."""
    rows = SiblingRows(engines)
    tally = Tally()
    for engine in engines:
        for name in Tally.__slots__:
            setattr(tally, name, getattr(tally, name) + getattr(engine.tally, name))
    for engine in engines:
        engine.siblings, engine.phase, engine.rows, engine.tally = engines, phase, rows, tally


def least_loaded(engines: list[Instance]) -> Instance:
    """The engine with the fewest requests waiting or running; ties to the lowest index."""
    return min(engines, key=lambda engine: (len(engine.waiting) + engine.num_used, engine.index))
