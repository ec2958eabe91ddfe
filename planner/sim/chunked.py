"""Mixed batching with a token budget, decodes first: vLLM V1's default scheduler, SGLang's chunked prefill,
Sarathi-Serve's stall-free batching, and TensorRT-LLM's in-flight batching.

Every iteration holds (in this order, until the token budget max_num_tokens is spent):
1. one token for every running decode; with a paged KV cache (chunked), a decode whose next token starts a block
   needs one, and while the free blocks do not cover them the newest running request is preempted by recompute;
2. the next chunk of each partially prefilled prompt, oldest first (as much as the budget and free blocks allow);
3. new prompts from the front of the queue while the sequence cap allows: their first chunk takes what is left
   of the budget. Paged (chunked): blocks for the chunk must be free (with one cache shared by several virtual
   engines, blocks for the whole prompt beside what the started prompts still need). GUARANTEED_NO_EVICT
   (inflight): blocks for the request's whole input + output must be free, and are reserved at admission.
With no prompt tokens to run, the iteration is a decode step, and the instance plans a run of them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from planner.sim.instance import Instance, Run


def plan_chunked(
    instance: Instance,
    start_s: float,
    cut_at_first_finish: bool,
    prompt_budget: Callable[[Instance, int], int] | None = None,
) -> Run | None:
    """The run the instance starts at start_s, or None when it has nothing to do. `prompt_budget(instance,
    decodes)` sets the prompt tokens of the iteration (default: the token budget less the decodes)."""
    config, ledger = instance.config, instance.ledger
    block = config.block_size_tokens
    while True:
        slots, need = instance.room_for_decodes()
        available = instance.free_blocks - need
        budget = config.max_num_tokens - len(slots) if prompt_budget is None else prompt_budget(instance, len(slots))
        chunks: list[tuple[int, int, int]] = []
        prefilling: list[int] = []
        if instance.prefill_left:
            started = np.flatnonzero(instance.used & ~instance.decoding)
            prefilling = started[np.argsort(instance.order[started])].tolist()
        for slot in prefilling:
            if budget <= 0:
                break
            cached = int(instance.computed[slot])
            tokens = min(int(instance.prompt_left[slot]), budget)
            if not config.reserves_full_sequence:
                tokens = min(tokens, int(instance.blocks[slot] + available) * block - cached)
                if tokens <= 0:
                    break
                extra = -(-(cached + tokens) // block) - int(instance.blocks[slot])
                instance.grant_prompt_blocks(slot, extra)
                available -= extra
            chunks.append((slot, cached, tokens))
            budget -= tokens
        waiting = instance.waiting
        # One cache for several virtual engines: a new prompt starts only when its whole prompt fits beside what
        # the prompts already started on any of them still need, so that started prompts can always finish.
        started_need = _started_prompt_blocks(instance) if config.shared else 0
        while waiting and budget > 0 and instance.num_used < config.max_batch_size:
            req = waiting[0]
            prompt = int(ledger.input_len[req] + ledger.generated[req])
            tokens = min(prompt, budget)
            if config.reserves_full_sequence:
                blocks = -(-int(ledger.input_len[req] + ledger.output_len[req]) // block)
            else:
                blocks = -(-tokens // block)
            if blocks > available:
                break
            if config.shared:
                whole = -(-prompt // block)
                if whole + started_need > available:
                    break
                started_need += whole - blocks
            waiting.popleft()
            chunks.append((instance.admit(req, blocks), 0, tokens))
            available -= blocks
            budget -= tokens
        if chunks:
            # Unless a prompt is left unfinished or a request still waits, the next iterations are decode steps.
            then_decode = not waiting and all(tokens == instance.prompt_left[slot] for slot, _, tokens in chunks)
            return instance.prompt_run(start_s, chunks, slots, slots[:0], then_decode, cut_at_first_finish, need)
        if len(slots):
            return instance.plan_decode_run(start_s, slots, cut_at_first_finish or bool(waiting), need)
        if not instance.num_used:
            return None
        # Only partial prefills hold the cache and none can grow: evict the newest so the others can.
        instance.requeue_front([instance.preempt_newest()])


def _started_prompt_blocks(instance: Instance) -> int:
    """KV blocks the partly prefilled prompts of the instance's virtual engines still need to finish."""
    return instance.tally.prefill_need
