"""Which scheduler a simulated instance runs, with which knobs, and how much KV cache it has.

Three schedulers, one per engine family:

- `prefill-first` (vLLM V0 default): an iteration is either prompts only (as many waiting prompts, oldest
  first, as fit the token budget, the sequence cap and the KV cache less a 1% watermark) or one decode step of
  every running sequence. KV blocks are allocated as tokens are generated; when a decode step finds no free
  block the newest running request is preempted by recompute (its blocks freed, re-queued at the front, its
  prompt and generated tokens prefilled again on readmission).
- `chunked` (vLLM V1 default, SGLang, Sarathi-Serve): decodes first; every iteration holds all running decodes,
  then chunks of partially prefilled prompts (oldest first), then new prompts, filling the rest of the token
  budget. Same paged KV cache and preemption by recompute, no watermark.
- `inflight` (TensorRT-LLM in-flight batching): the chunked iteration, with GUARANTEED_NO_EVICT admission: a
  request is admitted only when KV for its full input + output is free, reserved at admission; never preempted.

Two pipeline schedulers run one scheduler over a pipelined instance's micro-batches, with one KV cache and one
queue for the instance (each micro-batch still holds the sequences of one virtual engine):
- `throttled` (gLLM's token throttling): the chunked iteration, its prompt tokens per micro-batch set by the
  throttle (planner.sim.throttled);
- `temporal` (TD-Pipe): whole phases of prompt micro-batches and of decode micro-batches (planner.sim.temporal).

`auto` picks from the engine profile: prefill-first without mixed batching; with it, inflight when the engine
reserves a request's full sequence (TensorRT-LLM), chunked otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from pydantic import Field

from planner.cost.memory import memory_breakdown
from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.specs.hardware import Frozen


class Scheduler(str, Enum):
    auto = "auto"
    prefill_first = "prefill-first"
    chunked = "chunked"
    inflight = "inflight"
    throttled = "throttled"
    temporal = "temporal"
    resharding = "phase re-sharding"


class Throttle(Frozen):
    """gLLM's prompt-token throttle per micro-batch (planner.strategies.throttled_pipeline)."""

    max_prefill_tokens: int = Field(ge=1)  # maxp
    min_prefill_tokens: int = Field(ge=1)  # minp
    iterp: int = Field(ge=1)  # a micro-batch admits 1/iterp of the queued prompt tokens
    kv_threshold: float = Field(ge=0, lt=1)  # share of KV kept free


class Rotation(Frozen):
    """EcoServe's macro instances: `size` instances per macro, prompts routed by its rotating pointer against
    these latency targets (planner.sim.macro)."""

    size: int = Field(ge=2)
    ttft_s: float = Field(gt=0)
    tpot_s: float = Field(gt=0)


class Phases(Frozen):
    """TD-Pipe's phase switching (planner.strategies.temporal_pipeline)."""

    prefill_tokens: int = Field(ge=1)  # a prompt micro-batch packs prompts until count x longest reaches this
    kv_fill: float = Field(gt=0, le=1)  # the prefill phase stops where the predicted KV footprint reaches this
    switch_batch: float = Field(ge=0)  # the decode phase stops once the running batch has drained to this
    horizons: tuple[int, ...] = Field(min_length=1)  # decode steps ahead at which the footprint is predicted


class Role(str, Enum):
    """What an instance does: everything (colocated), or one phase of a disaggregated deployment."""

    serve = "serve"
    prefill = "prefill"  # prompts only; each request's KV then moves to a decode instance
    decode = "decode"  # decode steps of requests whose KV arrived (and recomputes of those it preempted)


class Routing(str, Enum):
    """How arrivals are spread over data-parallel replicas."""

    round_robin = "round-robin"  # request i goes to replica i mod N, in arrival order
    least_loaded = "least-loaded"  # fewest requests waiting or running; ties to the lowest index


class Policy(Frozen):
    """The scheduler and its knobs; None takes the engine profile's default (or the memory model's capacity)."""

    scheduler: Scheduler = Scheduler.auto
    max_num_tokens: int | None = Field(default=None, ge=1)  # token budget of one iteration
    max_batch_size: int | None = Field(default=None, ge=1)  # sequences running at once
    kv_capacity_tokens: int | None = Field(default=None, ge=1)  # KV cache of one instance, in tokens
    block_size_tokens: int = Field(default=16, ge=1)  # paged KV block (vLLM and TensorRT-LLM default 16)
    watermark_fraction: float = Field(default=0.01, ge=0, lt=1)  # prefill-first: KV kept free at admission
    max_run_steps: int = Field(default=512, ge=1)  # decode steps evaluated together (speed only, not results)
    throttle: Throttle | None = None  # scheduler throttled
    phases: Phases | None = None  # scheduler temporal
    rotation: Rotation | None = None  # macro instances (routing, with any scheduler)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """A policy resolved against one deployment: what the event loop runs."""

    scheduler: Scheduler
    max_num_tokens: int
    max_batch_size: int
    kv_capacity_tokens: int
    block_size_tokens: int
    total_blocks: int
    watermark_blocks: int  # prefill-first only: free blocks admission must leave
    max_run_steps: int
    shared: bool  # one KV cache and one queue for all the virtual engines of an instance
    throttle: Throttle | None
    phases: Phases | None

    @property
    def single_step(self) -> bool:
        """Runs of one iteration (pipelined virtual engines interleave on the stages iteration by iteration)."""
        return self.max_run_steps == 1

    @property
    def reserves_full_sequence(self) -> bool:
        return self.scheduler is Scheduler.inflight

    @property
    def preempts(self) -> bool:
        return self.scheduler is not Scheduler.inflight


def resolve_scheduler(deployment: Deployment, policy: Policy, role: Role = Role.serve) -> SchedulerConfig:
    """The scheduler, budget, sequence cap and KV blocks of one virtual engine under `policy`: the whole
    instance when pp = 1; with pp stages, one of pp virtual engines, each with 1/pp of the KV blocks (vLLM's
    pipeline-parallel engine divides num_gpu_blocks by pp, one scheduler per virtual engine; the throttled
    and temporal schedulers share the instance's blocks instead) and runs of one iteration
    (planner.sim.pipeline). A prefill or decode pool of a disaggregated deployment runs the
    prefill-first scheduler: prompts alone (prefill pool; decode pool: recomputes of preempted requests) or
    decode steps alone."""
    engine = deployment.engine
    scheduler = Scheduler.prefill_first if role is not Role.serve else policy.scheduler
    shared = scheduler in (Scheduler.throttled, Scheduler.temporal)
    if scheduler is Scheduler.throttled and policy.throttle is None:
        raise PlannerError("the throttled scheduler needs its throttle (Policy.throttle)", "policy")
    if scheduler is Scheduler.temporal and policy.phases is None:
        raise PlannerError("the temporal scheduler needs its phases (Policy.phases)", "policy")
    if scheduler is Scheduler.auto:
        if not engine.mixed_batching:
            scheduler = Scheduler.prefill_first
        else:
            scheduler = Scheduler.inflight if engine.reserves_full_sequence else Scheduler.chunked
    pp = deployment.pp_size
    # Virtual engines with a share of the KV each: pipelines under vLLM's engine (a re-sharding instance runs
    # its layouts whole, planner.sim.resharding)
    engines = 1 if shared or scheduler is Scheduler.resharding else pp
    kv_tokens = (policy.kv_capacity_tokens or memory_breakdown(deployment).kv_capacity_tokens) // engines
    blocks = kv_tokens // policy.block_size_tokens
    if blocks < 1:
        raise PlannerError(f"a KV cache of {kv_tokens} tokens holds no block of {policy.block_size_tokens} tokens")
    watermark = math.floor(policy.watermark_fraction * blocks) if scheduler is Scheduler.prefill_first else 0
    return SchedulerConfig(
        scheduler=scheduler,
        max_num_tokens=policy.max_num_tokens or engine.max_num_tokens,
        max_batch_size=policy.max_batch_size or engine.max_batch_size,
        kv_capacity_tokens=kv_tokens,
        block_size_tokens=policy.block_size_tokens,
        total_blocks=blocks,
        watermark_blocks=watermark,
        max_run_steps=policy.max_run_steps if engines == 1 and not shared else 1,
        shared=shared,
        throttle=policy.throttle,
        phases=policy.phases,
    )
