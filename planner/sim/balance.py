"""Work stealing between the virtual engines of a pipelined instance under one scheduler (gLLM balances the
decodes of its micro-batches, TD-Pipe steals work between them): before a virtual engine forms its next
micro-batch, the decoding sequences it holds beyond an even share, ceil(decoding on all of them / pp), move to
the virtual engines holding the fewest. The KV cache is shared, so a move costs nothing; a sequence moves only
from the virtual engine now scheduling, whose previous micro-batch has left the pipeline (none of its
sequences is in flight), into free slots of the others (no micro-batch in flight holds those).
"""

from __future__ import annotations

import numpy as np

from planner.sim.instance import Instance


def balance(instance: Instance) -> None:
    siblings = instance.siblings
    if len(siblings) == 1:
        return
    share = -(-instance.tally.decoding // len(siblings))  # the sum of num_decoding over the siblings
    excess = instance.num_decoding - share
    if excess <= 0:
        return
    decoding = [engine.num_decoding for engine in siblings]
    own = siblings.index(instance)
    counts = np.array(decoding, dtype=np.int64)
    slots = instance.decoding_slots()
    movable = slots[np.argsort(instance.order[slots])][::-1][:excess]  # the newest first
    for slot in movable.tolist():
        counts[own] = np.iinfo(np.int64).max  # never back to itself
        target = int(np.argmin(counts))
        receiver = siblings[target]
        if counts[target] >= share or receiver.num_used >= receiver.config.max_batch_size:
            break
        instance.move_to(receiver, slot)
        counts[target] += 1
