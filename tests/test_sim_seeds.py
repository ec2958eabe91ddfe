"""The seed systems' results, in simulation (each strategy's own scheduler, planner.sim.setup), where the
simulator can check them with the data in the repository.

TD-Pipe (ICPP'25) reports up to 1.91x the throughput of tensor parallelism on PCIe nodes; gLLM (SC'25) a
token-throttled pipeline beyond it. On 8 L20s (PCIe, no NVLink), Llama-2-70B, ShareGPT-like lengths, offline:
both pipelines (TP1 PP8) must complete more requests per second than TP8, whose two all-reduces per layer
cross PCIe."""

from __future__ import annotations

import pytest

import planner


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
    """Today: TP8 3.33 req/s, temporal 4.68 (1.41x), throttled 4.92 (1.48x)."""
    ratio = offline_req_s[pipeline] / offline_req_s["colocated"]
    print(f"{pipeline} / TP8 offline in simulation: {ratio:.2f}")
    assert 1.2 < ratio <= 1.91 * 1.25
