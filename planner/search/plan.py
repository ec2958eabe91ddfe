"""A plan: the instances the integer program chose and what they are predicted to deliver.

`assemble()` turns a solved program into a `Plan`: the instances per (type, pool) with the GPUs and nodes they
take, and the predicted throughput, goodput and latency percentiles, from each strategy's own latency model at
the per-instance rate the plan gives it (mixed over instance types in proportion to the rate each serves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from planner.search.ilp import Solution
from planner.search.instances import InstanceType, replace_cluster
from planner.strategies import get_strategy
from planner.strategies.base import Latencies, Slo


class PlannedInstance(BaseModel):
    """Instances of one pool of one instance type."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    role: str  # serve | prefill | decode
    gpu: str
    tp: int
    pp: int
    count: int
    gpus: int  # GPUs all `count` instances take
    knobs: dict[str, float]
    nodes: list[int]  # node indices (0-based, per GPU kind) the instances occupy
    capacity_req_s: float  # offline, per instance
    slo_rate_req_s: float  # largest rate per instance within the SLOs
    planned_rate_req_s: float  # what the plan sends to each instance
    memory_gib: dict[str, float]
    detail: dict[str, Any] = {}
    type_id: int = 0  # the instance type it belongs to: a disaggregated type's prefill and decode pools share it


class Predicted(BaseModel):
    """What the plan delivers: its throughput on the objective (offline capacity, or the rate served within the
    SLOs), and latency percentiles at `latency_at_req_s`: the target rate, else the goodput rate, else (offline)
    90% of the capacity."""

    model_config = ConfigDict(frozen=True)

    request_throughput_req_s: float
    output_throughput_tok_s: float
    capacity_req_s: float  # offline, all instances
    goodput_req_s: float | None
    latency_at_req_s: float
    slo_attainment: float | None
    ttft_s: float | None
    tpot_s: float | None
    ttft_p90_s: float | None
    tpot_p90_s: float | None
    ttft_p99_s: float | None
    tpot_p99_s: float | None


class Plan(BaseModel):
    """The recommended deployment."""

    model_config = ConfigDict(frozen=True)

    objective: str
    strategy: str  # the strategy serving the largest share of the requests
    instances: list[PlannedInstance]
    prefill_decode_ratio: str | None
    gpus_used: int
    gpus_available: int
    cost_usd_per_h: float | None
    predicted: Predicted
    expected_error_pct: float | None
    calibration_basis: str
    solver_status: str


def _nodes(first_gpu: int, gpus_each: int, count: int, gpus_per_node: int) -> tuple[list[int], int]:
    """Nodes that `count` instances of `gpus_each` GPUs occupy when laid out from GPU `first_gpu` on (instances
    of sizes that divide the node never straddle one: planner.search.instances.packs)."""
    last_gpu = first_gpu + count * gpus_each - 1
    return list(range(first_gpu // gpus_per_node, last_gpu // gpus_per_node + 1)), last_gpu + 1


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(index, len(values) - 1)])


def type_latencies(t: InstanceType, counts: Sequence[int], rate_req_s: float) -> Latencies | None:
    """The strategy's latencies for `counts` instances of the type's pools sharing `rate_req_s`."""
    strategy = get_strategy(t.strategy)
    if len(t.pools) == 1:
        return strategy.latencies(t.ctx, t.candidate, rate_req_s / max(counts[0], 1))
    from planner.cost.comm import link_efficiency
    from planner.strategies.disaggregated import Disaggregated, kv_link

    assert isinstance(strategy, Disaggregated)
    prefill, decode = t.pools
    n_p, n_d = max(counts[0], 1), max(counts[1], 1)
    ctx = replace(t.ctx, cluster=replace_cluster(t.ctx, n_p * prefill.gpus + n_d * decode.gpus))
    in_node = t.detail.get("placement") == "in-node"
    link = kv_link(
        ctx, prefill.gpus, decode.gpus, n_p, n_d, in_node, link_efficiency(ctx.deployment(decode.tp, decode.pp))
    )
    candidate = strategy.build_candidate(
        ctx, (prefill.tp, prefill.pp), (decode.tp, decode.pp), n_p, n_d, str(t.detail.get("placement")), link
    )
    return strategy.latencies(ctx, candidate, rate_req_s)


def predict(
    types: Sequence[InstanceType], solution: Solution, slo: Slo | None, rate_req_s: float, mean_output_len: float
) -> Predicted:
    """The plan's throughput (the rate the solution serves) and its latency percentiles at `rate_req_s`, split
    over the types as the solution splits its rate."""
    served = solution.served_req_s
    capacity = 0.0
    ttft, tpot, weights = [], [], []
    for i, t in enumerate(types):
        counts = [solution.counts.get((i, j), 0) for j in range(len(t.pools))]
        if not all(counts):
            continue
        capacity += min(p.capacity_req_s * n for p, n in zip(t.pools, counts, strict=True))
        share = solution.rates_req_s.get(i, 0.0) / served if served > 0 else 0.0
        if share <= 0:
            continue
        lat = type_latencies(t, counts, rate_req_s * share)
        if lat is None:
            return _unbounded(served, rate_req_s, capacity, mean_output_len)
        ttft.append(lat.ttft_s)
        tpot.append(lat.tpot_s)
        weights.append(np.full(len(lat.ttft_s), share / len(lat.ttft_s)))
    if not ttft:
        return _unbounded(served, rate_req_s, capacity, mean_output_len)
    t_all, p_all, w_all = np.concatenate(ttft), np.concatenate(tpot), np.concatenate(weights)
    met = None
    if slo is not None:
        met = float(np.sum(w_all * ((t_all <= slo.ttft_s) & (p_all <= slo.tpot_s))) / np.sum(w_all))
    return Predicted(
        request_throughput_req_s=served,
        output_throughput_tok_s=served * mean_output_len,
        capacity_req_s=capacity,
        goodput_req_s=served if slo is not None else None,
        latency_at_req_s=rate_req_s,
        slo_attainment=met,
        ttft_s=float(np.average(t_all, weights=w_all)),
        tpot_s=float(np.average(p_all, weights=w_all)),
        ttft_p90_s=_weighted_quantile(t_all, w_all, 0.9),
        tpot_p90_s=_weighted_quantile(p_all, w_all, 0.9),
        ttft_p99_s=_weighted_quantile(t_all, w_all, 0.99),
        tpot_p99_s=_weighted_quantile(p_all, w_all, 0.99),
    )


def _unbounded(served: float, rate_req_s: float, capacity: float, mean_output_len: float) -> Predicted:
    """The plan's throughput without latencies: its model finds no steady state at `rate_req_s`."""
    return Predicted(
        request_throughput_req_s=served,
        output_throughput_tok_s=served * mean_output_len,
        capacity_req_s=capacity,
        goodput_req_s=None,
        latency_at_req_s=rate_req_s,
        slo_attainment=None,
        ttft_s=None,
        tpot_s=None,
        ttft_p90_s=None,
        tpot_p90_s=None,
        ttft_p99_s=None,
        tpot_p99_s=None,
    )


def instances(types: Sequence[InstanceType], solution: Solution) -> list[PlannedInstance]:
    """The chosen instances, laid out on each GPU kind's nodes in order (largest instances first)."""
    chosen = [(i, j) for (i, j), n in solution.counts.items() if n > 0]
    chosen.sort(key=lambda key: (types[key[0]].gpu, -types[key[0]].pools[key[1]].gpus, key))
    next_gpu: dict[str, int] = {}
    type_ids: dict[int, int] = {}
    out = []
    for i, j in chosen:
        t, pool, n = types[i], types[i].pools[j], solution.counts[(i, j)]
        nodes, next_gpu[t.gpu] = _nodes(next_gpu.get(t.gpu, 0), pool.gpus, n, t.ctx.cluster.gpus_per_node)
        rate = solution.rates_req_s.get(i, 0.0) / n
        out.append(
            PlannedInstance(
                strategy=t.strategy,
                role=pool.role,
                gpu=t.gpu,
                tp=pool.tp,
                pp=pool.pp,
                count=n,
                gpus=n * pool.gpus,
                knobs=t.knobs,
                nodes=nodes,
                capacity_req_s=pool.capacity_req_s,
                slo_rate_req_s=pool.slo_rate_req_s,
                planned_rate_req_s=rate,
                memory_gib=t.memory_gib,
                detail=t.detail,
                type_id=type_ids.setdefault(i, len(type_ids)),
            )
        )
    return out


def ratio(planned: Sequence[PlannedInstance]) -> str | None:
    """prefill:decode instance counts, where the plan has both."""
    prefill = sum(p.count for p in planned if p.role == "prefill")
    decode = sum(p.count for p in planned if p.role == "decode")
    if not prefill or not decode:
        return None
    g = math.gcd(prefill, decode)
    return f"{prefill // g}:{decode // g}"


def main_strategy(types: Sequence[InstanceType], solution: Solution) -> str:
    by_strategy: dict[str, float] = {}
    for i, rate in solution.rates_req_s.items():
        by_strategy[types[i].strategy] = by_strategy.get(types[i].strategy, 0.0) + rate
    return max(by_strategy, key=lambda s: by_strategy[s]) if by_strategy else "-"


class TypeSummary(BaseModel):
    """One instance type the planner evaluated, per instance of each pool."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    label: str
    gpu: str
    knobs: dict[str, float]
    pools: list[dict[str, Any]]  # role, tp, pp, gpus, capacity_req_s, slo_rate_req_s
