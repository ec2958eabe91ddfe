"""The simulator beside the analytic colocated model (`planner.estimate`) on the same deployments.

    python bench/sim_vs_analytic.py

Closed loops of C clients on llama-3.1-8b, one H100, 1024/256 tokens, for both engine profiles: mean TTFT,
mean TPOT and output throughput from `estimate(..., concurrency=C, analytic=True)` and from `simulate` (C
warm-up requests, then 20 x C counted); the simulated TTFT with ShareGPT-like lengths; then offline throughput of
2,000 requests on four deployments. (bench/sim_strategies.py does the same for every strategy's plan.)
"""

from __future__ import annotations

import planner
from planner.sim import closed_loop, offline, simulate
from planner.specs.catalog import load_catalog
from planner.specs.precision import Dtype
from planner.specs.workload import Workload


def main() -> None:
    catalog = load_catalog()
    workload = Workload.fixed(1024, 256)
    print("closed loop, llama-3.1-8b on 1xH100, 1024/256 (analytic | simulated)")
    print(f"{'engine':7} {'C':>4} {'TTFT ms':>17} {'TPOT ms':>15} {'out tok/s':>15}")
    for engine in ("vllm", "trtllm"):
        for clients in (1, 4, 16, 64, 256):
            est = planner.estimate("llama-3.1-8b", "1xH100", concurrency=clients, engine=engine, analytic=True)
            model, cluster = catalog.model("llama-3.1-8b"), catalog.cluster("1xH100")
            deployment = catalog.deployment(model, cluster, 1, 1, Dtype.bf16, Dtype.bf16, catalog.engine(engine))
            sim = simulate(deployment, closed_loop(clients, 20 * clients, workload, warmup_requests=clients))
            assert est.ttft_s is not None
            print(
                f"{engine:7} {clients:4d} {est.ttft_s * 1e3:8.1f} {sim.ttft_s.mean * 1e3:8.1f} "
                f"{est.tpot_s * 1e3:7.2f} {sim.tpot_s.mean * 1e3:7.2f} "
                f"{est.output_throughput_tok_s:7.0f} {sim.output_throughput_tok_s:7.0f}"
            )
    print()
    print("closed loop, llama-3.1-8b on 1xH100 (vllm), sharegpt lengths: simulated mean TTFT ms")
    deployment = catalog.deployment(
        catalog.model("llama-3.1-8b"), catalog.cluster("1xH100"), 1, 1, Dtype.bf16, Dtype.bf16, catalog.engine("vllm")
    )
    for clients in (16, 64):
        stream = closed_loop(clients, 40 * clients, Workload.preset("sharegpt"), warmup_requests=4 * clients)
        print(f"C={clients:<4d} {simulate(deployment, stream).ttft_s.mean * 1e3:8.1f}")
    print()
    print("offline, 2,000 requests of 1024/256 (analytic | simulated output tok/s, simulated preemptions)")
    for model_id, gpus, tp, engine in (
        ("llama-3.1-8b", "8xH100", 1, "vllm"),
        ("llama-3.1-8b", "8xH100", 1, "trtllm"),
        ("llama-70b", "8xL20", 4, "vllm"),
        ("llama-70b", "8xL20", 4, "trtllm"),
    ):
        est = planner.estimate(model_id, gpus, tp=tp, engine=engine, num_requests=2000)
        model, cluster = catalog.model(model_id), catalog.cluster(gpus)
        deployment = catalog.deployment(model, cluster, tp, 1, Dtype.bf16, Dtype.bf16, catalog.engine(engine))
        sim = simulate(deployment, offline(2000, workload))
        print(
            f"{model_id:13} {gpus:7} TP{tp} x{deployment.replicas} {engine:7} "
            f"{est.output_throughput_tok_s:8.0f} {sim.output_throughput_tok_s:8.0f} {sim.preemptions:6d}"
        )


if __name__ == "__main__":
    main()
