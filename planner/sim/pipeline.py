"""Pipeline parallelism in the simulator: the stages of one instance as a flow shop of micro-batches.

An instance of pp stages runs pp virtual engines, as vLLM's pipeline-parallel engine does (one scheduler per
virtual engine, each with its own running sequences and 1/pp of the KV blocks; a request goes to the virtual
engine with the fewest unfinished requests). A virtual engine schedules its next micro-batch when its
previous one has left the last stage (its tokens are needed for the next step), so up to pp micro-batches are
in flight, one per virtual engine.

A micro-batch of prompts only under the temporal scheduler (TD-Pipe's prefill phase) depends on nothing in
flight, so its virtual engine schedules the next one as soon as it leaves the first stage: prompt micro-batches
stream back to back. A micro-batch that decodes a sequence is ready only once that sequence's last token has
left the pipeline.

Micro-batches enter the first stage in the order they are scheduled and keep that order through the stages
(a flow shop). Micro-batch j with host-side overhead h_j and stage step p_j (busiest stage + one send + h_j,
planner.cost.iteration.stage_step_times_s) occupies
    stage 1:       p_j                  (the host schedules it, then the first stage computes and sends)
    stages 2..pp:  p_j - h_j
so stage k finishes it at C[j][k] = max(C[j][k-1], C[j-1][k]) + occupancy: a micro-batch waits for the
stage to finish the one ahead of it. Alone, a micro-batch takes h + pp (stage + send): the whole-iteration
time of planner.cost.iteration.iteration_cost plus one send (the sampled tokens' return to the host).
"""

from __future__ import annotations


class StageClock:
    """When each stage of one pipelined instance is next free."""

    def __init__(self, stages: int) -> None:
        self.free_s = [0.0] * stages  # a list: read and written one stage at a time

    def pass_through(self, ready_s: float, first_stage_s: float, later_stage_s: float) -> tuple[float, float]:
        """Schedule a micro-batch ready at ready_s through every stage; return when it leaves the first stage
        and when it leaves the last one."""
        free = self.free_s
        first_s = time_s = max(ready_s, free[0]) + first_stage_s
        free[0] = time_s
        for stage in range(1, len(free)):
            busy_until_s = free[stage]
            if busy_until_s > time_s:  # max(time_s, busy_until_s), without the call (it runs per micro-batch)
                time_s = busy_until_s
            time_s += later_stage_s
            free[stage] = time_s
        return first_s, time_s
