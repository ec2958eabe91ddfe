"""How each registered strategy runs in the simulator: its pools of instances, their schedulers, and the KV
transfer between pools.

- `colocated`: the prefill-first scheduler on every engine (the strategy's model), `max_batch` as the sequence
  cap; with PP > 1, pp virtual engines per instance (planner.sim.pipeline). With no strategy named, the engine
  profile's own scheduler (prefill-first, chunked or in-flight).
- `chunked`: the chunked scheduler with `chunk_size` as the token budget.
- `throttled-pipeline`: the throttled scheduler (planner.sim.throttled) with the strategy's knobs, on the
  strategy's deployment (its micro-batch buffers: max_prefill_tokens plus gLLM's maxd decodes).
- `temporal-pipeline`: the temporal scheduler (planner.sim.temporal) with the strategy's prefill_tokens and
  kv_fill, switching back to prompts at the switch point b* of the strategy's offline phase cycle.
- `macro-instance`: macros of `macro_size` prefill-first instances, prompts routed by EcoServe's rotating
  pointer against the latency targets given (planner.sim.macro); a layout's count is of macros, as the
  planner counts them.
- `disaggregated`: a prefill pool and a decode pool, built as the strategy builds them
  (Disaggregated.pools: engine profiles, the decode instance's sequence cap, the KV link of the placement),
  joined by that link: one transfer at a time per prefill instance over the lanes it uses.
- `sm-partition`: per instance a prefill worker on `prefill_sm_share` of the SMs and a decode worker on the
  rest, paired in one KV cache (planner.sim.simulate, KvTransfer.paired), priced as the strategy prices them
  (SmPartition.workers: SM shares, the bandwidth each leaves the other at the offline operating point); the
  decode step is the contended one while the prefill worker runs.
- `phase-resharding`: the re-sharding scheduler (planner.sim.resharding) with the strategy's two layouts (the
  prefill layout from the plan's detail), its switch times (Transition) and its kv_fill and max_batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from planner.errors import PlannerError
from planner.sim.policy import Phases, Policy, Role, Rotation, Scheduler, Throttle
from planner.sim.resharding import Resharding
from planner.sim.result import Slo
from planner.sim.simulate import PAIRED, KvTransfer, SimPool

if TYPE_CHECKING:
    from planner.strategies.base import Candidate, Context, Strategy

ECOSERVE_TTFT_S, ECOSERVE_TPOT_S = 5.0, 0.1  # EcoServe launcher defaults (start.sh), when no SLO is given
# strategies whose schedulers the simulator runs
SIMULATED_STRATEGIES = (
    "colocated",
    "chunked",
    "throttled-pipeline",
    "temporal-pipeline",
    "macro-instance",
    "sm-partition",
    "phase-resharding",
    "disaggregated",
)


@dataclass(frozen=True)
class PoolLayout:
    """`count` instances of TP x PP in one role (serve, prefill or decode)."""

    role: Role
    tp: int
    pp: int
    count: int


def policy_for(strategy: str | None, knobs: Mapping[str, float] | None) -> Policy:
    """The scheduler a single-pool strategy runs in the simulator."""
    knobs = dict(knobs or {})
    batch = int(knobs["max_batch"]) if "max_batch" in knobs else None
    if strategy is None:  # no strategy named: the engine's own scheduler (Scheduler.auto)
        return Policy(max_batch_size=batch)
    if strategy == "colocated":  # prompts first, whatever the engine, as the strategy models it
        return Policy(scheduler=Scheduler.prefill_first, max_batch_size=batch)
    if strategy == "chunked":
        budget = int(knobs.get("chunk_size", 512))
        return Policy(scheduler=Scheduler.chunked, max_num_tokens=budget, max_batch_size=batch)
    raise PlannerError(f"strategy {strategy} runs a scheduler of its own (sim_pools), not an engine policy")


def sim_pools(
    ctx: Context,
    strategy: str | None,
    knobs: Mapping[str, float] | None,
    layouts: Sequence[PoolLayout],
    detail: Mapping[str, Any] | None = None,
    slo: Slo | None = None,
) -> tuple[list[SimPool], KvTransfer | None]:
    """The pools (and KV transfer) that run `strategy` (None: the engine's own scheduler, one serving pool)
    with these instance counts on `ctx`'s cluster; `detail`
    is the plan's for the instance type (a disaggregated placement, a re-sharding prefill layout)."""
    detail = detail or {}
    roles = [layout.role for layout in layouts]
    if strategy != "disaggregated":
        if roles != [Role.serve]:
            raise PlannerError(f"{strategy} runs one pool of serving instances, got {[r.value for r in roles]}")
        (serve,) = layouts
        if strategy in ("throttled-pipeline", "temporal-pipeline"):
            return [_pipeline_pool(ctx, strategy, knobs, serve)], None
        if strategy == "macro-instance":
            return [_macro_pool(ctx, knobs, serve, slo)], None
        if strategy == "sm-partition":
            return _sm_partition_pools(ctx, knobs, serve), PAIRED
        if strategy == "phase-resharding":
            return [_resharding_pool(ctx, knobs, serve, detail)], None
        return [SimPool(ctx.deployment(serve.tp, serve.pp), serve.count, Role.serve, policy_for(strategy, knobs))], None
    from planner.cost.comm import link_efficiency
    from planner.strategies import get_strategy
    from planner.strategies.disaggregated import Disaggregated, kv_bytes_per_token, kv_link

    if roles != [Role.prefill, Role.decode]:
        raise PlannerError(f"disaggregated runs a prefill and a decode pool, got {[r.value for r in roles]}")
    placement = detail.get("placement")
    if placement not in ("in-node", "cross-node"):
        raise PlannerError(f"a disaggregated placement is in-node or cross-node, got {placement!r}", "placement")
    prefill, decode = layouts
    disaggregated = get_strategy(strategy)
    assert isinstance(disaggregated, Disaggregated)
    p, d = (prefill.tp, prefill.pp), (decode.tp, decode.pp)
    eff = link_efficiency(ctx.deployment(*d))
    link = kv_link(ctx, p[0] * p[1], d[0] * d[1], prefill.count, decode.count, placement == "in-node", eff)
    candidate = disaggregated.build_candidate(ctx, p, d, prefill.count, decode.count, placement, link)
    pools = disaggregated.pools(ctx, candidate)
    transfer = KvTransfer(
        bytes_per_token=kv_bytes_per_token(ctx),
        bandwidth_bytes_s=link.lanes * link.lane_bw_bytes_s * link.eff,
        latency_s=link.latency_s,
    )
    return [SimPool(pools.prefill, pools.n_p, Role.prefill), SimPool(pools.decode, pools.n_d, Role.decode)], transfer


def _candidate(
    strategy: str, knobs: Mapping[str, float] | None, layout: PoolLayout, instances: int, detail: Mapping[str, Any]
) -> tuple[Strategy, Candidate]:
    """The strategy and its configuration of `instances` instances of the layout, knobs at their defaults where
    not given."""
    from planner.strategies import get_strategy
    from planner.strategies.base import Candidate

    spec = get_strategy(strategy)
    values = {knob.name: float(knob.default) for knob in spec.knobs} | spec.check_knobs(knobs)
    gpus = instances * layout.tp * layout.pp
    return spec, Candidate(strategy, layout.tp, layout.pp, instances, gpus, values, dict(detail))


def _pipeline_pool(ctx: Context, strategy: str, knobs: Mapping[str, float] | None, serve: PoolLayout) -> SimPool:
    """A pool of gLLM or TD-Pipe instances: the strategy's deployment and knobs (defaults where not given)."""
    from planner.strategies.temporal_pipeline import KV_HORIZONS, Pipeline
    from planner.strategies.throttled_pipeline import ThrottledPipeline

    if serve.pp < 2:
        raise PlannerError(f"{strategy} needs pipeline stages to alternate over: PP >= 2, got {serve.pp}", "pp")
    spec, candidate = _candidate(strategy, knobs, serve, serve.count, {})
    values = candidate.knobs
    if isinstance(spec, ThrottledPipeline):
        throttle = Throttle(
            max_prefill_tokens=int(values["max_prefill_tokens"]),
            min_prefill_tokens=int(values["min_prefill_tokens"]),
            iterp=int(values["iterp"]),
            kv_threshold=values["kv_threshold"],
        )
        policy = Policy(scheduler=Scheduler.throttled, throttle=throttle)
        return SimPool(spec.deployment(ctx, candidate), serve.count, Role.serve, policy)
    deployment = ctx.deployment(serve.tp, serve.pp)
    cycle = Pipeline.build(ctx, deployment, values).cycle()
    phases = Phases(
        prefill_tokens=int(values["prefill_tokens"]),
        kv_fill=values["kv_fill"],
        switch_batch=cycle.switch_batch,
        horizons=KV_HORIZONS,
    )
    return SimPool(deployment, serve.count, Role.serve, Policy(scheduler=Scheduler.temporal, phases=phases))


def _macro_pool(ctx: Context, knobs: Mapping[str, float] | None, macros: PoolLayout, slo: Slo | None) -> SimPool:
    """`macros.count` macro instances of `macro_size` prefill-first instances each (EcoServe), rotating against
    the SLOs given (the author launcher's defaults for those not given)."""
    from planner.strategies.macro_instance import MacroInstance

    size = int(MacroInstance.check_knobs(knobs).get("macro_size", MacroInstance.knobs[0].default))
    instances = macros.count * size
    spec, candidate = _candidate("macro-instance", knobs, macros, instances, {})
    assert isinstance(spec, MacroInstance)
    slo = slo or Slo()
    rotation = Rotation(
        size=size,
        ttft_s=slo.ttft_s if slo.ttft_s is not None else ECOSERVE_TTFT_S,
        tpot_s=slo.tpot_s if slo.tpot_s is not None else ECOSERVE_TPOT_S,
    )
    return SimPool(spec.deployment(ctx, candidate), instances, Role.serve, Policy(rotation=rotation))


def _sm_partition_pools(ctx: Context, knobs: Mapping[str, float] | None, serve: PoolLayout) -> list[SimPool]:
    """A prefill worker and a decode worker per instance (semi-PD, Nexus), as SmPartition.workers prices them."""
    from planner.strategies.sm_partition import SmPartition

    spec, candidate = _candidate("sm-partition", knobs, serve, serve.count, {})
    assert isinstance(spec, SmPartition)
    spec.memory(ctx, candidate)  # the share lies strictly inside (0, 1) and a request fits
    workers = spec.workers(ctx, candidate)
    return [
        SimPool(workers.prefill, serve.count, Role.prefill),
        SimPool(workers.decode_alone, serve.count, Role.decode, contended=workers.decode_contended),
    ]


def _resharding_pool(
    ctx: Context, knobs: Mapping[str, float] | None, serve: PoolLayout, detail: Mapping[str, Any]
) -> SimPool:
    """Instances alternating the prefill layout in `detail` and the decode layout of `serve` (Seesaw), with the
    strategy's switch times."""
    from planner.strategies.phase_resharding import PhaseResharding

    if "prefill_tp" not in detail or "prefill_pp" not in detail:
        raise PlannerError(
            "phase re-sharding needs its prefill layout: simulate it from a plan "
            "(tdplan recommend --strategy phase-resharding --json > plan.json; tdplan simulate --plan plan.json)",
            "strategy",
        )
    layout = {"prefill_tp": int(detail["prefill_tp"]), "prefill_pp": int(detail["prefill_pp"])}
    spec, candidate = _candidate("phase-resharding", knobs, serve, serve.count, layout)
    assert isinstance(spec, PhaseResharding)
    values = candidate.knobs
    kv_tokens = spec.memory(ctx, candidate).kv_capacity_tokens  # the smaller of the two layouts' caches
    cycle = spec.cycle(ctx, candidate)
    plan = Resharding(
        prefill=cycle.prefill,
        to_decode_s=cycle.to_decode.time_s,
        to_prefill_s=cycle.to_prefill.time_s(0.0),
        fill_tokens=values["kv_fill"] * kv_tokens,
        decode_batch=int(values["max_batch"]),
    )
    policy = Policy(scheduler=Scheduler.resharding, kv_capacity_tokens=kv_tokens)
    return SimPool(cycle.decode, serve.count, Role.serve, policy, resharding=plan)
