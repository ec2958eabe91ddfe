"""Instance types: what one instance of a strategy's configuration serves, tabulated once for the planner.

An instance type is a strategy, its knob values and one or two pools, each a role (serve, prefill, decode) with
a deployment (TP x PP GPUs). Per instance of each pool it answers: offline capacity (requests/s with requests
always waiting) and the largest per-instance Poisson rate at which the SLOs hold. Replica counts are not here:
the integer program (planner.search.ilp) chooses them.

Single-pool strategies are evaluated on a cluster of exactly one instance (`one_instance`), so every number is
per instance, through the strategy's own capacity and latency models. A cheap bound prunes first: per strategy
and instance size, only the configurations with the most offline capacity get latencies (`_keep`; with SLOs,
the best knob values of every layout). The SLO rate
is read off a short table of attainments at fixed fractions of the capacity (`RATE_FRACTIONS`), refined a few
times around the target's crossing, by linear interpolation (`tabulate`, `slo_rate`).

Disaggregation has two pools: a prefill pool checked against the TTFT target with decode
never limiting, a decode pool checked against the TPOT target with prefill never limiting (each evaluated by the
strategy's own model with the other pool made ample), each at the square root of the attainment target, so
that both together meet it when the two phases miss independently. The KV bytes a request moves between them
and the link each prefill instance sends over bound the served rate too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from planner.errors import PlannerError
from planner.specs.hardware import Cluster
from planner.strategies import REGISTRY, get_strategy
from planner.strategies.base import Candidate, Context, Infeasible, Latencies, Slo, Strategy, attainment

if TYPE_CHECKING:
    from planner.strategies.disaggregated import Disaggregated

# Fractions of an instance's offline capacity at which latencies are tabulated: a coarse pass, then the
# interval where the attainment crosses its target is split REFINE times.
RATE_FRACTIONS = (0.02, 0.25, 0.5, 0.75, 0.95)
REFINE = 3
# Configurations kept per strategy and instance size by the capacity bound before latencies are tabulated:
# the best layouts, and within each the best knob values (knobs such as chunk sizes trade capacity for latency).
KEEP_LAYOUTS = 2
KEEP_KNOBS = 2
# Instances of the other pool that make it ample when one disaggregated pool is measured alone.
AMPLE = 64


@dataclass(frozen=True)
class Pool:
    """One pool of an instance type: a role and a layout, with its per-instance rates (requests/s). `gpus` is
    what one instance of the pool takes: TP x PP, or a whole macro of TP x PP instances (macro-instance)."""

    role: str  # serve | prefill | decode
    tp: int
    pp: int
    gpus: int
    capacity_req_s: float  # offline, requests always waiting
    slo_rate_req_s: float  # largest Poisson rate per instance within the SLOs (0: never meets them)


@dataclass(frozen=True)
class InstanceType:
    """A strategy configuration whose pools the planner replicates.

    For disaggregation, `kv_bytes_per_req` crosses from prefill to decode instances over links worth
    `kv_link_bytes_s_per_prefill` per prefill instance. `ctx`/`candidate` let the planner evaluate the
    strategy's latencies for the counts it chooses."""

    strategy: str
    knobs: dict[str, float]
    pools: tuple[Pool, ...]
    memory_gib: dict[str, float]
    kv_capacity_tokens: int
    ctx: Context
    candidate: Candidate
    detail: dict[str, Any] = field(default_factory=dict)
    kv_bytes_per_req: float = 0.0
    kv_link_bytes_s_per_prefill: float = math.inf

    @property
    def label(self) -> str:
        pools = " + ".join(
            f"{p.role} TP{p.tp} PP{p.pp}" + (f" x{p.gpus // (p.tp * p.pp)}" if p.gpus != p.tp * p.pp else "")
            for p in self.pools
        )
        knobs = ", ".join(f"{k}={v:g}" for k, v in self.knobs.items())
        return f"{self.strategy}: {pools}" + (f" ({knobs})" if knobs else "")

    @property
    def gpu(self) -> str:
        return self.ctx.cluster.gpu.id


def one_instance(ctx: Context, gpus: int, exact: bool = True) -> Context:
    """The context with a cluster of `gpus` GPUs of the same kind, nodes and network: room for one instance.
    `exact`: strategies offer only configurations that take all `gpus` (Context.instance_gpus)."""
    node = ctx.cluster.gpus_per_node
    cluster = Cluster(gpu=ctx.cluster.gpu, num_gpus=gpus, gpus_per_node=node, network=ctx.cluster.network)
    return replace(ctx, cluster=cluster, instance_gpus=gpus if exact else None)


def instance_sizes(ctx: Context) -> list[int]:
    """GPU counts an instance may take: the divisors of a node, then whole nodes doubling up to the cluster
    (sizes that pack without waste, `packs`)."""
    node, total = ctx.cluster.gpus_per_node, ctx.cluster.num_gpus
    sizes = [d for d in range(1, node + 1) if node % d == 0 and d <= total]
    size = 2 * node
    while size <= total:
        sizes.append(size)
        size *= 2
    return sizes


def packs(gpus: int, gpus_per_node: int) -> bool:
    """Instances of `gpus` GPUs pack without waste into nodes: a divisor of the node or whole nodes (then any
    mix of such sizes that fits the GPU budget fits the nodes, since each size divides the next)."""
    return gpus_per_node % gpus == 0 if gpus <= gpus_per_node else gpus % gpus_per_node == 0


@dataclass(frozen=True)
class Table:
    """Latencies of one instance at fixed fractions of its capacity."""

    rates_req_s: np.ndarray
    attainment: np.ndarray


def tabulate(
    strategy: Strategy,
    ctx: Context,
    candidate: Candidate,
    capacity: float,
    share: Callable[[Latencies], float],
    target: float,
) -> Table:
    """Share of requests meeting the targets (`share` of a latency distribution; 0 where the rate is
    unsustainable) at RATE_FRACTIONS x capacity, stopping at the first miss, then refined around the crossing
    of `target`: a table the SLO rate is interpolated from, not a bisection per query."""

    def at(rate: float) -> float:
        lat = strategy.latencies(ctx, candidate, rate)
        return 0.0 if lat is None else share(lat)

    points: dict[float, float] = {}
    for fraction in RATE_FRACTIONS:
        rate = fraction * capacity
        points[rate] = at(rate)
        if points[rate] < target:
            break
    for _ in range(REFINE):
        rates = sorted(points)
        misses = [r for r in rates if points[r] < target]
        if not misses or misses[0] == rates[0]:
            break
        high = misses[0]
        low = rates[rates.index(high) - 1]
        middle = (low + high) / 2
        points[middle] = at(middle)
    rates = sorted(points)
    return Table(rates_req_s=np.array(rates), attainment=np.array([points[r] for r in rates]))


def slo_rate(table: Table, target: float) -> float:
    """The largest tabulated-and-interpolated rate whose attainment is at least `target`: the first crossing
    below the target, interpolated linearly between the two rates around it; 0 when even the lowest misses."""
    ok = table.attainment >= target
    if not ok[0]:
        return 0.0
    if ok.all():
        return float(table.rates_req_s[-1])
    k = int(np.argmin(ok))  # first rate that misses
    r0, r1 = table.rates_req_s[k - 1], table.rates_req_s[k]
    a0, a1 = table.attainment[k - 1], table.attainment[k]
    return float(r0 + (r1 - r0) * (a0 - target) / max(a0 - a1, 1e-12))


def _keep(scored: list[tuple[float, Candidate]], with_slo: bool) -> list[tuple[float, Candidate]]:
    """The KEEP_KNOBS best configurations of each of the KEEP_LAYOUTS layouts with the most capacity; with SLOs,
    of every layout (the layouts with the most capacity are the deepest pipelines, often the slowest per
    token: capacity cannot stand in for latency)."""
    by_layout: dict[tuple[int, int], list[tuple[float, Candidate]]] = {}
    for capacity, candidate in sorted(scored, key=lambda item: (-item[0], item[1].tp, item[1].pp)):
        by_layout.setdefault((candidate.tp, candidate.pp), []).append((capacity, candidate))
    layouts = list(by_layout.values()) if with_slo else list(by_layout.values())[:KEEP_LAYOUTS]
    return [item for options in layouts for item in options[:KEEP_KNOBS]]


def _single_pool_types(
    strategy: Strategy, ctx: Context, slo: Slo | None, infeasible: list[str], exact: bool
) -> Iterator[InstanceType]:
    """One instance of each layout and knob value of a single-pool strategy, pruned by capacity per size; the
    reasons configurations cannot run are appended to `infeasible`. `exact`: the strategy enumerates only the
    configurations of each size (`one_instance`), not every smaller one too (only their reasons differ)."""
    for size in instance_sizes(ctx):
        # One context per size for every strategy: the deployments and tables derived from it are shared.
        sub = ctx.cached(("one instance", size, exact), functools.partial(one_instance, ctx, size, exact))
        scored: list[tuple[float, Candidate]] = []
        for candidate in strategy.candidates(sub):
            if isinstance(candidate, Infeasible):
                infeasible.append(candidate.reason)
                continue
            if candidate.gpus_used != size:
                continue
            if int(candidate.detail.get("macros", candidate.replicas)) != 1:
                continue  # several copies of a smaller instance: the integer program counts those
            capacity = strategy.capacity_req_s(sub, candidate)
            if capacity > 0 and math.isfinite(capacity):
                scored.append((capacity, candidate))
        for capacity, candidate in _keep(scored, slo is not None):
            memory = strategy.memory(sub, candidate)
            rate = capacity
            if slo is not None:
                table = tabulate(strategy, sub, candidate, capacity, lambda lat: attainment(lat, slo), slo.attainment)
                rate = slo_rate(table, slo.attainment)
            yield InstanceType(
                strategy=strategy.name,
                knobs=dict(candidate.knobs),
                pools=(Pool("serve", candidate.tp, candidate.pp, size, capacity, rate),),
                memory_gib=memory.gib,
                kv_capacity_tokens=memory.kv_capacity_tokens,
                ctx=sub,
                candidate=candidate,
                detail=dict(candidate.detail),
            )


def _pool_rate(strategy: Strategy, ctx: Context, candidate: Candidate, capacity: float, slo: Slo, metric: str) -> float:
    """Largest rate at which one pool meets its own target (TTFT for prefill, TPOT for decode) at the square
    root of the attainment target, the other pool being ample."""
    rates = np.array(RATE_FRACTIONS) * capacity
    shares = []
    for rate in rates:
        lat = strategy.latencies(ctx, candidate, float(rate))
        if lat is None:
            shares.append(0.0)
        else:
            values, target = (lat.ttft_s, slo.ttft_s) if metric == "ttft" else (lat.tpot_s, slo.tpot_s)
            shares.append(float(np.mean(values <= target)))
    return slo_rate(Table(rates, np.array(shares)), math.sqrt(slo.attainment))


def _disaggregated_types(strategy: Strategy, ctx: Context, slo: Slo | None) -> Iterator[InstanceType]:
    """Prefill and decode pools of each layout pair the strategy keeps, each measured with the other ample."""
    from planner.strategies.disaggregated import Disaggregated

    assert isinstance(strategy, Disaggregated)
    # Layout pairs and where they can go, not the strategy's instance-count splits over the whole cluster: the
    # integer program chooses the counts, and scoring every split would make the work grow with the GPUs.
    for pair in strategy.layout_pairs(ctx):
        if isinstance(pair, Infeasible):
            continue
        yield from _placed_pair_types(strategy, ctx, slo, *pair)


def _placed_pair_types(
    strategy: Disaggregated, ctx: Context, slo: Slo | None, p_layout: tuple[int, int], d_layout: tuple[int, int]
) -> Iterator[InstanceType]:
    """One instance type per placement the layout pair has on the cluster (in nodes, across them)."""
    from planner.cost.comm import link_efficiency
    from planner.strategies.disaggregated import kv_bytes_per_token, kv_link

    gp, gd = p_layout[0] * p_layout[1], d_layout[0] * d_layout[1]
    eff = link_efficiency(ctx.deployment(*d_layout))
    big = replace(ctx, cluster=replace_cluster(ctx, AMPLE * (gp + gd)))
    for placement, splits in strategy.placements(ctx, p_layout, d_layout).items():
        if not splits:
            continue
        in_node = placement == "in-node"
        rates: list[float] = []
        caps: list[float] = []
        for n_p, n_d, metric in ((1, AMPLE, "ttft"), (AMPLE, 1, "tpot")):
            link = kv_link(big, gp, gd, n_p, n_d, in_node, eff)
            probe = strategy.build_candidate(big, p_layout, d_layout, n_p, n_d, placement, link)
            phase = strategy.phase_capacities_req_s(big, strategy.pools(big, probe))
            capacity = phase["prefill"] if metric == "ttft" else phase["decode"]
            caps.append(capacity)
            if slo is None:
                rates.append(capacity)
            else:
                rates.append(_pool_rate(strategy, big, probe, capacity, slo, metric))
        one_link = kv_link(ctx, gp, gd, 1, 1, in_node, eff)
        candidate = strategy.build_candidate(ctx, p_layout, d_layout, 1, 1, placement, one_link)
        memory = strategy.memory(ctx, candidate)
        yield InstanceType(
            strategy=strategy.name,
            knobs={},
            pools=(
                Pool("prefill", *p_layout, gp, capacity_req_s=caps[0], slo_rate_req_s=rates[0]),
                Pool("decode", *d_layout, gd, capacity_req_s=caps[1], slo_rate_req_s=rates[1]),
            ),
            memory_gib=memory.gib,
            kv_capacity_tokens=memory.kv_capacity_tokens,
            ctx=ctx,
            candidate=candidate,
            detail={"placement": placement, "kv_link": one_link.name},
            kv_bytes_per_req=ctx.workload.mean_input_len * kv_bytes_per_token(ctx),
            kv_link_bytes_s_per_prefill=one_link.capacity_bytes_s,
        )


def replace_cluster(ctx: Context, gpus: int) -> Cluster:
    """The context's cluster grown or shrunk to `gpus` GPUs (whole nodes beyond one)."""
    node = ctx.cluster.gpus_per_node
    gpus = gpus if gpus <= node else math.ceil(gpus / node) * node
    return Cluster(gpu=ctx.cluster.gpu, num_gpus=gpus, gpus_per_node=node, network=ctx.cluster.network)


def instance_types(
    ctx: Context, strategies: Sequence[str] | None, slo: Slo | None
) -> tuple[list[InstanceType], list[str]]:
    """Every instance type of the named strategies (all registered ones by default), with notes on what was
    skipped. `slo` None: offline (the rate limits are the capacities)."""
    names = list(strategies) if strategies else sorted(REGISTRY)
    types: list[InstanceType] = []
    notes: list[str] = []
    for name in names:
        found, skipped = _strategy_types(name, ctx, slo, exact=True)
        if not found and name != "disaggregated":
            # Nothing runs: enumerate every configuration after all, for the note to name the last one tried.
            found, skipped = _strategy_types(name, ctx, slo, exact=False)
        types += found
        notes += skipped
    return types, notes


def _strategy_types(name: str, ctx: Context, slo: Slo | None, exact: bool) -> tuple[list[InstanceType], list[str]]:
    """One strategy's instance types, and notes on why it has none (or stopped early)."""
    strategy = get_strategy(name)
    found: list[InstanceType] = []
    notes: list[str] = []
    infeasible: list[str] = []
    try:
        if name == "disaggregated":
            found.extend(_disaggregated_types(strategy, ctx, slo))
        else:
            found.extend(_single_pool_types(strategy, ctx, slo, infeasible, exact))
    except PlannerError as err:
        notes.append(f"{name}: {err}")
    if not found and infeasible:
        notes.append(f"{name}: {infeasible[-1]}")  # the largest layout tried: the most telling reason
    return found, notes
