"""EcoServe's macro instance (arXiv 2504.18154; planner.strategies.macro_instance): N unmodified prefill-first
instances under one scheduler, whose rotating pointer names the instance that takes new prompts (author code
`MacroInstance.schedule/_check_constraints`, with the paper's mean of the saved-TPOT credits where the code
keeps their maximum). For a prompt of L tokens, on the pointer's instance:

    need_time   = p(L) + p of the prompts queued there      p: the instance's prefill iteration time
    need_blocks = (L + 16) // 16 + the same for the queued prompts
    credit_r    = TTFT + tokens_r x TPOT - (now - arrival_r)  for each decoding request r (its saved TPOT)
    slack       = the mean credit (TTFT when nothing decodes)

- admit there when need_blocks <= free blocks and slack > need_time;
- else, when need_time <= TTFT, admit there anyway while the next instance (i + 1 mod N) cannot take over: it
  decodes something and even its largest credit is below TTFT (N - 1) / N;
- else rotate: the pointer moves to the next instance, which takes the prompt.
The other instances decode undisturbed meanwhile: temporal disaggregation with no KV transfer. TTFT and TPOT
are the latency targets of the plan, or the author launcher's defaults (5 s, 100 ms). Not simulated: the output
hold of the prefill-active instance (its tokens buffered until it hands over) and mitosis scaling.
"""

from __future__ import annotations

import numpy as np

from planner.sim.instance import Instance, least_loaded
from planner.sim.policy import Rotation
from planner.sim.timing import prefill_shape

BLOCK_TOKENS = 16  # EcoServe's block arithmetic


class Macro:
    """N instances (each its virtual engines: one, or pp under vLLM's pipeline engine) and the pointer to the one
    taking prompts."""

    def __init__(self, index: int, instances: list[list[Instance]], rotation: Rotation) -> None:
        self.index, self.instances, self.rotation = index, instances, rotation
        self.pointer = 0

    def target(self, req: int, now_s: float) -> Instance:
        """The virtual engine (the least loaded of the instance's) request `req` goes to at now_s; moves the
        pointer as EcoServe does."""
        size, ttft_s = len(self.instances), self.rotation.ttft_s
        current = self.instances[self.pointer]
        ledger = current[0].ledger
        queued = [int(ledger.input_len[r] + ledger.generated[r]) for engine in current for r in engine.waiting]
        prompt = int(ledger.input_len[req] + ledger.generated[req])
        need_time = sum(_prefill_s(current, length) for length in (*queued, prompt))
        need_blocks = sum((length + BLOCK_TOKENS) // BLOCK_TOKENS for length in (*queued, prompt))
        credits = self._credits(current, now_s)
        slack = float(credits.mean()) if len(credits) else ttft_s
        if need_blocks <= sum(engine.free_blocks for engine in current) and slack > need_time:
            return least_loaded(current)
        following = self.instances[(self.pointer + 1) % size]
        if need_time <= ttft_s:
            nxt = self._credits(following, now_s)
            if len(nxt) and float(nxt.max()) < ttft_s * (size - 1) / size:
                return least_loaded(current)
        self.pointer = (self.pointer + 1) % size
        return least_loaded(following)

    def _credits(self, engines: list[Instance], now_s: float) -> np.ndarray:
        """Saved TPOT credit of each request decoding on the instance (seconds)."""
        reqs = np.concatenate([engine.slot_req[engine.decoding] for engine in engines])
        ledger = engines[0].ledger
        credits: np.ndarray = (
            self.rotation.ttft_s + ledger.generated[reqs] * self.rotation.tpot_s - (now_s - ledger.arrival_s[reqs])
        )
        return credits


def _prefill_s(engines: list[Instance], length: int) -> float:
    """The instance's prefill of one prompt through all its stages (EcoServe reads it from a profile)."""
    timer = engines[0].timer
    stages = len(engines) if engines[0].stages is not None else 1
    return stages * timer.one(prefill_shape([(0, length)]))
