"""Seesaw's phase re-sharding (MLSys'25; planner.strategies.phase_resharding): one instance's GPUs alternate a
prefill layout (tp_p x pp_p) and a decode layout (tp_d x pp_d), switching layouts between long phases.

- Prefill phase (prefill layout): micro-batches of whole prompts, FCFS, up to the token budget each, admitted
  while the phase's requests' input + output tokens fit `fill_tokens` (kv_fill of the KV cache; the first
  request of a phase always). With pp_p stages the micro-batches stream: the next enters the first stage when
  the previous leaves it (one stage step), and its first tokens appear pp_p stage steps after it entered.
- Switch to the decode layout once the queue is empty or the fill target reached, after the last prompt has
  left the pipeline: the weights and the phase's KV move (`to_decode_s`, the strategy's Transition).
- Decode phase (decode layout): the oldest `decode_batch` running requests decode together, refilled as
  others finish, until all of the phase's requests are done; arrivals wait for the next prefill phase.
- Switch back (weights only, `to_prefill_s`) when requests wait; an idle instance stays in its layout.
A decode layout with pp_d stages runs each decode step as pp_d micro-batches of B / pp_d back to back
(planner.sim.timing.MicroBatchedTimer), as the strategy's model does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from planner.sim.instance import Instance, Phase, Run
from planner.sim.timing import IterationTimer
from planner.specs.deployment import Deployment


@dataclass(frozen=True)
class Resharding:
    """The prefill layout and the switches of one re-sharding instance (its pool's deployment is the decode
    layout)."""

    prefill: Deployment
    to_decode_s: Callable[[float], float]  # switch after a prefill phase whose KV holds this many tokens
    to_prefill_s: float  # switch back: weights only
    fill_tokens: float  # a prefill phase admits requests while their input + output tokens fit this
    decode_batch: int  # sequences decoding together


class ReshardingScheduler:
    """The layout and phase of one instance, and the planning of its next run."""

    def __init__(self, plan: Resharding, prefill_timer: IterationTimer, decode_timer: IterationTimer) -> None:
        self.plan, self.prefill_timer, self.decode_timer = plan, prefill_timer, decode_timer
        self.prefill_layout = True
        self.phase_tokens = 0.0  # input + output tokens of the requests the current prefill phase admitted

    def __call__(self, instance: Instance, start_s: float, cut_at_first_finish: bool) -> Run | None:
        if self.prefill_layout:
            run = self._prompts(instance, start_s)
            if run is None and not instance.num_used and instance.waiting:
                self.phase_tokens = 0.0  # the phase's requests all ended with their prompts: a new phase
                run = self._prompts(instance, start_s)
            if run is not None or not instance.num_used:
                return run
            drained_s = max(start_s, float(instance.last_token_s[instance.used].max()))
            kv_tokens = float(instance.ctx[instance.used].sum())
            self.prefill_layout = False
            return _switch(start_s, drained_s, self.plan.to_decode_s(kv_tokens))
        oldest = instance.make_room_for_decodes(self.plan.decode_batch)  # the preempted: next prefill phase
        if len(oldest):
            instance.timer = self.decode_timer
            return instance.plan_decode_run(start_s, oldest, True)
        if not instance.waiting:
            return None
        self.prefill_layout, self.phase_tokens = True, 0.0
        return _switch(start_s, start_s, self.plan.to_prefill_s)

    def _prompts(self, instance: Instance, start_s: float) -> Run | None:
        """The next prompt micro-batch of the prefill phase, or None when the phase is over."""
        config, ledger, waiting = instance.config, instance.ledger, instance.waiting
        chunks: list[tuple[int, int, int]] = []
        tokens = 0
        while waiting and instance.num_used < config.max_batch_size:
            req = waiting[0]
            prompt = int(ledger.input_len[req] + ledger.generated[req])
            footprint = float(prompt + ledger.output_len[req] - ledger.generated[req])
            if self.phase_tokens and self.phase_tokens + footprint > self.plan.fill_tokens:
                break
            if chunks and tokens + prompt > config.max_num_tokens:
                break
            blocks = -(-prompt // config.block_size_tokens)
            if blocks > instance.free_blocks:
                break
            waiting.popleft()
            chunks.append((instance.admit(req, blocks), 0, prompt))
            tokens += prompt
            self.phase_tokens += footprint
        if not chunks:
            return None
        instance.timer = self.prefill_timer
        run = instance.prompt_run(
            start_s, chunks, instance.decoding_slots()[:0], instance.decoding_slots(), False, True
        )
        stages = self.plan.prefill.pp_size
        if stages > 1:  # streamed: the next micro-batch enters after one stage step (planner.sim.pipeline)
            step_s = float(run.ends_s[0]) - start_s
            later_s = step_s - self.prefill_timer.overhead_s(run.seqs)  # no host-side work past the first stage
            run.ends_s = np.array([start_s + step_s + (stages - 1) * later_s])
            run.free_s, run.busy_s = start_s + step_s, step_s
        return run


def _switch(start_s: float, ready_s: float, duration_s: float) -> Run:
    """A layout switch from ready_s: no tokens, the instance busy re-sharding."""
    empty = np.zeros(0, dtype=np.int64)
    end_s = ready_s + duration_s
    return Run(start_s=start_s, ends_s=np.array([end_s]), phase=Phase.reshard, decode_slots=empty, chunks=[],
               busy_s=duration_s)  # fmt: skip
