"""The seed systems' results, in simulation (each strategy's own scheduler, planner.sim.setup), where the
simulator can check them with the data in the repository.

TD-Pipe (ICPP'25) reports up to 1.91x the throughput of tensor parallelism on PCIe nodes; gLLM (SC'25) a
token-throttled pipeline beyond it. On 8 L20s (PCIe, no NVLink), Llama-2-70B, ShareGPT-like lengths, offline:
both pipelines (TP1 PP8) must complete more requests per second than TP8, whose two all-reduces per layer
cross PCIe.

DistServe (OSDI'24) serves OPT-13B on A100s under TTFT 0.2-0.25 s / TPOT 0.1 s with a prefill TP2 + decode TP1
segment against vLLM TP1 (its simulator's example: TTFT 0.2 s, 1.56 req/s/GPU for the segment), and wins on
its ShareGPT construction (long multi-turn prompts, short outputs). That construction is not in the
repository; the check runs on long prompts with short outputs (arXiv summarisation capped at OPT's
2,048-token context), where disaggregation pays, and on first-turn ShareGPT, where the decode GPU of the
segment is its bottleneck and it does not. bench/sim_distserve.py prints the per-GPU goodputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import planner
from planner.sim.result import Slo
from planner.specs.workload import Workload

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def offline_req_s() -> dict[str, float]:
    layouts = {"colocated": (8, 1), "temporal-pipeline": (1, 8), "throttled-pipeline": (1, 8)}
    return {
        strategy: planner.simulate(
            "llama-2-70b", "8xl20", tp=tp, pp=pp, strategy=strategy, workload="sharegpt", requests=2000
        ).request_throughput_req_s
        for strategy, (tp, pp) in layouts.items()
    }


@pytest.mark.parametrize("pipeline", ["temporal-pipeline", "throttled-pipeline"])
def test_pipelines_beat_tensor_parallelism_over_pcie(offline_req_s: dict[str, float], pipeline: str) -> None:
    """Today: TP8 3.88 req/s, temporal 5.68 (1.47x), throttled 5.83 (1.51x)."""
    ratio = offline_req_s[pipeline] / offline_req_s["colocated"]
    print(f"{pipeline} / TP8 offline in simulation: {ratio:.2f}")
    assert 1.2 < ratio <= 1.91 * 1.25


DISTSERVE_SLO = Slo(ttft_s=0.2, tpot_s=0.1)


def load_bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sim_distserve = load_bench("sim_distserve")


def distserve_attainment(workload: str, disaggregated: bool, per_gpu_req_s: float) -> float:
    """Simulated SLO attainment of DistServe's OPT-13B segment (or vLLM TP1) at a Poisson rate per GPU."""
    return float(sim_distserve.attainment(Workload.parse(workload), disaggregated, per_gpu_req_s, DISTSERVE_SLO))


def test_disaggregation_pays_for_long_prompts_with_short_outputs() -> None:
    """Today at 1 req/s/GPU: the segment 92.5% of requests within both SLOs, vLLM TP1 54% (a prompt of up to 2k
    tokens takes most of the 0.2 s alone, and queues behind others); vLLM TP1 misses 90% even at 0.5 req/s."""
    disaggregated = distserve_attainment("arxiv-summarization:2048", True, 1.0)
    colocated = distserve_attainment("arxiv-summarization:2048", False, 1.0)
    print(f"attainment at 1 req/s/GPU: disaggregated {disaggregated:.3f}, vLLM TP1 {colocated:.3f}")
    assert disaggregated >= 0.9 > colocated


def test_disaggregation_does_not_pay_for_short_prompts() -> None:
    """First-turn ShareGPT (prompts of about 250 tokens): the one decode GPU of the segment caps it near 3.2
    req/s/GPU (54% attainment at 4), where vLLM TP1 still meets both SLOs (bisected: 3.16 against 4.96)."""
    disaggregated = distserve_attainment("sharegpt", True, 4.0)
    colocated = distserve_attainment("sharegpt", False, 4.0)
    print(f"attainment at 4 req/s/GPU: disaggregated {disaggregated:.3f}, vLLM TP1 {colocated:.3f}")
    assert colocated >= 0.9 > disaggregated
