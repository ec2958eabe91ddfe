"""Every strategy's best plan, as `recommend` predicts it and as the simulator runs it.

    python bench/sim_strategies.py

Two scenarios, each strategy alone (`recommend --strategy S`), its plan then simulated with that strategy's own
scheduler (`simulate --plan`, planner.sim.setup):
- offline throughput: llama-2-70b on 8 L20s, ShareGPT-like lengths: predicted capacity against the simulated
  offline throughput of 5,000 requests, over the whole run (ramp-up and drain included, as a benchmark of that
  many requests measures it) and in steady state (the middle half of the completions: 2,500 requests over the
  time between the 1,250th and the 3,750th finish);
- goodput: llama-3.1-8b on 4 A100s, ShareGPT-like lengths, TTFT 0.5 s and TPOT 50 ms at 90%: the predicted mean
  TTFT, TPOT and attainment at the planned rate against a Poisson stream of 2,000 requests at that rate.
Prints the figures; exits 0 whatever they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.errors import PlannerError
from planner.recommendation import plan_payload, recommend
from planner.sim import SimResult
from planner.sim.setup import SIMULATED_STRATEGIES
from planner.simulation import simulate_plan
from planner.specs.catalog import load_catalog


def payload(catalog: Any, strategy: str, **scenario: Any) -> dict[str, Any] | None:
    try:
        rec = recommend(strategies=[strategy], alternative_plans=False, catalog=catalog, **scenario)
    except PlannerError:
        return None
    return {"inputs": {"model": scenario["model"], "gpus": scenario["gpus"]}, **plan_payload(rec)}


def steady_req_s(result: SimResult) -> float:
    """Completions per second over the middle half of the finishes."""
    finish = np.sort(np.array(result.requests.finish_s))
    low, high = len(finish) // 4, 3 * len(finish) // 4
    return (high - low) / float(finish[high] - finish[low])


def main() -> None:
    catalog = load_catalog()
    offline = {"model": "llama-2-70b", "gpus": "8xL20", "workload": "sharegpt"}
    print("offline, llama-2-70b on 8xL20, sharegpt (predicted | simulated req/s: whole run, steady state; difference)")
    for strategy in SIMULATED_STRATEGIES:
        plan = payload(catalog, strategy, **offline)
        if plan is None:
            print(f"{strategy:19} no feasible plan")
            continue
        predicted = plan["plan"]["predicted"]["request_throughput_req_s"]
        sims = simulate_plan(plan, 5000, catalog=catalog)
        simulated = sum(r.request_throughput_req_s for _, r in sims)
        steady = sum(steady_req_s(r) for _, r in sims)
        label = " + ".join(f"{i['count']}x TP{i['tp']}PP{i['pp']}" for i in plan["plan"]["instances"])
        print(
            f"{strategy:19} {label:24} {predicted:7.2f} {simulated:7.2f} {steady:7.2f} "
            f"{simulated / predicted - 1:+7.1%} {steady / predicted - 1:+7.1%}"
        )
    print()
    goodput = {"model": "llama-3.1-8b", "gpus": "4xA100", "workload": "sharegpt", "ttft": 0.5, "tpot": 0.05}
    print("goodput, llama-3.1-8b on 4xA100, sharegpt, TTFT 0.5 s / TPOT 50 ms at 90%: at the planned rate")
    print(f"{'':44} {'req/s':>6} {'TTFT ms':>17} {'TPOT ms':>15} {'attainment':>15}")
    for strategy in SIMULATED_STRATEGIES:
        plan = payload(catalog, strategy, **goodput)
        if plan is None:
            print(f"{strategy:19} no feasible plan")
            continue
        p = plan["plan"]["predicted"]
        sims = simulate_plan(plan, 2000, catalog=catalog)
        rate = sum(r.request_throughput_req_s for _, r in sims)
        weights = [r.request_throughput_req_s / rate for _, r in sims]
        ttft = sum(w * r.ttft_s.mean for w, (_, r) in zip(weights, sims, strict=True))
        tpot = sum(w * r.tpot_s.mean for w, (_, r) in zip(weights, sims, strict=True))
        met = sum(w * (r.slo_attainment or 0.0) for w, (_, r) in zip(weights, sims, strict=True))
        label = " + ".join(f"{i['count']}x TP{i['tp']}PP{i['pp']}" for i in plan["plan"]["instances"])
        print(
            f"{strategy:19} {label:24} {p['latency_at_req_s']:6.2f} {(p['ttft_s'] or 0) * 1e3:8.1f} {ttft * 1e3:8.1f} "
            f"{(p['tpot_s'] or 0) * 1e3:7.1f} {tpot * 1e3:7.1f} {p['slo_attainment'] or 0:7.1%} {met:7.1%}"
        )


if __name__ == "__main__":
    main()
