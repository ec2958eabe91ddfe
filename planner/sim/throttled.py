"""gLLM's token throttling (SC'25) on a pipelined instance: one scheduler, one KV cache and one queue for the
instance; each micro-batch holds the running decodes of one virtual engine and a throttled number of prompt
tokens (gLLM @ecab5d8 `gllm/pp_scheduler.py`; planner.strategies.throttled_pipeline has the analysis):

    UT = round(maxp x max(0, (free_ratio - kvthresh) / (1 - kvthresh)))     less as the KV cache fills
    WT = max(queued_prompt_tokens // iterp, minp)                            1/iterp of the prompt tokens not
                                                                             yet computed (queued or started)
    prompt tokens = min(WT, UT, block x (free_blocks - kvthresh x total_blocks))

Decodes are balanced over the micro-batches first (planner.sim.balance). The micro-batch is then formed as a
chunked iteration (planner.sim.chunked) with that many prompt tokens:
partial prompts of the virtual engine first, then new prompts from the shared queue. A prompt's chunks ride
in its virtual engine's micro-batches, one round apart (gLLM sends them in consecutive micro-batches, so the
simulated TTFT of a prompt longer than one chunk is high by up to pp - 1 stage steps per chunk).
"""

from __future__ import annotations

from planner.sim.balance import balance
from planner.sim.chunked import plan_chunked
from planner.sim.instance import Instance, Run


def prompt_tokens(instance: Instance, decodes: int) -> int:
    """The throttled prompt tokens of the micro-batch the instance forms now."""
    throttle, kv = instance.config.throttle, instance.kv
    assert throttle is not None
    free_ratio = kv.free / kv.total
    k = throttle.kv_threshold
    by_kv_use = round(throttle.max_prefill_tokens * max(0.0, (free_ratio - k) / (1 - k)))
    # The queue counts every prompt token not yet computed: waiting prompts and the rest of those started.
    started = instance.tally.prefill_left
    by_queue = max((instance.waiting.tokens + started) // throttle.iterp, throttle.min_prefill_tokens)
    by_free = instance.config.block_size_tokens * int(kv.free - k * kv.total)
    return max(0, min(by_kv_use, by_queue, by_free))


def plan_throttled(instance: Instance, start_s: float, cut_at_first_finish: bool) -> Run | None:
    """The micro-batch the virtual engine starts at start_s, or None when it has nothing to do."""
    balance(instance)
    return plan_chunked(instance, start_s, cut_at_first_finish, prompt_tokens)
