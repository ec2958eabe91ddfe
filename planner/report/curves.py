"""The report's curves for one GPU kind, all from one tabulation of its instance types.

Instance types (planner.search.instances) are tabulated once, on the largest fleet of that GPU kind in the
sweep and against the report's SLOs (TTFT 1 s / TPOT 0.1 s at 90% when none are given). Then:

- the throughput-latency frontier: every type's p90 TPOT against its output tokens/s per GPU at
  FRONTIER_FRACTIONS of its offline capacity, one instance of each pool, and each strategy's Pareto front
  (no other of its points has both more throughput per GPU and a lower TPOT);
- goodput against GPU count: the integer program (planner.search.ilp) at GPU_MULTIPLES of the fleet size,
  over every type and over each strategy's types alone;
- GPUs needed against request rate: the min-gpus program at RATE_FRACTIONS of the goodput of the largest
  count, and the report's target rates; with a price for the GPU, that plan's dollars per million output
  tokens.

Instances are at most as large as the fleet given; larger counts replicate them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from planner.comparison import build_context, build_slo
from planner.search.ilp import Objective, Solution, solve
from planner.search.instances import InstanceType, instance_types
from planner.search.plan import type_latencies
from planner.specs.catalog import Catalog
from planner.strategies.base import Slo

if TYPE_CHECKING:
    from planner.report.capacity import ReportSpec

FRONTIER_FRACTIONS = (0.2, 0.5, 0.8, 0.95)
GPU_MULTIPLES = (0.25, 0.5, 1, 2, 4, 8)
RATE_FRACTIONS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
TPOT_QUANTILE = 0.9
SECONDS_PER_HOUR = 3600


class Curves(BaseModel):
    """The curves of one GPU kind. Points are (x, y) pairs in the units their names give."""

    model_config = ConfigDict(frozen=True)

    gpu: str  # catalog id
    fleet_gpus: int  # the fleet size the instance types were tabulated on
    slo: Slo
    frontier_points: dict[str, list[tuple[float, float]]]  # strategy -> (output tok/s per GPU, p90 TPOT s)
    frontier: dict[str, list[tuple[float, float]]]  # strategy -> its Pareto front, by throughput
    goodput_req_s: dict[str, list[tuple[int, float]]]  # "best" or strategy -> (GPUs, goodput req/s)
    gpus_needed: list[tuple[float, int]]  # (target req/s, fewest GPUs within the SLOs)
    usd_per_mtok: list[tuple[float, float]]  # (target req/s, USD per million output tokens); empty: no price
    memory_gib: dict[str, dict[str, float]]  # instance label -> part -> GiB per GPU, each strategy's best type
    notes: list[str]


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both more throughput (x) and lower latency (y), by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (-p[0], p[1])):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return sorted(front)


def frontier_points(types: Sequence[InstanceType], mean_output_len: float) -> dict[str, list[tuple[float, float]]]:
    """(output tok/s per GPU, p90 TPOT) of one instance of every type at FRONTIER_FRACTIONS of its capacity."""
    points: dict[str, list[tuple[float, float]]] = {}
    for t in types:
        capacity = min(p.capacity_req_s for p in t.pools)
        gpus = sum(p.gpus for p in t.pools)
        for fraction in FRONTIER_FRACTIONS:
            lat = type_latencies(t, [1] * len(t.pools), fraction * capacity)
            if lat is None or len(lat.tpot_s) == 0:
                continue
            tpot = sorted(float(v) for v in lat.tpot_s)[min(int(TPOT_QUANTILE * len(lat.tpot_s)), len(lat.tpot_s) - 1)]
            points.setdefault(t.strategy, []).append((fraction * capacity * mean_output_len / gpus, tpot))
    return points


def _gpus(types: Sequence[InstanceType], solution: Solution) -> int:
    return sum(types[i].pools[j].gpus * n for (i, j), n in solution.counts.items())


def _served(types: Sequence[InstanceType], budget: dict[str, int]) -> float:
    solution = solve(types, budget, Objective.goodput)
    return solution.served_req_s if solution.status == "Optimal" else 0.0


def best_memory(types: Sequence[InstanceType]) -> dict[str, dict[str, float]]:
    """Memory per GPU of each strategy's type with the most goodput per GPU."""
    best: dict[str, InstanceType] = {}
    for t in types:
        per_gpu = min(p.slo_rate_req_s for p in t.pools) / sum(p.gpus for p in t.pools)
        held = best.get(t.strategy)
        if held is None or per_gpu > min(p.slo_rate_req_s for p in held.pools) / sum(p.gpus for p in held.pools):
            best[t.strategy] = t
    return {best[name].label: dict(best[name].memory_gib) for name in sorted(best)}


def build_curves(spec: ReportSpec, catalog: Catalog, gpu: str, count: int) -> Curves:
    """The curves of `count` x `gpu` for the report `spec`."""
    work = spec.requests()
    ctx = build_context(catalog, spec.model, f"{count}x{gpu}", work, spec.dtype, spec.kv_dtype, spec.engine,
                        spec.network, None)  # fmt: skip
    slo = build_slo(spec.ttft, spec.tpot, 0.9 if spec.attainment is None else spec.attainment)
    types, notes = instance_types(ctx, list(spec.strategies) or None, slo)
    gpu_id = ctx.cluster.gpu.id
    if not types:
        notes.append(f"no instance of {spec.model} fits on {count} x {gpu_id}")
        return Curves(gpu=gpu_id, fleet_gpus=count, slo=slo, frontier_points={}, frontier={}, goodput_req_s={},
                      gpus_needed=[], usd_per_mtok=[], memory_gib={}, notes=notes)  # fmt: skip
    points = frontier_points(types, work.mean_output_len)
    counts = sorted({max(1, round(count * m)) for m in GPU_MULTIPLES})
    strategies = sorted({t.strategy for t in types})
    goodput: dict[str, list[tuple[int, float]]] = {"best": [(n, _served(types, {gpu_id: n})) for n in counts]}
    for name in strategies:
        sub = [t for t in types if t.strategy == name]
        goodput[name] = [(n, _served(sub, {gpu_id: n})) for n in counts]
    budget = counts[-1]
    top = goodput["best"][-1][1]
    rates = sorted({round(top * f, 6) for f in RATE_FRACTIONS if top * f > 0} | {r for r in spec.rates if r <= top})
    needed: list[tuple[float, int]] = []
    for rate in rates:
        solution = solve(types, {gpu_id: budget}, Objective.min_gpus, rate)
        if solution.status == "Optimal":
            needed.append((rate, _gpus(types, solution)))
    price = dict(spec.prices)
    price_h = next((usd for name, usd in price.items() if catalog.gpu(name).id == gpu_id), None)
    cost = []
    if price_h is not None:
        cost = [
            (rate, gpus * price_h / (rate * work.mean_output_len * SECONDS_PER_HOUR) * 1e6) for rate, gpus in needed
        ]
    return Curves(
        gpu=gpu_id,
        fleet_gpus=count,
        slo=slo,
        frontier_points=points,
        frontier={name: pareto(p) for name, p in points.items()},
        goodput_req_s=goodput,
        gpus_needed=needed,
        usd_per_mtok=cost,
        memory_gib=best_memory(types),
        notes=notes,
    )
