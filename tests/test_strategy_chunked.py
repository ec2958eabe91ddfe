"""Sarathi-Serve chunked prefills with stall-free batching (`planner.strategies.chunked`).

Hand-computed chunk arithmetic, invariants of the throughput and latency model, and Sarathi-Serve's
published serving-capacity gain over vLLM (OSDI'24 abstract: 2.6x for Mistral-7B on one A100, capacity =
the largest request rate whose p99 time between tokens stays within an SLO).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from planner.cost.ops import BatchShape
from planner.specs.catalog import load_catalog
from planner.specs.hardware import Cluster
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies import chunked, get_strategy
from planner.strategies.base import Candidate, Context, Infeasible, Slo, evaluate

CATALOG = load_catalog()
STRATEGY = chunked.Chunked()


def make_context(**overrides: Any) -> Context:
    """Mistral-7B on one A100-SXM-80GB with ShareGPT-like traffic, unless overridden."""
    spec: dict[str, Any] = {
        "model": "mistral-7b",
        "gpu": CATALOG.gpu("a100"),
        "num_gpus": 1,
        "workload": Workload.preset("sharegpt"),
    }
    spec.update(overrides)
    return Context(
        catalog=CATALOG,
        model=CATALOG.model(spec["model"]),
        cluster=Cluster(gpu=spec["gpu"], num_gpus=spec["num_gpus"], gpus_per_node=8),
        workload=spec["workload"],
        dtype=Dtype.fp16,
        kv_dtype=Dtype.fp16,
        engine=CATALOG.engine("vllm"),
    )


def make_candidate(tp: int = 1, pp: int = 1, replicas: int = 1, **knobs: float) -> Candidate:
    values = {"chunk_size": 512.0, "max_batch": 256.0, **knobs}
    return Candidate(strategy="chunked", tp=tp, pp=pp, replicas=replicas, gpus_used=tp * pp * replicas, knobs=values)


class TestChunkArithmetic:
    def test_mean_cached_context_of_one_long_prompt(self) -> None:
        """I = 1000 in chunks of 256: chunks 256, 256, 256, 232 start after 0, 256, 512, 768 tokens;
        (256 x 256 + 256 x 512 + 232 x 768) / 1000 = (65536 + 131072 + 178176) / 1000 = 374.784."""
        assert chunked.mean_cached_tokens(np.array([1000]), 256) == pytest.approx(374.784)

    def test_mean_cached_context_is_token_weighted(self) -> None:
        """I = 512 fits one chunk of 512 (nothing cached); I = 1024 is 2 chunks, the second after 512:
        512 x 512 / (512 + 1024) = 262144 / 1536 = 170.667."""
        assert chunked.mean_cached_tokens(np.array([512, 1024]), 512) == pytest.approx(170.6667, abs=1e-4)

    def test_no_cached_context_when_every_prompt_fits_a_chunk(self) -> None:
        assert chunked.mean_cached_tokens(np.array([100, 300]), 512) == 0.0

    @pytest.mark.parametrize(("pp", "expected"), [(1, 204.8), (2, 409.6)])
    def test_token_budget_caps_the_decode_batch(self, pp: int, expected: float) -> None:
        """C = 512, E[I] = 300, E[O - 1] = 200: d <= 512 x 200 / (300 + 200) = 204.8 per micro-batch."""
        assert chunked.budget_decode_cap(512, 300, 200, pp) == pytest.approx(expected)

    def test_chunk_sizes_of_a_long_prompt(self) -> None:
        """I = 1000, c = 256: chunks 256, 256, 256 and the 232-token remainder; 100 queued tokens top the last
        one up to the budget (min(232 + 100, 256) = 256)."""
        lens = np.array([1000.0])
        assert chunked.chunk_size_quantile(lens, 256, 0, 0.0) == 232
        assert chunked.chunk_size_quantile(lens, 256, 0, 0.5) == 256
        assert chunked.chunk_size_quantile(lens, 256, 100, 0.0) == 256


class TestThroughput:
    def test_very_small_chunks_cost_throughput(self) -> None:
        """A small budget caps the decode batch (C E[O-1] / (E[I] + E[O-1])), so weights and per-iteration
        overheads are paid for fewer tokens."""
        ctx = make_context()
        capacities = [STRATEGY.capacity_req_s(ctx, make_candidate(chunk_size=c)) for c in (64, 128, 256, 512)]
        assert capacities == sorted(capacities)
        assert capacities[0] < 0.6 * capacities[-1]

    def test_large_budget_costs_little_offline_throughput_against_prompts_first(self) -> None:
        """With a budget above every prompt, chunking changes the schedule, not the work: within 10% of the
        prompts-first baseline at the same batch cap."""
        ctx = make_context()
        colocated = get_strategy("colocated")
        baseline = Candidate(strategy="colocated", tp=1, pp=1, replicas=1, gpus_used=1, knobs={"max_batch": 256})
        ours = STRATEGY.capacity_req_s(ctx, make_candidate(chunk_size=2048))
        assert ours == pytest.approx(colocated.capacity_req_s(ctx, baseline), rel=0.1)

    def test_more_memory_bandwidth_is_never_slower(self) -> None:
        gpu = CATALOG.gpu("a100")
        faster = gpu.model_copy(update={"memory_bw_gb_s": gpu.memory_bw_gb_s * 1.5})
        slow, fast = make_context(), make_context(gpu=faster)
        candidate = make_candidate()
        assert STRATEGY.capacity_req_s(fast, candidate) > STRATEGY.capacity_req_s(slow, candidate)
        slow_lat, fast_lat = STRATEGY.latencies(slow, candidate, 5.0), STRATEGY.latencies(fast, candidate, 5.0)
        assert slow_lat is not None and fast_lat is not None
        assert np.all(fast_lat.tpot_s <= slow_lat.tpot_s)
        assert fast_lat.tbt_p99_s < slow_lat.tbt_p99_s

    @pytest.mark.parametrize(("tp", "pp"), [(1, 1), (1, 2), (2, 1)])
    def test_stable_just_below_capacity_and_not_beyond(self, tp: int, pp: int) -> None:
        ctx = make_context(num_gpus=2)
        candidate = make_candidate(tp=tp, pp=pp, replicas=2 // (tp * pp))
        capacity = STRATEGY.capacity_req_s(ctx, candidate)
        assert STRATEGY.latencies(ctx, candidate, 0.98 * capacity) is not None
        assert STRATEGY.latencies(ctx, candidate, 1.02 * capacity) is None


class TestLatencies:
    def test_tpot_grows_with_load_and_stays_above_a_decode_step(self) -> None:
        ctx, candidate = make_context(), make_candidate()
        capacity = STRATEGY.capacity_req_s(ctx, candidate)
        means = []
        step_s = chunked.stage_step_s(
            STRATEGY.deployment(ctx, candidate), BatchShape.decode(1, ctx.workload.mean_decode_context)
        )
        for share in (0.1, 0.5, 0.9):
            lat = STRATEGY.latencies(ctx, candidate, share * capacity)
            assert lat is not None
            assert np.all(lat.tpot_s >= step_s * (1 - 1e-9))
            means.append(float(np.mean(lat.tpot_s)))
        assert means == sorted(means)

    def test_p99_gap_is_a_decode_step_while_chunks_are_rare(self) -> None:
        """At 0.01 req/s chunks ride along in far fewer than 1% of iterations: the p99 gap holds none."""
        ctx, candidate = make_context(), make_candidate()
        lat = STRATEGY.latencies(ctx, candidate, 0.01)
        assert lat is not None
        assert lat.tbt_p99_s == pytest.approx(float(np.min(lat.tpot_s)), rel=1e-6)

    def test_p99_gap_grows_with_the_budget(self) -> None:
        """Stall-free batching bounds a gap by the chunk: a smaller budget, a smaller p99 gap."""
        ctx = make_context()
        gaps = []
        for chunk_size in (256, 512, 1024):
            lat = STRATEGY.latencies(ctx, make_candidate(chunk_size=chunk_size), 10.0)
            assert lat is not None
            gaps.append(lat.tbt_p99_s)
        assert gaps == sorted(gaps) and gaps[0] < 0.7 * gaps[-1]

    def test_long_prompts_wait_more_rounds_with_small_chunks(self) -> None:
        """A prompt needs ceil(I / c) iterations: the longest prompts' TTFT grows as the budget shrinks, while
        the p99 gap shrinks (at 5 req/s, where chunks ride along in well over 1% of iterations)."""
        ctx = make_context()
        small = STRATEGY.latencies(ctx, make_candidate(chunk_size=128), 5.0)
        large = STRATEGY.latencies(ctx, make_candidate(chunk_size=1024), 5.0)
        assert small is not None and large is not None
        longest = np.array(ctx.workload.input_lens) >= np.percentile(ctx.workload.input_lens, 90)
        assert np.mean(small.ttft_s[longest]) > 1.5 * np.mean(large.ttft_s[longest])
        assert small.tbt_p99_s < 0.5 * large.tbt_p99_s

    def test_rare_chunks_put_a_short_prompt_in_the_p99_gap(self) -> None:
        """With a large budget at a light load, chunk-carrying iterations are barely above 1% of all: the p99
        gap is at a low percentile of the chunk sizes, so it holds a short prompt and stays close to a decode
        step, far below an iteration with a full 1024-token chunk."""
        ctx, candidate = make_context(), make_candidate(chunk_size=1024)
        lat = STRATEGY.latencies(ctx, candidate, 1.0)
        assert lat is not None
        full = chunked.stage_step_s(
            STRATEGY.deployment(ctx, candidate),
            BatchShape.decode(1, ctx.workload.mean_decode_context) + BatchShape.prefill(1000),
        )
        assert float(np.min(lat.tpot_s)) < lat.tbt_p99_s < 0.5 * full

    def test_latencies_align_with_the_workload_requests(self) -> None:
        ctx = make_context()
        lat = STRATEGY.latencies(ctx, make_candidate(), 5.0)
        assert lat is not None
        assert lat.ttft_s.shape == lat.tpot_s.shape == (len(ctx.workload.input_lens),)
        assert np.all(np.isfinite(lat.ttft_s)) and np.all(lat.ttft_s > 0)


class TestCandidates:
    def test_registered_by_name(self) -> None:
        assert isinstance(get_strategy("chunked"), chunked.Chunked)

    def test_every_layout_times_the_knob_grid(self) -> None:
        ctx = make_context(num_gpus=2)
        found = list(STRATEGY.candidates(ctx))
        layouts = {(c.tp, c.pp) for c in found}
        assert layouts == {(1, 1), (1, 2), (2, 1)}
        assert len(found) == 3 * 4 * 3  # layouts x chunk sizes x batch caps
        assert all(isinstance(c, Candidate) and c.gpus_used == 2 for c in found)

    def test_a_model_that_does_not_fit_is_infeasible(self) -> None:
        ctx = make_context(model="llama-2-70b")
        found = list(STRATEGY.candidates(ctx, {"chunk_size": 512, "max_batch": 256}))
        assert len(found) == 1 and isinstance(found[0], Infeasible)
        assert "does not fit" in found[0].reason

    def test_evaluate_gives_goodput(self) -> None:
        ctx = make_context()
        result = evaluate(STRATEGY, ctx, make_candidate(), Slo(ttft_s=1.0, tpot_s=0.1))
        assert result.feasible and result.goodput_req_s is not None and result.goodput_req_s > 0


def best_tbt_capacity_req_s(name: str, ctx: Context, tbt_slo_s: float) -> tuple[float, dict[str, float]]:
    """Best serving capacity over the strategy's knob grid on one GPU, and the knobs that reach it."""
    strategy = get_strategy(name)
    best: tuple[float, dict[str, float]] = (0.0, {})
    for candidate in strategy.candidates(ctx):
        if isinstance(candidate, Candidate):
            capacity = chunked.tbt_capacity_req_s(strategy, ctx, candidate, tbt_slo_s)
            best = max(best, (capacity, dict(candidate.knobs)), key=lambda pair: pair[0])
    return best


class TestSeedSarathiServe:
    def test_serving_capacity_over_vllm_mistral_7b_one_a100(self) -> None:
        """Sarathi-Serve (OSDI'24 abstract): 2.6x the serving capacity of vLLM for Mistral-7B on one A100.

        SLO: Sarathi-Serve sets its strict P99 TBT SLO at 5x a decode iteration without prefill interference
        [RECALLED: 0.1 s for Mistral-7B]; here 5x the decode step of one request at the workload's mean decode
        context (12.6 ms), i.e. 63 ms. Workload: the ShareGPT-like preset (the seed notes do not give
        Sarathi-Serve's dataset). Each system takes its best knobs on one GPU. Band: 1.3x to 5x."""
        ctx = make_context()
        deployment = STRATEGY.deployment(ctx, make_candidate())
        step_s = chunked.stage_step_s(deployment, BatchShape.decode(1, ctx.workload.mean_decode_context))
        tbt_slo_s = 5 * step_s
        ours, our_knobs = best_tbt_capacity_req_s("chunked", ctx, tbt_slo_s)
        baseline, baseline_knobs = best_tbt_capacity_req_s("colocated", ctx, tbt_slo_s)
        ratio = ours / max(baseline, 1e-9)
        print(
            f"\nSarathi-Serve seed: TBT SLO {tbt_slo_s * 1e3:.1f} ms; chunked {ours:.2f} req/s {our_knobs}, "
            f"colocated {baseline:.2f} req/s {baseline_knobs}: {ratio:.2f}x (published 2.6x)"
        )
        assert 1.3 <= ratio <= 5.0


class TestPipelineRounds:
    """With PP > 1 each chunk rides its own micro-batch through every stage (vLLM's virtual engines), and a
    round's busiest micro-batch paces all of its stages: checked against the simulator, which runs the
    virtual engines on a flow shop of stages (planner.sim.pipeline)."""

    @pytest.mark.parametrize("pp", [2, 4])
    def test_low_load_latencies_match_the_simulator(self, pp: int) -> None:
        """Mistral-7B, 2,048-token prompts in chunks of 512 at 0.5 req/s. Today the analytic means over the
        simulated ones: TTFT 1.15x (PP 2) and 1.24x (PP 4), TPOT 1.08x and 1.36x; with PP 1 they are 1.08x
        and 1.00x. Most of what is left is per stage: the analytic stage step carries the engine's
        per-iteration overhead at every stage, the simulator once per micro-batch (TPOT of a lone request:
        17.5 against 13.0 ms at PP 4). Before the chunk's own traversal of all pp stages the analytic TTFT was
        0.6x at PP 2."""
        import planner

        ctx = make_context(num_gpus=pp, workload=Workload.fixed(2048, 64))
        lat = STRATEGY.latencies(ctx, make_candidate(pp=pp, chunk_size=512), 0.5)
        assert lat is not None
        sim = planner.simulate(
            "mistral-7b", f"{pp}xa100", tp=1, pp=pp, input_len=2048, output_len=64, rate=0.5, requests=300,
            strategy="chunked", knobs={"chunk_size": 512}, engine="vllm", dtype="fp16",
        )  # fmt: skip
        ttft, tpot = np.mean(lat.ttft_s) / sim.ttft_s.mean, np.mean(lat.tpot_s) / sim.tpot_s.mean
        print(f"PP {pp}: analytic / simulated TTFT {ttft:.2f}, TPOT {tpot:.2f}")
        assert 0.95 < ttft < 1.3 and 0.95 < tpot < 1.45
