"""`recommend --verify`: the plans run through the discrete-event simulator at the load they were planned for.

Each instance type of a plan (its pools, their instance counts, and the rate the plan sends it) is simulated
under Poisson arrivals of the workload's requests, as the strategy runs in the simulator (planner.sim.setup).
The plan's figures are then the rate-weighted mixture over its groups. A plan *disagrees* with its prediction
when the simulated mean TTFT or TPOT differs from the predicted one by more than TOLERANCE, or when it misses
the attainment target that the prediction meets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from planner.search.ilp import Solution
from planner.search.instances import InstanceType
from planner.search.plan import Predicted
from planner.strategies.base import Slo

# The simulator (planner.sim) is imported by the functions below, not here: recommend() imports this module for
# `Verification`, and loading the simulator would cost every plan a tenth of a second it uses only with --verify.

TOLERANCE = 0.25  # relative difference in mean TTFT or TPOT beyond which simulation and analysis disagree
REQUESTS = 1000  # requests simulated per instance group


class Verification(BaseModel):
    """One plan's predicted and simulated figures at the same load."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    rate_req_s: float
    predicted_ttft_s: float | None
    simulated_ttft_s: float
    predicted_tpot_s: float | None
    simulated_tpot_s: float
    predicted_attainment: float | None
    simulated_attainment: float | None
    disagrees: bool
    reason: str


def simulatable(types: Sequence[InstanceType], solution: Solution) -> bool:
    """Every chosen instance type runs a strategy whose schedulers the simulator has."""
    from planner.sim.setup import SIMULATED_STRATEGIES

    return all(types[i].strategy in SIMULATED_STRATEGIES for (i, _), n in solution.counts.items() if n)


def verify(
    strategy: str,
    types: Sequence[InstanceType],
    solution: Solution,
    predicted: Predicted,
    slo: Slo | None,
    seed: int = 0,
) -> Verification:
    """Simulate each instance group at its share of `predicted.latency_at_req_s` and compare."""
    from planner.sim import Slo as SimSlo
    from planner.sim import poisson
    from planner.sim.policy import Role
    from planner.sim.setup import PoolLayout, sim_pools
    from planner.sim.simulate import simulate_pools

    served = solution.served_req_s
    ttft, tpot, met, weights = [], [], [], []
    for i in sorted({i for (i, _), n in solution.counts.items() if n}):
        share = solution.rates_req_s.get(i, 0.0) / served if served > 0 else 0.0
        if share <= 0:
            continue
        t = types[i]
        layouts = [
            PoolLayout(Role(pool.role), pool.tp, pool.pp, solution.counts.get((i, j), 0))
            for j, pool in enumerate(t.pools)
        ]
        sim_slo = SimSlo(ttft_s=slo.ttft_s, tpot_s=slo.tpot_s) if slo is not None else None
        pools, transfer = sim_pools(t.ctx, t.strategy, t.knobs, layouts, t.detail, sim_slo)
        stream = poisson(predicted.latency_at_req_s * share, REQUESTS, t.ctx.workload)
        result = simulate_pools(pools, stream, transfer, slo=sim_slo, seed=seed)
        ttft.append(result.ttft_s.mean)
        tpot.append(result.tpot_s.mean)
        met.append(result.slo_attainment if result.slo_attainment is not None else np.nan)
        weights.append(share)
    w = np.array(weights)
    sim_ttft, sim_tpot = float(np.average(ttft, weights=w)), float(np.average(tpot, weights=w))
    sim_met = float(np.average(met, weights=w)) if slo is not None else None
    reasons = []
    for name, predicted_s, simulated_s in (("TTFT", predicted.ttft_s, sim_ttft), ("TPOT", predicted.tpot_s, sim_tpot)):
        if predicted_s and abs(simulated_s / predicted_s - 1) > TOLERANCE:
            reasons.append(f"simulated mean {name} {simulated_s * 1e3:.1f} ms vs predicted {predicted_s * 1e3:.1f} ms")
    if slo is not None and sim_met is not None and sim_met < slo.attainment <= (predicted.slo_attainment or 0):
        reasons.append(f"simulated SLO attainment {sim_met:.1%} below the {slo.attainment:.0%} target")
    return Verification(
        strategy=strategy,
        rate_req_s=predicted.latency_at_req_s,
        predicted_ttft_s=predicted.ttft_s,
        simulated_ttft_s=sim_ttft,
        predicted_tpot_s=predicted.tpot_s,
        simulated_tpot_s=sim_tpot,
        predicted_attainment=predicted.slo_attainment,
        simulated_attainment=sim_met,
        disagrees=bool(reasons),
        reason="; ".join(reasons) or f"agrees within {TOLERANCE:.0%}",
    )
