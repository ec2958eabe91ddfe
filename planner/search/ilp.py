"""The integer program that picks how many instances of each type to run (PuLP with CBC).

Variables, per instance type t and pool p: n[t,p], instances (integer >= 0); per type: r[t], the request
rate it serves (continuous >= 0). Variables are per instance type, never per GPU: the program's size does not
grow with the cluster.

    r[t] <= limit[t,p] x n[t,p]                  every pool keeps up (flow balance for prefill/decode pools)
    r[t] x kv_bytes[t] <= link[t] x n[t,prefill]  the KV each request moves fits the prefill instances' links
    sum over t,p of gpus[t,p] x n[t,p] <= G[gpu]  GPU budget per GPU kind (node packing: instance sizes divide
                                                  the node or are whole nodes, planner.search.instances.packs)
    sum r[t] <= R                                 with a target rate (goodput objective)
    sum r[t] = R                                  min-gpus / min-cost objectives (the rest is headroom)

`limit` is the per-instance SLO rate (goodput objectives) or the offline capacity (throughput). Objectives:
`throughput` and `goodput` maximise sum r[t] (ties broken towards fewer GPUs by a small penalty); `min-gpus`
minimises GPUs and `min-cost` dollars per hour for the target rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import pulp

from planner.errors import PlannerError
from planner.search.instances import InstanceType


class Objective(str, Enum):
    goodput = "goodput"  # most requests/s within the SLOs on the GPUs given
    throughput = "throughput"  # most requests/s offline
    min_gpus = "min-gpus"  # fewest GPUs for a target rate within the SLOs
    min_cost = "min-cost"  # lowest $/h for a target rate within the SLOs


# Penalty per GPU in the maximising objectives, in requests/s: far below any rate difference that matters,
# enough to prefer the smaller of two plans that serve the same rate.
GPU_PENALTY = 1e-6
SOLVER_TIME_LIMIT_S = 20
# Programs solved at once by `solve_all`: each thread mostly waits for its CBC process, and two keep both cores of
# a small machine busy (more gained nothing measurable there).
SOLVER_THREADS = 2


@dataclass(frozen=True)
class Solution:
    """Counts per (type index, pool index) and the rate each type serves."""

    counts: dict[tuple[int, int], int]
    rates_req_s: dict[int, float]
    status: str
    hit_time_limit: bool

    @property
    def served_req_s(self) -> float:
        return sum(self.rates_req_s.values())


def _limit(t: InstanceType, pool_index: int, objective: Objective) -> float:
    pool = t.pools[pool_index]
    return pool.capacity_req_s if objective is Objective.throughput else pool.slo_rate_req_s


def build_problem(
    types: Sequence[InstanceType],
    budget: Mapping[str, int],
    objective: Objective,
    rate_req_s: float | None = None,
    price_per_gpu_h: Mapping[str, float] | None = None,
) -> tuple[pulp.LpProblem, dict[tuple[int, int], pulp.LpVariable], dict[int, pulp.LpVariable]]:
    """The program over `types` with `budget` GPUs per GPU id; named variables n_<t>_<p> and r_<t>."""
    sense = pulp.LpMinimize if objective in (Objective.min_gpus, Objective.min_cost) else pulp.LpMaximize
    problem = pulp.LpProblem("tdplan", sense)
    counts = {
        (i, j): problem.add_variable(f"n_{i}_{j}", lowBound=0, upBound=budget.get(t.gpu, 0) // pool.gpus, cat="Integer")
        for i, t in enumerate(types)
        for j, pool in enumerate(t.pools)
    }
    rates = {i: problem.add_variable(f"r_{i}", lowBound=0) for i in range(len(types))}
    gpus = pulp.lpSum(types[i].pools[j].gpus * n for (i, j), n in counts.items())
    if objective is Objective.min_gpus:
        problem += gpus
    elif objective is Objective.min_cost:
        prices = price_per_gpu_h or {}
        problem += pulp.lpSum(
            types[i].pools[j].gpus * prices.get(types[i].gpu, 0.0) * n for (i, j), n in counts.items()
        )
    else:
        problem += pulp.lpSum(rates.values()) - GPU_PENALTY * gpus
    for i, t in enumerate(types):
        for j in range(len(t.pools)):
            problem += rates[i] <= _limit(t, j, objective) * counts[(i, j)], f"pool_{i}_{j}"
        roles = [p.role for p in t.pools]
        if "prefill" in roles and t.kv_bytes_per_req > 0:
            j = roles.index("prefill")
            problem += rates[i] * t.kv_bytes_per_req <= t.kv_link_bytes_s_per_prefill * counts[(i, j)], f"kv_{i}"
    for gpu, available in budget.items():
        used = [types[i].pools[j].gpus * n for (i, j), n in counts.items() if types[i].gpu == gpu]
        if used:
            problem += pulp.lpSum(used) <= available, f"gpus_{gpu}"
    total = pulp.lpSum(rates.values())
    if objective in (Objective.min_gpus, Objective.min_cost):
        if rate_req_s is None:
            raise PlannerError(f"objective {objective.value} needs a target rate", "rate")
        problem += total == rate_req_s, "target"
    elif rate_req_s is not None and objective is Objective.goodput:
        problem += total <= rate_req_s, "offered"
    return problem, counts, rates


def solve(
    types: Sequence[InstanceType],
    budget: Mapping[str, int],
    objective: Objective,
    rate_req_s: float | None = None,
    price_per_gpu_h: Mapping[str, float] | None = None,
) -> Solution:
    """Solve the program with CBC (deterministic, serial, a time limit); the counts and rates found."""
    with _quiet_pulp():
        return _solve(types, budget, objective, rate_req_s, price_per_gpu_h)


def solve_all(
    type_sets: Sequence[Sequence[InstanceType]],
    budget: Mapping[str, int],
    objective: Objective,
    rate_req_s: float | None = None,
    price_per_gpu_h: Mapping[str, float] | None = None,
) -> list[Solution]:
    """`solve` for several programs on the same GPUs and objective (the recommendation, and each strategy
    alone), in order. CBC runs as a child process, so the solves overlap: on the cores there are, and with
    Python writing the next program. Each is the same program solved the same way: the same solutions."""
    with _quiet_pulp(), ThreadPoolExecutor(max_workers=SOLVER_THREADS) as pool:
        return list(pool.map(lambda types: _solve(types, budget, objective, rate_req_s, price_per_gpu_h), type_sets))


@contextmanager
def _quiet_pulp() -> Iterator[None]:
    """PuLP 3.x announces that its bundled CBC moves to an extra in 4.0; pyproject pins pulp below 4. The filter
    is set by the calling thread, around the solver threads (warning filters are the process's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _solve(
    types: Sequence[InstanceType],
    budget: Mapping[str, int],
    objective: Objective,
    rate_req_s: float | None,
    price_per_gpu_h: Mapping[str, float] | None,
) -> Solution:
    problem, counts, rates = build_problem(types, budget, objective, rate_req_s, price_per_gpu_h)
    # No `threads` option: CBC's default (0) branches and bounds in its main thread. `threads 1` starts a worker
    # thread whose wake-up the bundled CBC can miss, then sits out a 10 s timed wait (about one solve in 200: the
    # "CBC stall"), and costs a thread start on every solve; the serial search finds the same solutions.
    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=SOLVER_TIME_LIMIT_S, options=["randomSeed 1"])
    problem.solve(solver)
    status = pulp.LpStatus[problem.status]
    hit_limit = status == "Not Solved" or (status == "Optimal" and problem.sol_status == pulp.LpSolutionIntegerFeasible)
    return Solution(
        counts={key: round(var.value() or 0) for key, var in counts.items()},
        rates_req_s={i: max(0.0, var.value() or 0.0) for i, var in rates.items()},
        status=status,
        hit_time_limit=hit_limit,
    )
