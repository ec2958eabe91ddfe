"""vLLM V0's default scheduler: an iteration is either prompts only or one decode step of every running sequence.

At each iteration (vllm/core/scheduler.py `_schedule_default`, no chunked prefill):
1. Prompts first: admit waiting requests from the front while the sequence cap, the token budget
   (max_num_batched_tokens; the first prompt always fits, as vLLM requires the budget to cover the model's
   context) and the KV cache allow; admission must leave the watermark (1% of blocks) free. If any prompt is
   admitted, the iteration is those prompts alone, and every running decode waits.
2. Otherwise one decode step of all running sequences. A sequence whose next token starts a new block needs
   one; while the free blocks do not cover them, the newest running request is preempted by recompute.
"""

from __future__ import annotations

from planner.sim.instance import Instance, Run


def plan_prefill_first(instance: Instance, start_s: float, cut_at_first_finish: bool) -> Run | None:
    """The run the instance starts at start_s, or None when it has nothing to do."""
    config, ledger = instance.config, instance.ledger
    block = config.block_size_tokens
    while True:
        chunks: list[tuple[int, int, int]] = []
        tokens = 0
        waiting = instance.waiting
        while waiting and instance.num_used < config.max_batch_size:
            req = waiting[0]
            if ledger.kv_ready[req]:  # a decode instance admits transferred KV, not a prompt (decode_pool.py)
                break
            prompt = int(ledger.input_len[req] + ledger.generated[req])
            if chunks and tokens + prompt > config.max_num_tokens:
                break
            blocks = -(-prompt // block)
            if instance.free_blocks - blocks < config.watermark_blocks:
                break
            waiting.popleft()
            slot = instance.admit(req, blocks)
            chunks.append((slot, 0, prompt))
            tokens += prompt
        slots = instance.decoding_slots()
        if chunks:
            then_decode = not waiting  # the next iteration is a decode step unless a request arrives
            return instance.prompt_run(start_s, chunks, slots[:0], slots, then_decode, cut_at_first_finish)
        if not len(slots):
            return None
        slots = instance.make_room_for_decodes()
        if len(slots):
            return instance.plan_decode_run(start_s, slots, cut_at_first_finish or bool(instance.waiting))
