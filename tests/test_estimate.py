"""`planner.estimate()` on the shipped catalogs: the returned fields, the choices it makes for the user (TP,
replicas, aliases, precision) and the errors it raises for bad input.

The calibration constants are refitted from time to time, so these tests check relations and choices, not
predicted numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planner.errors import PlannerError
from planner.estimation import Estimate, estimate
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.precision import Dtype

ROOT = Path(__file__).resolve().parents[1]

CONTRACT_FIELDS = (
    "model", "gpu", "num_gpus", "tp", "pp", "replicas", "dtype", "input_len", "output_len", "scenario",
    "output_throughput_tok_s", "request_throughput_req_s", "ttft_s", "tpot_s", "batch_size",
    "kv_capacity_tokens", "prefill_time_s", "decode_step_time_s", "memory_gib", "bottleneck",
)  # fmt: skip

# Bad input -> a fragment of the message that names the problem or the fix.
ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown GPU", {"gpus": "8xh100-sxn"}, r"unknown GPU 'h100-sxn' \(closest: h100-sxm"),
    ("unknown model", {"model": "llama-99b"}, r"unknown model 'llama-99b' \(closest: .*llama-70b"),
    ("TP not dividing heads", {"tp": 3}, r"TP 3 does not divide the 64 attention heads"),
    # 405.9e9 parameters x 2 bytes = 756 GiB of weights on the one GPU
    ("model too large", {"model": "llama-3.1-405b", "gpus": "1xL20"}, r"needs [0-9.]+ GiB \(756\.0 GiB w"),
    ("zero input", {"input_len": 0}, r"input_len: must be a whole number at least 1 and at most 16,777,216, got 0"),
    ("negative output", {"output_len": -5}, r"output_len: must be a whole number at least 1 .*, got -5"),
    (
        "concurrency and rate",
        {"concurrency": 4, "rate": 1.0},
        r"rate: give one of concurrency \(a closed loop\), rate \(Poisson arrivals\) and batch_size .*not several",
    ),
    ("unknown dtype", {"dtype": "fp9"}, r"dtype: unknown format 'fp9': choose one of bf16"),
    ("unknown KV dtype", {"kv_dtype": "int4"}, r"kv_dtype: unknown format 'int4'"),
    ("unreadable --gpus", {"gpus": "8x#L20"}, r"gpus: cannot read '8x#L20'"),
    ("zero GPUs", {"gpus": "0xL20"}, r"gpus: '0xL20' asks for 0 GPUs: give 1 to 65,536"),
    ("network typo", {"gpus": "16xh100", "network": "100gbee"}, r"unknown network '100gbee'"),
    ("partial node", {"gpus": "12xL20"}, r"12 GPUs do not fill whole nodes of 8"),
    ("too few GPUs for the layout", {"tp": 4, "pp": 4}, r"needs 16 GPUs but --gpus gives 8"),
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT)


def run(catalog: Catalog, **overrides: Any) -> Estimate:
    """llama-70b on one node of eight L20s, 1024 + 256 tokens, unless overridden."""
    args: dict[str, Any] = {"model": "llama-70b", "gpus": "8xL20", "input_len": 1024, "output_len": 256}
    return estimate(**{**args, **overrides}, catalog=catalog)


class TestContract:
    def test_fields(self, catalog: Catalog) -> None:
        result = run(catalog).model_dump()
        missing = [name for name in CONTRACT_FIELDS if name not in result]
        assert not missing

    def test_values_are_sane(self, catalog: Catalog) -> None:
        result = run(catalog)
        assert (result.model, result.gpu, result.num_gpus) == ("llama-3.1-70b", "l20", 8)
        assert result.dtype == "bf16"
        assert (result.input_len, result.output_len, result.scenario.value) == (1024, 256, "offline")
        requests_s = result.request_throughput_req_s
        assert result.output_throughput_tok_s == pytest.approx(256 * requests_s, rel=1e-12)
        assert result.ttft_s is not None and result.ttft_s > 0
        assert 0 < result.decode_step_time_s <= result.tpot_s
        assert result.prefill_time_s > 0
        assert result.batch_size >= 1
        assert result.kv_capacity_tokens >= 1024 + 256
        assert set(result.memory_gib) >= {"weights", "kv_cache"}
        assert sum(result.memory_gib.values()) == pytest.approx(48, rel=1e-9)  # the whole L20
        assert result.bottleneck in {"compute", "memory", "communication", "overhead"}

    @pytest.mark.parametrize(
        ("scenario", "overrides"),
        [("concurrency", {"concurrency": 16}), ("rate", {"rate": 0.5}), ("offline", {"num_requests": 100})],
    )
    def test_scenario(self, catalog: Catalog, scenario: str, overrides: dict[str, Any]) -> None:
        assert run(catalog, **overrides).scenario.value == scenario

    def test_rate_beyond_capacity_is_flagged(self, catalog: Catalog) -> None:
        result = run(catalog, rate=1e6)
        assert not result.stable
        assert result.ttft_s is None
        assert any("exceeds the capacity" in note for note in result.notes)


class TestAutoTp:
    def test_llama_70b_on_l20_needs_four(self, catalog: Catalog) -> None:
        """141 GB of bf16 weights do not fit two 48 GiB L20s but fit four."""
        result = run(catalog)
        assert result.tp == 4
        assert any("TP 4 chosen" in note for note in result.notes)
        with pytest.raises(PlannerError, match="GiB"):
            run(catalog, tp=2)

    def test_llama_8b_on_h100_needs_one(self, catalog: Catalog) -> None:
        result = run(catalog, model="llama-8b", gpus="1xh100")
        assert result.tp == 1
        assert any("TP 1 chosen" in note for note in result.notes)

    def test_given_tp_is_not_noted(self, catalog: Catalog) -> None:
        assert not any("chosen" in note for note in run(catalog, tp=8).notes)


class TestReplicas:
    @pytest.mark.parametrize(
        ("model", "gpus", "tp", "pp", "replicas"),
        [
            ("llama-70b", "8xL20", 4, 1, 2),
            ("llama-70b", "8xL20", 4, 2, 1),
            ("llama-70b", "16xL20", 8, 1, 2),
            ("llama-8b", "8xh100", 2, 1, 4),
            ("llama-8b", "8xh100", 1, 1, 8),
            ("llama-8b", "8xh100", 1, 3, 2),  # 8 // 3: two GPUs idle
        ],
    )
    def test_replicas_fill_the_cluster(
        self, catalog: Catalog, model: str, gpus: str, tp: int, pp: int, replicas: int
    ) -> None:
        assert run(catalog, model=model, gpus=gpus, tp=tp, pp=pp).replicas == replicas

    def test_idle_gpus_are_noted(self, catalog: Catalog) -> None:
        result = run(catalog, model="llama-8b", gpus="8xh100", tp=1, pp=3)
        assert any("2 GPU(s) left idle" in note for note in result.notes)

    @pytest.mark.parametrize("load", [{"concurrency": 64}, {"rate": 2.0}])
    def test_throughput_scales_with_replicas(self, catalog: Catalog, load: dict[str, float]) -> None:
        """Four replicas with four times the load each see what one replica sees, and serve four times as
        much (the formulas exactly; the simulator within its finite-run noise, test_sim.py)."""
        one = run(catalog, model="llama-8b", gpus="1xh100", tp=1, analytic=True, **load)
        four = run(catalog, model="llama-8b", gpus="4xh100", tp=1, analytic=True, **{k: 4 * v for k, v in load.items()})
        assert four.replicas == 4
        assert four.output_throughput_tok_s == pytest.approx(4 * one.output_throughput_tok_s, rel=1e-9)
        assert four.request_throughput_req_s == pytest.approx(4 * one.request_throughput_req_s, rel=1e-9)
        assert (four.ttft_s, four.tpot_s, four.batch_size) == pytest.approx(
            (one.ttft_s, one.tpot_s, one.batch_size), rel=1e-9
        )


class TestNames:
    def test_alias_resolution_is_noted(self, catalog: Catalog) -> None:
        result = run(catalog)
        assert result.model == "llama-3.1-70b"
        assert any("'llama-70b' resolved to Llama-3.1-70B (llama-3.1-70b)" in note for note in result.notes)

    def test_exact_id_is_not_noted(self, catalog: Catalog) -> None:
        assert not any("resolved" in note for note in run(catalog, model="llama-3.1-70b").notes)

    def test_gpu_alias(self, catalog: Catalog) -> None:
        assert run(catalog, model="llama-8b", gpus="1xH100").gpu == "h100-sxm"

    def test_a_request_longer_than_the_context_is_noted(self, catalog: Catalog) -> None:
        """Llama-2-70B has a 4,096-token context; 4,000 + 500 tokens is beyond it, which engines refuse."""
        result = run(catalog, model="llama-2-70b", input_len=4000, output_len=500)
        beyond = "input + output = 4,500 tokens is longer than llama-2-70b's context of 4,096 tokens"
        assert any(beyond in note for note in result.notes)
        assert not any("context" in note for note in run(catalog, model="llama-2-70b").notes)


class TestPrecision:
    def test_fp8_on_l20_runs_weight_only(self, catalog: Catalog) -> None:
        """The L20 has no fp8 tensor rate: fp8 weights are dequantised and the GEMMs run at the 16-bit rate,
        so a compute-bound prefill takes as long as in bf16."""
        assert catalog.gpu("l20").gemm_flops_s(Dtype.fp8) == 119.5e12  # its fp16 rate
        bf16 = run(catalog, model="llama-8b", gpus="1xL20", tp=1, engine="vllm")
        fp8 = run(catalog, model="llama-8b", gpus="1xL20", tp=1, dtype="fp8", engine="vllm")
        assert (fp8.dtype, fp8.kv_dtype) == ("fp8", "fp16")  # vLLM keeps an fp8 checkpoint's KV in 16 bits
        assert fp8.prefill_time_s == pytest.approx(bf16.prefill_time_s, rel=0.02)
        assert fp8.memory_gib["weights"] < 0.6 * bf16.memory_gib["weights"]

    def test_fp8_on_h100_uses_the_fp8_rate(self, catalog: Catalog) -> None:
        """The H100 runs fp8 GEMMs at 1978 TFLOPS against 989 in bf16, but reaches a smaller share of it
        (kernel microbenchmarks: 0.55 against 0.79), and attention stays 16-bit: prefill is faster, not 2x."""
        assert catalog.gpu("h100").gemm_flops_s(Dtype.fp8) == 1978e12
        bf16 = run(catalog, model="llama-8b", gpus="1xh100", tp=1)
        fp8 = run(catalog, model="llama-8b", gpus="1xh100", tp=1, dtype="fp8")
        assert fp8.prefill_time_s < 0.9 * bf16.prefill_time_s

    def test_kv_dtype_follows_16_bit_weights(self, catalog: Catalog) -> None:
        assert run(catalog, tp=8, dtype="fp16").kv_dtype == "fp16"
        assert run(catalog, tp=8, kv_dtype="fp8").kv_dtype == "fp8"


class TestErrors:
    @pytest.mark.parametrize(("case", "overrides", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
    def test_bad_input_raises_planner_error(
        self, catalog: Catalog, case: str, overrides: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(PlannerError, match=message):
            run(catalog, **{"gpus": "8xh100", **overrides})


class TestLayoutRanking:
    """A planner ranks layouts on these numbers: on NVLink, a 70B decode step is never slower at TP 8 than at
    TP 4 (the all-reduce runs through the engines' custom kernels, a few microseconds at decode sizes, while
    each GPU streams half the weights)."""

    @pytest.mark.parametrize("gpus", ["8xh100", "8xh200", "8xa100-sxm-80gb", "8xb200"])
    @pytest.mark.parametrize("dtype", ["bf16", "fp8"])
    @pytest.mark.parametrize("batch", [1, 16, 64])
    def test_tp8_never_slower_than_tp4_for_70b_decode(
        self, catalog: Catalog, gpus: str, dtype: str, batch: int
    ) -> None:
        steps = [
            run(catalog, model="llama-3.1-70b", gpus=gpus, tp=tp, dtype=dtype, batch_size=batch).decode_step_time_s
            for tp in (4, 8)
        ]
        assert steps[1] < steps[0]


class TestSingleRequestDecode:
    """One request decoding alone streams the weights once per token: the step can be no faster than the
    weights over the datasheet bandwidth, and a healthy engine stays within twice that (kernel floors,
    all-reduces and host work on top)."""

    @pytest.mark.parametrize(
        ("model", "gpus", "tp", "weights_gb"),
        [("llama-3.1-8b", "1xh100", 1, 16.06), ("llama-3.1-70b", "8xh100", 8, 141.1 / 8)],
    )
    def test_within_twice_the_weight_streaming_time(
        self, catalog: Catalog, model: str, gpus: str, tp: int, weights_gb: float
    ) -> None:
        """Weights per GPU in bf16: 8.03e9 x 2 bytes = 16.06 GB; 70.6e9 x 2 / 8 = 17.6 GB; H100 3350 GB/s:
        4.8 ms and 5.3 ms at the datasheet rate."""
        floor_s = weights_gb / 3350
        est = run(catalog, model=model, gpus=gpus, tp=tp, input_len=128, output_len=256, batch_size=1)
        assert floor_s < est.tpot_s < 2 * floor_s


class TestStaticBatch:
    """`estimate(batch_size=B)`: B requests prefilled together and decoded together to output_len."""

    def test_throughput_is_the_batch_over_its_latency(self, catalog: Catalog) -> None:
        est = run(catalog, model="llama-3-8b", gpus="1xa100-sxm-40gb", input_len=512, output_len=512, batch_size=16)
        assert est.scenario.value == "static-batch"
        assert est.latency_s == pytest.approx(16 / est.request_throughput_req_s, rel=1e-12)
        assert est.total_throughput_tok_s == pytest.approx(16 * 1024 / est.latency_s, rel=1e-12)
        assert est.output_throughput_tok_s == pytest.approx(16 * 512 / est.latency_s, rel=1e-12)

    def test_latency_grows_with_the_batch(self, catalog: Catalog) -> None:
        latencies = [
            run(catalog, model="llama-3-8b", gpus="1xa100-sxm-40gb", batch_size=b).latency_s for b in (1, 8, 32, 64)
        ]
        assert latencies == sorted(latencies)

    @pytest.mark.parametrize(
        ("engine", "batch", "measured_s"),
        [
            ("trtllm", 1, 7.270424068),  # Argonne LLM-Inference-Bench ARG0207
            ("trtllm", 64, 13.44515949),  # ARG0222
            ("vllm", 1, 7.386440095),  # ARG0399
            ("vllm", 64, 15.24685885),  # ARG0414
        ],
    )
    def test_argonne_llama3_8b_on_a100(self, catalog: Catalog, engine: str, batch: int, measured_s: float) -> None:
        """Llama-3-8B fp16 on one A100-SXM4-40GB, 512 + 512 tokens, static batches timed end to end (Argonne
        LLM-Inference-Bench, arXiv 2411.00136; rows of the engine fit, so within its 7% median error + margin)."""
        est = run(
            catalog, model="llama-3-8b", gpus="1xa100-sxm-40gb", dtype="fp16", input_len=512, output_len=512,
            batch_size=batch, engine=engine,
        )  # fmt: skip
        assert est.latency_s == pytest.approx(measured_s, rel=0.12)

    def test_exclusive_with_other_scenarios(self, catalog: Catalog) -> None:
        with pytest.raises(PlannerError, match="not several"):
            run(catalog, batch_size=4, concurrency=4)

    def test_batch_must_fit_the_kv_cache(self, catalog: Catalog) -> None:
        with pytest.raises(PlannerError, match="lower --batch-size"):
            run(catalog, model="llama-3-8b", gpus="1xa100-sxm-40gb", input_len=8000, output_len=100, batch_size=64)


class TestSimulatedScenarios:
    def test_a_stable_rate_is_served_at_that_rate(self, catalog: Catalog) -> None:
        """The simulator's latencies; the throughput of a stable open stream is its arrival rate."""
        est = run(catalog, model="llama-3.1-8b", gpus="1xh100", tp=1, input_len=512, output_len=256, rate=5.0)
        assert est.method == "simulated" and est.stable
        assert (est.request_throughput_req_s, est.output_throughput_tok_s) == (5.0, 1280.0)

    def test_pipelines_are_simulated_with_micro_batches(self, catalog: Catalog) -> None:
        """PP > 1 runs as virtual engines on the stages; at a light rate the simulated TPOT is within 25% of the
        formulas' (both are pp stage steps of a small batch)."""
        est = run(catalog, model="llama-3.1-8b", gpus="2xh100", tp=1, pp=2, input_len=512, output_len=256, rate=5.0)
        assert est.method == "simulated" and est.analytic is not None
        assert est.tpot_s == pytest.approx(est.analytic["tpot_s"], rel=0.25)
