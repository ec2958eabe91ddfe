"""Wall time of the simulator on 10,000 requests of 8-GPU deployments, with the simulated figures.

    python bench/sim_speed.py

Engines' schedulers on data-parallel replicas, then the pipelined strategies' schedulers on llama-2-70b over
8 L20s (TP1 PP8, the headline plan's layout). Each case is run twice and the faster wall time printed (the
first run also pays for compiling the cost model); the target is under 2 s per case on the development machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from planner.comparison import build_context
from planner.sim import RequestStream, SimResult, closed_loop, offline, poisson, simulate
from planner.sim.policy import Role
from planner.sim.setup import PoolLayout, sim_pools
from planner.sim.simulate import simulate_pools
from planner.specs.catalog import load_catalog
from planner.specs.deployment import Deployment
from planner.specs.precision import Dtype
from planner.specs.workload import Workload

REQUESTS = 10_000


Runner = Callable[[RequestStream], SimResult]


def deployments() -> dict[str, Runner]:
    catalog = load_catalog()

    def build(model: str, gpus: str, tp: int, engine: str) -> Deployment:
        spec = catalog.model(model)
        return catalog.deployment(spec, catalog.cluster(gpus), tp, 1, Dtype.bf16, Dtype.bf16, catalog.engine(engine))

    def engine(deployment: Deployment) -> Runner:
        return lambda stream: simulate(deployment, stream)

    def strategy(name: str) -> Runner:
        ctx = build_context(
            catalog, "llama-2-70b", "8xL20", Workload.preset("sharegpt"), "bf16", None, None, None, None
        )
        pools, transfer = sim_pools(ctx, name, None, [PoolLayout(Role.serve, 1, 8, 1)])
        return lambda stream: simulate_pools(pools, stream, transfer)

    return {
        "llama-3.1-8b 8xH100 TP1 x8 vllm": engine(build("llama-3.1-8b", "8xH100", 1, "vllm")),
        "llama-3.1-8b 8xH100 TP1 x8 trtllm": engine(build("llama-3.1-8b", "8xH100", 1, "trtllm")),
        "llama-70b 8xL20 TP4 x2 vllm": engine(build("llama-70b", "8xL20", 4, "vllm")),
        "llama-2-70b 8xL20 TP1 PP8 throttled": strategy("throttled-pipeline"),
        "llama-2-70b 8xL20 TP1 PP8 temporal": strategy("temporal-pipeline"),
    }


def streams(capacity_req_s: float) -> dict[str, RequestStream]:
    """The cases; the Poisson rate is 80% of the offline request rate of the same workload."""
    fixed, sharegpt = Workload.fixed(1024, 256), Workload.preset("sharegpt")
    return {
        "offline 1024/256": offline(REQUESTS, fixed),
        "offline sharegpt": offline(REQUESTS, sharegpt),
        f"poisson {0.8 * capacity_req_s:.1f} req/s sharegpt": poisson(0.8 * capacity_req_s, REQUESTS, sharegpt),
        "closed loop C=256 sharegpt": closed_loop(256, REQUESTS, sharegpt, warmup_requests=256),
    }


def timed(run: Runner, stream: RequestStream) -> tuple[float, SimResult]:
    best, result = float("inf"), None
    for _ in range(2):
        start = time.perf_counter()
        result = run(stream)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def main() -> None:
    print(
        f"{'deployment':36} {'stream':34} {'wall s':>7} {'iters':>8} {'out tok/s':>10} {'TTFT p50 s':>10} "
        f"{'TPOT p50 ms':>11} {'preempt':>7}"
    )
    for name, run in deployments().items():
        capacity_req_s = run(offline(REQUESTS, Workload.preset("sharegpt"))).request_throughput_req_s
        for label, stream in streams(capacity_req_s).items():
            wall_s, result = timed(run, stream)
            print(
                f"{name:36} {label:34} {wall_s:7.2f} {result.iterations:8d} {result.output_throughput_tok_s:10.0f} "
                f"{result.ttft_s.p50:10.3f} {result.tpot_s.p50 * 1e3:11.2f} {result.preemptions:7d}"
            )


if __name__ == "__main__":
    main()
