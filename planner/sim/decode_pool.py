"""The decode instance of a disaggregated deployment (DistServe's decode instance, Splitwise's token machine).

Requests arrive with their prompt's KV (transferred from a prefill instance) and queue FIFO. At each
iteration the instance first admits transferred requests from the front of the queue while the sequence cap
and the KV blocks allow (their prompt's blocks, leaving the watermark free, as prefill-first admission does;
an SM partition's decode worker finds them already held in the cache it shares with its prefill worker); no
prompt is computed for them. Then it runs the prefill-first scheduler (planner.sim.prefill_first): a
request it preempted by recompute lost its KV and is prefilled again here, otherwise one decode step of every
running sequence.
"""

from __future__ import annotations

from planner.sim.instance import Instance, Run
from planner.sim.prefill_first import plan_prefill_first


def plan_decode_pool(instance: Instance, start_s: float, cut_at_first_finish: bool) -> Run | None:
    """The run the decode instance starts at start_s, or None when it has nothing to do."""
    config, ledger, waiting = instance.config, instance.ledger, instance.waiting
    while waiting and ledger.kv_ready[waiting[0]] and instance.num_used < config.max_batch_size:
        req = waiting[0]
        kept = int(ledger.kept_blocks[req])
        if kept:  # its KV is in this very cache (SM partition): its blocks are already taken
            instance.free_blocks += kept
            ledger.kept_blocks[req] = 0
            blocks = kept
        else:
            blocks = -(-int(ledger.input_len[req] + ledger.generated[req] - 1) // config.block_size_tokens)
            if instance.free_blocks - blocks < config.watermark_blocks:
                break
        waiting.popleft()
        instance.admit_transferred(req, blocks)
    return plan_prefill_first(instance, start_s, cut_at_first_finish)
