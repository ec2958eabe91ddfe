"""The shared interface of serving strategies, their registry, and the evaluation every strategy gets.

A strategy answers three questions about one candidate configuration (layout and knob values) on a cluster:
- `capacity`: the largest request rate the configuration sustains with requests always waiting (offline);
- `latencies`: under Poisson arrivals at a rate, each workload request's TTFT and TPOT (or None when the rate
  exceeds what the configuration sustains);
- `memory`: per-GPU memory by part and the KV capacity.
`evaluate()` turns those into the numbers users compare: throughput, mean/p90/p99 TTFT and TPOT, SLO attainment
and goodput (the largest rate at which the target share of requests meets both SLOs, found by bisection).

Adding a strategy: subclass `Strategy` in a module of its own under planner/strategies/, give it a `name`,
`summary`, `reference` and `knobs` (and each new knob's accepted values in `knobs.KNOB_RANGES`), implement
`candidates`, `capacity`, `latencies` and `memory`, decorate it with `@register`, and import the module in
planner/strategies/__init__.py. `candidates` should skip configurations that do not take `ctx.instance_gpus`
GPUs when it is set (`layout_candidates` does): the planner asks for one size at a time.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from planner.cost.memory import MemoryBreakdown, memory_breakdown
from planner.errors import PlannerError
from planner.specs.catalog import Catalog
from planner.specs.deployment import Deployment
from planner.specs.engine import EngineSpec
from planner.specs.hardware import Cluster, Frozen
from planner.specs.inputs import format_number
from planner.specs.memo import IdentityMemo
from planner.specs.model import ModelSpec
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies.knobs import KNOB_RANGES, KnobRange
from planner.strategies.numerics import quantile

T = TypeVar("T")
_MISSING: Any = object()


# What was derived from each strategy context (Context.cached).
_DERIVED: IdentityMemo[dict[Hashable, Any]] = IdentityMemo()


class Slo(Frozen):
    """Latency targets: a request meets them when its TTFT and its TPOT are both within target."""

    ttft_s: float = Field(gt=0)
    tpot_s: float = Field(gt=0)
    attainment: float = Field(default=0.9, gt=0, le=1)  # share of requests that must meet both


class Knob(Frozen):
    """A strategy parameter: its default, the values the search tries, and what it does."""

    name: str
    default: float
    search: tuple[float, ...]
    help: str


@dataclass(frozen=True)
class Context:
    """Everything fixed while strategies and configurations vary."""

    catalog: Catalog
    model: ModelSpec
    cluster: Cluster
    workload: Workload
    dtype: Dtype
    kv_dtype: Dtype
    engine: EngineSpec
    # Set by the planner (planner.search.instances) when the cluster is room for exactly one instance, or one
    # macro of instances, of this many GPUs: strategies then skip configurations that take any other number
    # before pricing their memory, instead of enumerating every smaller layout at every size.
    instance_gpus: int | None = None

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()`, once per context object and key: for values that depend only on the context and what the
        key names (an immutable deployment, knob values), which every knob value and tabulated rate asks for
        again. A new context (`replace()`) starts with none."""
        values = _DERIVED.get(self)
        if values is None:
            values = _DERIVED.put(self, {})
        value: T = values.get(key, _MISSING)
        if value is _MISSING:
            value = values[key] = compute()
        return value

    def deployment(self, tp_size: int, pp_size: int, engine: EngineSpec | None = None) -> Deployment:
        """An instance of tp_size x pp_size GPUs on this cluster, with the engine's calibration. The same layout
        gives back the same (immutable) object: no second validation, and the cost caches find it at once."""
        chosen = engine or self.engine
        return self.cached(
            ("deployment", tp_size, pp_size, chosen),
            lambda: self.catalog.deployment(
                self.model, self.cluster, tp_size, pp_size, self.dtype, self.kv_dtype, chosen
            ),
        )


@dataclass(frozen=True)
class Candidate:
    """One configuration of a strategy: a layout, its knob values, and what the strategy needs to cost it.

    `tp`/`pp` describe the instance (for disaggregation, the decode instance; the prefill side is in `detail`).
    `gpus_used` counts every GPU the configuration occupies over the whole cluster.
    """

    strategy: str
    tp: int
    pp: int
    replicas: int
    gpus_used: int
    knobs: Mapping[str, float]
    detail: Mapping[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        extra = ", ".join(f"{k}={v:g}" for k, v in self.knobs.items())
        return f"{self.strategy} TP{self.tp} PP{self.pp} x{self.replicas}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class Infeasible:
    """A configuration the strategy cannot run, and why (it does not fit, the layout is invalid...)."""

    strategy: str
    tp: int
    pp: int
    knobs: Mapping[str, float]
    reason: str


@dataclass(frozen=True)
class Latencies:
    """Per-request TTFT and TPOT (seconds) over the workload's requests at one arrival rate, plus the p99
    time between tokens (TBT), which stalls shape more than the mean TPOT does."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    tbt_p99_s: float


class Memory(BaseModel):
    """Per-GPU memory by part (GiB) and the KV capacity of one instance (tokens)."""

    model_config = ConfigDict(frozen=True)

    gib: dict[str, float]
    kv_capacity_tokens: int


class Strategy(ABC):
    """A way of serving: how instances are laid out and scheduled."""

    name: ClassVar[str]
    summary: ClassVar[str]
    reference: ClassVar[str]
    knobs: ClassVar[tuple[Knob, ...]] = ()

    @abstractmethod
    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        """Every configuration on the cluster: layouts x knob values. `knobs` pins some knobs; the others take
        their `search` values."""

    @abstractmethod
    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        """Requests/s the whole configuration completes with requests always waiting (offline)."""

    @abstractmethod
    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        """Per-request latencies under Poisson arrivals at `rate_req_s` for the whole configuration, or None
        when the rate is beyond what it sustains."""

    @abstractmethod
    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        """Memory of the busiest GPU and the KV capacity of one instance."""

    # Shared helpers for subclasses.
    @classmethod
    def check_knobs(cls, pinned: Mapping[str, float] | None) -> dict[str, float]:
        """The pinned knob values, or PlannerError naming a knob this strategy lacks or a value out of range."""
        if pinned is not None and not isinstance(pinned, Mapping):
            raise PlannerError(f"expected a mapping of knob name to number, got {pinned!r}", "knobs")
        pinned = dict(pinned or {})
        unknown = set(pinned) - {k.name for k in cls.knobs}
        if unknown:
            names = ", ".join(k.name for k in cls.knobs) or "none"
            raise PlannerError(
                f"strategy {cls.name} has no knob {', '.join(sorted(unknown))}: its knobs are {names}", "knobs"
            )
        for name, value in pinned.items():
            allowed = KNOB_RANGES.get(name, KnobRange(integer=False, low=-math.inf, high=math.inf))
            if isinstance(value, bool) or not isinstance(value, int | float) or not allowed.admits(value):
                got = (
                    format_number(value)
                    if isinstance(value, int | float) and not isinstance(value, bool)
                    else repr(value)
                )
                raise PlannerError(f"{name} must be {allowed.describe()}, got {got}", "knobs")
        return pinned

    @classmethod
    def knob_grid(cls, pinned: Mapping[str, float] | None) -> Iterator[dict[str, float]]:
        """Every combination of knob values: pinned ones fixed, the rest over their search values."""
        pinned = cls.check_knobs(pinned)
        grids: list[dict[str, float]] = [{}]
        for knob in cls.knobs:
            values = (pinned[knob.name],) if knob.name in pinned else knob.search
            grids = [{**g, knob.name: v} for g in grids for v in values]
        yield from grids


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available by its name."""
    REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str) -> Strategy:
    """The strategy called `name` (case, spaces and underscores forgiven: chunked, phase_resharding)."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-") if isinstance(name, str) else ""
    if key not in REGISTRY:
        raise PlannerError(f"unknown strategy '{name}': choose one of {', '.join(sorted(REGISTRY))}", "strategy")
    return REGISTRY[key]()


def layouts(ctx: Context, max_pp: int | None = None) -> Iterator[tuple[int, int]]:
    """(tp, pp) pairs with tp a power of two dividing the heads and within a node (or whole nodes), pp up to
    the cluster (and `max_pp`), tp x pp at most the cluster."""
    heads, gpus, per_node = ctx.model.num_attention_heads, ctx.cluster.num_gpus, ctx.cluster.gpus_per_node
    tp = 1
    while tp <= gpus:
        if heads % tp == 0 and (tp <= per_node or tp % per_node == 0):
            pp = 1
            while tp * pp <= gpus and pp <= min(max_pp or gpus, ctx.model.num_hidden_layers):
                yield tp, pp
                pp *= 2
        tp *= 2


# --- memory and candidates shared by the strategies ---------------------------------------------------------


def require_request_fits(ctx: Context, memory: MemoryBreakdown) -> None:
    """PlannerError when an instance's KV cache cannot hold the workload's longest request."""
    if memory.kv_capacity_tokens < ctx.workload.max_request_tokens:
        raise PlannerError(
            f"KV cache of {memory.kv_capacity_tokens} tokens cannot hold the workload's longest "
            f"request ({ctx.workload.max_request_tokens} tokens)"
        )


def instance_memory(ctx: Context, deployment: Deployment) -> Memory:
    """Per-GPU memory of the busiest stage and the instance's KV capacity (require_request_fits applies)."""
    memory = memory_breakdown(deployment)
    require_request_fits(ctx, memory)
    return Memory(gib=memory.as_gib(), kv_capacity_tokens=memory.kv_capacity_tokens)


def layout_candidates(
    strategy: Strategy, ctx: Context, pairs: Iterable[tuple[int, int]], pinned: Mapping[str, float] | None
) -> Iterator[Candidate | Infeasible]:
    """(tp, pp) layouts x the strategy's knob grid, replicated over the cluster; Infeasible when one does not
    fit in memory."""
    for tp, pp in pairs:
        if ctx.instance_gpus is not None and tp * pp != ctx.instance_gpus:
            continue
        replicas = ctx.cluster.num_gpus // (tp * pp)
        for values in strategy.knob_grid(pinned):
            candidate = Candidate(
                strategy=strategy.name, tp=tp, pp=pp, replicas=replicas, gpus_used=replicas * tp * pp, knobs=values
            )
            try:
                strategy.memory(ctx, candidate)
            except PlannerError as err:
                yield Infeasible(strategy=strategy.name, tp=tp, pp=pp, knobs=values, reason=str(err))
                continue
            yield candidate


# --- per-request latency distributions ---------------------------------------------------------------------


def seeded_quantiles(n: int, seed: int) -> np.ndarray:
    """n probabilities at fixed quantiles, in a seeded order (deterministic 'random' draws)."""
    return np.random.default_rng(seed).permutation((np.arange(n) + 0.5) / n)


def queue_waits_s(n: int, rho: float, mean_wait_s: float, seed: int = 0) -> np.ndarray:
    """n waiting times of an M/G/1-like queue with utilisation rho and mean wait `mean_wait_s`: zero with
    probability 1 - rho, else exponential with mean mean_wait / rho (the standard exponential approximation
    of the waiting-time tail, Kingman 1962). Drawn at fixed quantiles in a seeded order: deterministic."""
    if rho <= 0 or mean_wait_s <= 0:
        return np.zeros(n)
    rho = min(rho, 0.999)
    quantiles = seeded_quantiles(n, seed)
    tail = np.maximum(0.0, (quantiles - (1 - rho)) / rho)  # position within the waiting tail
    return np.where(quantiles < 1 - rho, 0.0, -np.log1p(-np.minimum(tail, 0.999999)) * mean_wait_s / rho)


def mdl_wait_s(rate_req_s: float, service_s: float) -> tuple[float, float]:
    """(utilisation, mean wait) of an M/D/1 queue: rho = rate x service, wait = rho service / (2 (1 - rho))."""
    rho = rate_req_s * service_s
    if rho >= 1:
        return rho, math.inf
    return rho, rho * service_s / (2 * (1 - rho))


# --- the evaluation every strategy gets ---------------------------------------------------------------------


class StrategyResult(BaseModel):
    """One configuration of one strategy, evaluated. Throughputs are for the whole configuration."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    tp: int
    pp: int
    replicas: int
    gpus_used: int
    knobs: dict[str, float]
    detail: dict[str, Any]
    feasible: bool
    reason: str | None = None
    output_throughput_tok_s: float | None = None  # offline, requests always waiting
    request_throughput_req_s: float | None = None
    rate_req_s: float | None = None  # the arrival rate the latencies below are for
    ttft_s: float | None = None
    tpot_s: float | None = None
    ttft_p90_s: float | None = None
    tpot_p90_s: float | None = None
    ttft_p99_s: float | None = None
    tpot_p99_s: float | None = None
    tbt_p99_s: float | None = None
    slo_attainment: float | None = None
    goodput_req_s: float | None = None
    memory_gib: dict[str, float] | None = None
    kv_capacity_tokens: int | None = None


def attainment(lat: Latencies, slo: Slo) -> float:
    """Share of requests meeting both the TTFT and the TPOT target."""
    return float(np.mean((lat.ttft_s <= slo.ttft_s) & (lat.tpot_s <= slo.tpot_s)))


def goodput_req_s(strategy: Strategy, ctx: Context, candidate: Candidate, slo: Slo, capacity: float) -> float:
    """Largest Poisson rate at which at least slo.attainment of requests meet both targets (bisection to 1%
    of capacity; 0 when even a trickle of traffic misses them)."""

    def meets(rate: float) -> bool:
        lat = strategy.latencies(ctx, candidate, rate)
        return lat is not None and attainment(lat, slo) >= slo.attainment

    low, high = 0.0, capacity
    if not meets(capacity * 0.01):
        return 0.0
    low = capacity * 0.01
    while high - low > capacity * 0.01:
        mid = (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low


def rate_for_concurrency(
    strategy: Strategy, ctx: Context, candidate: Candidate, concurrency: float, capacity: float
) -> float:
    """The arrival rate at which `concurrency` requests are in flight on average (Little's law: rate x mean
    end-to-end latency = concurrency), by bisection; capacity when even that leaves fewer in flight. This
    treats a closed loop of C clients as the open system with the same mean population."""
    outputs = np.maximum(np.array(ctx.workload.output_lens) - 1, 0)

    def in_flight(rate: float) -> float:
        lat = strategy.latencies(ctx, candidate, rate)
        if lat is None:
            return math.inf
        return rate * float(np.mean(lat.ttft_s + outputs * lat.tpot_s))

    low, high = 0.0, capacity * 0.999
    if in_flight(high) <= concurrency:
        return high
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if in_flight(mid) < concurrency else (low, mid)
    return low


def evaluate(
    strategy: Strategy,
    ctx: Context,
    candidate: Candidate | Infeasible,
    slo: Slo,
    rate_req_s: float | None = None,
    concurrency: float | None = None,
) -> StrategyResult:
    """Capacity, latency percentiles at `rate_req_s` (or at the rate that keeps `concurrency` requests in
    flight; default: the goodput rate, or half of capacity when no rate meets the SLOs), SLO attainment there,
    and goodput."""
    if isinstance(candidate, Infeasible):
        return StrategyResult(
            strategy=candidate.strategy,
            tp=candidate.tp,
            pp=candidate.pp,
            replicas=0,
            gpus_used=0,
            knobs=dict(candidate.knobs),
            detail={},
            feasible=False,
            reason=candidate.reason,
        )
    base = dict(
        strategy=candidate.strategy,
        tp=candidate.tp,
        pp=candidate.pp,
        replicas=candidate.replicas,
        gpus_used=candidate.gpus_used,
        knobs=dict(candidate.knobs),
        detail=dict(candidate.detail),
    )
    try:
        memory = strategy.memory(ctx, candidate)
        capacity = strategy.capacity_req_s(ctx, candidate)
    except PlannerError as err:
        return StrategyResult(**base, feasible=False, reason=str(err))
    goodput = goodput_req_s(strategy, ctx, candidate, slo, capacity)
    if concurrency is not None:
        rate_req_s = rate_for_concurrency(strategy, ctx, candidate, concurrency, capacity)
    rate = rate_req_s if rate_req_s is not None else (goodput if goodput > 0 else capacity / 2)
    lat = strategy.latencies(ctx, candidate, rate)
    numbers: dict[str, Any] = {}
    if lat is not None:
        numbers = dict(
            ttft_s=float(np.mean(lat.ttft_s)),
            tpot_s=float(np.mean(lat.tpot_s)),
            ttft_p90_s=quantile(lat.ttft_s, 0.9),
            tpot_p90_s=quantile(lat.tpot_s, 0.9),
            ttft_p99_s=quantile(lat.ttft_s, 0.99),
            tpot_p99_s=quantile(lat.tpot_s, 0.99),
            tbt_p99_s=lat.tbt_p99_s,
            slo_attainment=attainment(lat, slo),
        )
    return StrategyResult(
        **base,
        feasible=True,
        output_throughput_tok_s=capacity * ctx.workload.mean_output_len,
        request_throughput_req_s=capacity,
        rate_req_s=rate,
        goodput_req_s=goodput,
        memory_gib=memory.gib,
        kv_capacity_tokens=memory.kv_capacity_tokens,
        **numbers,
    )
