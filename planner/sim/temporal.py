"""TD-Pipe's temporal pipeline (ICPP'25) on a pipelined instance: one scheduler, one KV cache and one queue for
the instance, alternating whole phases (TD-Pipe code `TD_Pipe/core/scheduler.py`; the analysis is in
planner.strategies.temporal_pipeline):

- prefill phase: every micro-batch is prompts only, packed FCFS from the shared queue until (prompts x longest
  prompt) reaches `prefill_tokens` (TD-Pipe's peak_batch_size); running decodes wait. A prompt is admitted
  while the predicted KV footprint stays within `kv_fill` of the cache: at each horizon m of `horizons`
  (decode steps ahead) the running requests with at least m tokens to go hold their context + m tokens, and
  the new prompt I + 1 + m when its output lasts that long (TD-Pipe's usage[m]; the simulator knows each
  request's output length, where TD-Pipe predicts it). The phase ends when a prompt does not fit the
  prediction, or the queue is empty.
- decode phase: each micro-batch is one decode step of a virtual engine's running requests. It ends, and the
  next prefill phase begins, once prompts are queued and the running batch has drained to `switch_batch`
  (the strategy's switch point b*, from its phase-cycle analysis; TD-Pipe re-evaluates its intensity test
  live), or nothing runs.
Decode micro-batches are balanced by work stealing (planner.sim.balance), as TD-Pipe's are.
"""

from __future__ import annotations

import numpy as np

from planner.sim.balance import balance
from planner.sim.instance import Instance, Run


def _footprint_tokens(instance: Instance, horizons: np.ndarray) -> np.ndarray:
    """Predicted KV tokens at each horizon (ascending) of every request running on the instance's virtual
    engines."""
    rows = instance.rows
    if rows is not None:  # every virtual engine at once (integer sums: the same as one engine at a time)
        # at horizon m, the requests with left >= m: the sum of their contexts + m x their number
        flat = rows.flat  # the arrays flattened (views: rows are contiguous)
        running = flat.used.nonzero()[0]
        ctx, computed = flat.ctx[running], flat.computed[running]
        prompting = ~flat.decoding[running]
        context = np.where(prompting, computed + flat.prompt_left[running], ctx)
        left = flat.remaining[running]
        # reaches[i]: how many horizons request i reaches (left >= m); a horizon j counts those reaching beyond it.
        # The context sums are of integers, exact in floats.
        reaches = np.searchsorted(horizons, left, side="right")
        count = np.bincount(reaches, minlength=len(horizons) + 1)[::-1].cumsum()[::-1]
        tokens = np.bincount(reaches, weights=context, minlength=len(horizons) + 1)[::-1].cumsum()[::-1]
        return np.asarray(tokens[1:] + horizons * count[1:])  # (a float sum: 0.0 + it is itself)
    total = np.zeros(len(horizons))
    for engine in instance.siblings:
        used = np.flatnonzero(engine.used)
        if not len(used):
            continue
        ctx = np.where(engine.decoding[used], engine.ctx[used], engine.computed[used] + engine.prompt_left[used])
        left = engine.remaining[used]
        total += ((left[None, :] >= horizons[:, None]) * (ctx[None, :] + horizons[:, None])).sum(axis=1)
    return total


_HORIZONS: dict[tuple[int, ...], np.ndarray] = {}


def _ascending(horizons: tuple[int, ...]) -> np.ndarray:
    """The distinct horizons, ascending (one array per set of them, not to be written)."""
    found = _HORIZONS.get(horizons)
    if found is None:
        found = _HORIZONS[horizons] = np.unique(np.asarray(horizons, dtype=np.int64))
        found.flags.writeable = False
    return found


def _running(instance: Instance) -> int:
    return instance.tally.used


def plan_temporal(instance: Instance, start_s: float, cut_at_first_finish: bool) -> Run | None:
    """The micro-batch the virtual engine starts at start_s, or None when it has nothing to do."""
    config, waiting, state = instance.config, instance.waiting, instance.phase
    phases = config.phases
    assert phases is not None
    if not state.prefill and waiting and _running(instance) <= phases.switch_batch:
        state.prefill = True
    if state.prefill and instance.num_used < config.max_batch_size:  # (a full virtual engine decodes meanwhile)
        run = _prompt_micro_batch(instance, start_s)
        if run is not None:
            return run
        if _running(instance):
            state.prefill = False  # the fill target is reached or the queue is empty
    balance(instance)
    slots, need = instance.room_for_decodes()
    if not len(slots):
        state.prefill = state.prefill or not _running(instance)  # only preempted requests are left: prompts
        return None
    return instance.plan_decode_run(start_s, slots, cut_at_first_finish, need)


def _prompt_micro_batch(instance: Instance, start_s: float) -> Run | None:
    """Prompts packed FCFS while the predicted footprint and the blocks allow."""
    config, ledger, waiting = instance.config, instance.ledger, instance.waiting
    phases = config.phases
    assert phases is not None
    horizons = _ascending(tuple(phases.horizons))  # ascending: only the largest over them counts
    limit = phases.kv_fill * config.kv_capacity_tokens
    footprint = _footprint_tokens(instance, horizons) if waiting else np.zeros(0)
    chunks: list[tuple[int, int, int]] = []
    longest = 0
    block = config.block_size_tokens
    while waiting and instance.num_used < config.max_batch_size:
        req = waiting[0]
        prompt = int(ledger.input_len[req] + ledger.generated[req])
        if chunks and (len(chunks) + 1) * max(longest, prompt) > phases.prefill_tokens:
            break
        left = int(ledger.output_len[req] - ledger.generated[req]) - 1  # decode steps after its first token
        fresh = (left >= horizons) * (prompt + 1 + horizons)
        blocks = -(-prompt // block)
        if (footprint + fresh).max() > limit and (chunks or _running(instance)):
            break  # the phase is full (a request alone on an idle instance always runs)
        if blocks > instance.free_blocks:
            break
        footprint = footprint + fresh
        waiting.popleft()
        chunks.append((instance.admit(req, blocks), 0, prompt))
        longest = max(longest, prompt)
    if not chunks:
        return None
    slots = instance.decoding_slots()
    return instance.prompt_run(start_s, chunks, slots[:0], slots, False, True)
