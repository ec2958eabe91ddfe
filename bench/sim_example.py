"""A Poisson stream of ShareGPT-like requests on two vLLM replicas of llama-3.1-8b (one H100 each).

python bench/sim_example.py
"""

from __future__ import annotations

from planner.sim import Slo, poisson, simulate
from planner.specs.catalog import load_catalog
from planner.specs.precision import Dtype
from planner.specs.workload import Workload


def main() -> None:
    catalog = load_catalog()
    model, cluster, engine = catalog.model("llama-3.1-8b"), catalog.cluster("2xH100"), catalog.engine("vllm")
    deployment = catalog.deployment(model, cluster, 1, 1, Dtype.bf16, Dtype.bf16, engine)
    stream = poisson(20.0, 2000, Workload.preset("sharegpt"))
    result = simulate(deployment, stream, slo=Slo(ttft_s=0.2, tpot_s=0.02))
    print(result.scheduler, result.replicas, result.stream)
    print(f"output {result.output_throughput_tok_s:.0f} tok/s, {result.request_throughput_req_s:.2f} req/s")
    print(f"TTFT p50 {result.ttft_s.p50 * 1e3:.1f} ms, p99 {result.ttft_s.p99 * 1e3:.1f} ms")
    print(f"TPOT p50 {result.tpot_s.p50 * 1e3:.2f} ms, ITL p99 {result.itl_s.p99 * 1e3:.2f} ms")
    print(f"SLO attainment {result.slo_attainment:.3f}, preemptions {result.preemptions}")
    busy = result.busy
    print(f"busy: prefill {busy.prefill_s:.1f} s, decode {busy.decode_s:.1f} s, mixed {busy.mixed_s:.1f} s")


if __name__ == "__main__":
    main()
