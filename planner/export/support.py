"""Which strategies stock engines run, and what the others become.

A stock engine runs `colocated` (continuous batching), `chunked` (chunked prefill under a token budget) and
`disaggregated` (prefill and decode instances with KV transfer). The other strategies need the scheduler of the
research system that introduced them; `Unsupported` says so and describes the closest stock setting, which
the exporter emits only when asked (`fallback=True`), labelled with what it loses.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.errors import PlannerError
from planner.search.plan import PlannedInstance

STOCK = ("colocated", "chunked", "disaggregated")


@dataclass(frozen=True)
class Scheduling:
    """How one engine process schedules: prompts first (`colocated`) or chunked under a token budget."""

    kind: str  # colocated | chunked
    max_batch: int | None  # sequences in flight (None: the engine's default)
    chunk_size_tokens: int | None  # token budget per iteration (None: the engine's default)


@dataclass(frozen=True)
class Unsupported:
    """A strategy no stock engine flag implements."""

    strategy: str
    needs: str  # what the scheduler has to do
    fallback: str  # the closest stock setting
    loses: str  # what the fallback gives up


UNSUPPORTED: dict[str, Unsupported] = {
    u.strategy: u
    for u in (
        Unsupported(
            "temporal-pipeline",
            "a pipeline that alternates whole prefill and decode phases, switched by an intensity test",
            "the same TP x PP with the engine's own pipeline scheduling, prompts first",
            "the phase switching: prompt and decode micro-batches mix, so the pipeline bubbles TD-Pipe removes "
            "come back and throughput falls below the plan",
        ),
        Unsupported(
            "throttled-pipeline",
            "per-micro-batch prefill and decode token budgets that keep pipeline micro-batches balanced",
            "the same TP x PP with chunked prefill, the chunk at the plan's max_prefill_tokens",
            "the throttling (min_prefill_tokens, iterp, kv_threshold): a fixed chunk budget leaves micro-batches "
            "unbalanced, so pipeline bubbles and TTFT differ from the plan",
        ),
        Unsupported(
            "macro-instance",
            "instances of a macro instance taking new prompts in turn (rolling activation) while the others decode",
            "each member as an independent colocated instance behind a load balancer",
            "the rolling activation: every instance takes prompts at any time, so prompts stall its decodes and "
            "TPOT rises above the plan",
        ),
        Unsupported(
            "sm-partition",
            "a prefill worker and a decode worker splitting each GPU's SMs (MPS) over one copy of weights and KV",
            "the same TP with chunked prefill at the engine's default token budget",
            "the SM split: prompt chunks and decodes share every iteration, so TTFT and TPOT trade off as chunked "
            "prefill does, not as the plan's partition does",
        ),
        Unsupported(
            "phase-resharding",
            "long prefill and decode phases on the same GPUs, re-sharding weights and KV between the prefill "
            "layout and the decode layout",
            "the decode layout (TP x PP of the plan) for both phases, prompts first",
            "the prefill layout and the batched phases: prompts run at the decode layout and interleave with "
            "decodes, so throughput falls below the plan",
        ),
    )
}


def research_system(strategy: str) -> str:
    """The system that implements a strategy, as the strategy registry cites it."""
    from planner.strategies import REGISTRY

    cls = REGISTRY.get(strategy)
    return cls.reference if cls is not None else "none known"


def _count(value: float | None) -> int | None:
    return None if value is None else round(value)


def stock_scheduling(inst: PlannedInstance) -> Scheduling:
    """The scheduling of a stock strategy's instance, from its knobs."""
    if inst.strategy == "chunked":
        return Scheduling("chunked", _count(inst.knobs.get("max_batch")), _count(inst.knobs.get("chunk_size")))
    if inst.strategy in ("colocated", "disaggregated"):
        return Scheduling("colocated", _count(inst.knobs.get("max_batch")), None)
    raise PlannerError(f"{inst.strategy} is not run by a stock engine: see support.UNSUPPORTED", "plan")


def fallback_scheduling(inst: PlannedInstance) -> Scheduling:
    """The closest stock scheduling of an unsupported strategy's instance (see `Unsupported.fallback`)."""
    max_batch = _count(inst.knobs.get("max_batch"))
    if inst.strategy == "throttled-pipeline":
        return Scheduling("chunked", max_batch, _count(inst.knobs.get("max_prefill_tokens")))
    if inst.strategy == "sm-partition":
        return Scheduling("chunked", max_batch, None)
    return Scheduling("colocated", max_batch, None)


def members(inst: PlannedInstance) -> int:
    """Engine processes one planned instance runs as: a macro instance's members, else 1."""
    return (inst.gpus // inst.count) // (inst.tp * inst.pp)
