"""The pipelined strategies' analytic latencies beside their simulation, under Poisson load.

    python bench/pipeline_latency_vs_sim.py              # 20,000 requests per simulated point (about 2 minutes)
    python bench/pipeline_latency_vs_sim.py --requests 5000

Llama-2-70B (bf16, the engine profile tdplan picks) on 8 L20s, each strategy with its default knobs, at shares
of the analytic capacity of the layout: `Strategy.latencies` against `planner.sim` running the strategy's own
scheduler (`sim_pools`) on a Poisson stream of the same rate and workload, seed 0. Each cell prints predicted /
simulated - 1 for TTFT p50, TTFT p90, TPOT p50 and TPOT p90 (percent), then the simulated values in ms. The
tables in docs/strategies/throttled-pipeline.md and temporal-pipeline.md quote this output.
"""

from __future__ import annotations

import argparse

import numpy as np

from planner.comparison import build_context
from planner.sim import poisson
from planner.sim.policy import Role
from planner.sim.setup import PoolLayout, sim_pools
from planner.sim.simulate import simulate_pools
from planner.specs.catalog import load_catalog
from planner.specs.workload import Workload
from planner.strategies import get_strategy
from planner.strategies.base import Candidate

GPUS = 8
CASES = {  # strategy: [(workload, TP, PP)], loads
    "throttled-pipeline": ([("sharegpt", 1, 8), ("azure-conv", 1, 8), ("sharegpt", 2, 4)], (0.3, 0.6, 0.8, 0.9)),
    "temporal-pipeline": ([("sharegpt", 1, 8), ("sharegpt", 2, 4)], (0.5, 0.8, 0.9, 0.95)),
}


def percentiles(ttft_s: np.ndarray, tpot_s: np.ndarray) -> list[float]:
    return [float(np.percentile(values, q)) for values in (ttft_s, tpot_s) for q in (50, 90)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per simulated point")
    args = parser.parse_args()
    catalog = load_catalog()
    print("predicted / simulated - 1 (%): TTFT p50, TTFT p90, TPOT p50, TPOT p90 | simulated ms")
    for name, (cases, loads) in CASES.items():
        strategy = get_strategy(name)
        knobs = {knob.name: float(knob.default) for knob in strategy.knobs}
        for workload, tp, pp in cases:
            ctx = build_context(
                catalog, "llama-2-70b", f"{GPUS}xL20", Workload.preset(workload), "bf16", None, None, None, None
            )
            replicas = GPUS // (tp * pp)
            candidate = Candidate(strategy=name, tp=tp, pp=pp, replicas=replicas, gpus_used=GPUS, knobs=knobs)
            capacity = strategy.capacity_req_s(ctx, candidate)
            pools, transfer = sim_pools(ctx, name, knobs, [PoolLayout(Role.serve, tp, pp, replicas)])
            print(f"{name} {workload} TP{tp} PP{pp} x{replicas}: capacity {capacity:.2f} req/s")
            for load in loads:
                rate = load * capacity
                lat = strategy.latencies(ctx, candidate, rate)
                sim = simulate_pools(pools, poisson(rate, args.requests, ctx.workload), transfer, seed=0)
                simulated = [sim.ttft_s.p50, sim.ttft_s.p90, sim.tpot_s.p50, sim.tpot_s.p90]
                if lat is None:
                    errors = "beyond the model's capacity"
                else:
                    predicted = percentiles(np.asarray(lat.ttft_s), np.asarray(lat.tpot_s))
                    errors = " ".join(f"{p / s - 1:+4.0%}" for p, s in zip(predicted, simulated, strict=True))
                print(f"  {load:4.0%} {rate:6.2f} req/s  {errors} | " + " ".join(f"{s * 1e3:6.0f}" for s in simulated))


if __name__ == "__main__":
    main()
