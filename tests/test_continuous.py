"""Colocated continuous batching in steady state (`planner.strategies.continuous`).

Consistency rather than numbers: Little's law, queueing added where clients outnumber batch slots, the
Poisson solution's stability boundary, and the batch caps that follow from the engine profile. The tiny model
of `test_ops` on one test GPU holds millions of KV tokens, so memory never sets the batch here unless a test
says so.
"""

from __future__ import annotations

import itertools

import pytest
from test_iteration import NO_FIXED
from test_ops import make_constants, make_deployment, make_kernels

from planner.cost.memory import memory_breakdown
from planner.cost.roofline import Bound
from planner.specs.deployment import Deployment
from planner.strategies.continuous import (
    closed_loop,
    max_decode_batch,
    offline,
    packed_prefill_share_s,
    poisson,
    slot_wait_s,
    static_batch,
    steady_state,
)

ENGINES = ["trtllm", "vllm"]  # mixed (in-flight) batching and prefill-first scheduling
SHAPES = [(128, 32), (1024, 256), (2000, 2), (512, 1)]  # (input_len, output_len)


def full_batch(deployment: Deployment, input_len: int, output_len: int) -> float:
    kv_tokens = memory_breakdown(deployment).kv_capacity_tokens
    return max_decode_batch(deployment, input_len, output_len, kv_tokens)


class TestSteadyStateLittlesLaw:
    @pytest.mark.parametrize("engine", ENGINES)
    @pytest.mark.parametrize(("input_len", "output_len"), SHAPES)
    @pytest.mark.parametrize("batch", [1, 7.5, 64, 300])
    def test_requests_in_flight_equal_rate_times_latency(
        self, engine: str, input_len: int, output_len: int, batch: float
    ) -> None:
        """Closed loop, no queue: B = X x (TTFT + (O - 1) x TPOT)."""
        point = steady_state(make_deployment(engine=engine), input_len, output_len, batch)
        latency_s = point.ttft_s + (output_len - 1) * point.tpot_s
        assert point.request_rate_req_s * latency_s == pytest.approx(batch, rel=1e-9)
        assert point.stable

    @pytest.mark.parametrize("engine", ENGINES)
    def test_pipeline_parallel_keeps_littles_law(self, engine: str) -> None:
        point = steady_state(make_deployment(engine=engine, pp_size=2), 1024, 256, 48)
        assert point.request_rate_req_s * (point.ttft_s + 255 * point.tpot_s) == pytest.approx(48, rel=1e-9)


class TestSteadyStateTpot:
    @pytest.mark.parametrize("engine", ENGINES)
    @pytest.mark.parametrize(("input_len", "output_len"), [(128, 32), (1024, 256), (2000, 2)])
    @pytest.mark.parametrize("batch", [1, 64, 300])
    def test_tpot_is_at_least_one_decode_step(self, engine: str, input_len: int, output_len: int, batch: float) -> None:
        """Every token after the first needs one decode iteration of the batch; prompts of other requests
        can only stretch that."""
        point = steady_state(make_deployment(engine=engine), input_len, output_len, batch)
        assert point.tpot_s >= point.decode_step.time_s * (1 - 1e-9)

    @pytest.mark.parametrize("engine", ENGINES)
    def test_tpot_at_a_small_batch_of_short_prompts(self, engine: str) -> None:
        """I = 128, O = 32, B = 2: the first-token time is a whole iteration (mixed: the prompt riding along
        the other request's decodes) while the engine's cycle charges the prompt only its share; the cycle is
        at least the first token plus 31 decode steps, so TPOT stays at or above one step."""
        point = steady_state(make_deployment(engine=engine), 128, 32, 2)
        assert point.tpot_s >= point.decode_step.time_s * (1 - 1e-9)


class TestQueueing:
    @pytest.mark.parametrize("engine", ENGINES)
    def test_closed_loop_beyond_the_batch_waits_in_the_queue(self, engine: str) -> None:
        """C clients and B < C slots: C - B requests queue, for (C - B) / X on average (Little's law on the
        queue)."""
        deployment = make_deployment(engine=engine)
        batch = full_batch(deployment, 1024, 256)
        concurrency = 3 * batch
        point = closed_loop(deployment, 1024, 256, batch, concurrency)
        at_capacity = steady_state(deployment, 1024, 256, batch)
        assert point.batch_size == batch
        assert point.request_rate_req_s == at_capacity.request_rate_req_s
        waiting_s = point.ttft_s - at_capacity.ttft_s
        assert waiting_s == pytest.approx((concurrency - batch) / at_capacity.request_rate_req_s, rel=1e-9)
        assert point.tpot_s == at_capacity.tpot_s

    def test_closed_loop_within_the_batch_does_not_queue(self) -> None:
        deployment = make_deployment()
        assert closed_loop(deployment, 1024, 256, 512, 100) == steady_state(deployment, 1024, 256, 100)

    def test_offline_queue_wait(self) -> None:
        """N requests at once into B slots: the first B prompts wait their turn, j x share for prompt j (prompt-only
        iterations: nothing decodes yet), a
        total of B (B - 1) / 2 x share; request i > B waits (i - B) / X for a slot, (N - B)^2 / (2 X) in all;
        the mean divides the two by N."""
        deployment = make_deployment()
        point = offline(deployment, 1024, 256, 100, 1000)
        at_capacity = steady_state(deployment, 1024, 256, 100)
        share_s = packed_prefill_share_s(deployment, 1024, 100, 1024 + 256 / 2)  # no decodes to ride along yet
        expected_s = (100 * 99 / 2 * share_s + 900**2 / (2 * at_capacity.request_rate_req_s)) / 1000
        assert point.ttft_s - at_capacity.ttft_s == pytest.approx(expected_s, rel=1e-9)

    def test_all_prompts_queue_even_when_the_batch_holds_every_request(self) -> None:
        """N = 50 <= B: no slot wait, but the 50 prompts wait for each other: 50 x 49 / 2 / 50 = 24.5 shares."""
        deployment = make_deployment()
        point = offline(deployment, 1024, 256, 100, 50)
        alone = steady_state(deployment, 1024, 256, 50)
        share_s = packed_prefill_share_s(deployment, 1024, 50, 1024 + 256 / 2)
        assert point.ttft_s - alone.ttft_s == pytest.approx(24.5 * share_s, rel=1e-9)


class TestPoisson:
    @pytest.fixture(params=ENGINES)
    def setting(self, request: pytest.FixtureRequest) -> tuple[Deployment, float, float]:
        """(deployment, full batch, capacity in requests/s) for 1024 + 256-token requests."""
        deployment = make_deployment(engine=request.param)
        batch = full_batch(deployment, 1024, 256)
        return deployment, batch, steady_state(deployment, 1024, 256, batch).request_rate_req_s

    def test_stable_below_capacity_serves_the_offered_rate(self, setting: tuple[Deployment, float, float]) -> None:
        deployment, batch, capacity = setting
        for share in (0.1, 0.5, 0.9):
            point = poisson(deployment, 1024, 256, batch, share * capacity)
            assert point.stable
            assert point.request_rate_req_s == share * capacity
            # Little's law over the requests in the batch: time in the system less the wait for a slot (M/M/c
            # at the offered share of the capacity).
            slot_s = slot_wait_s(share * batch, batch, point.request_rate_req_s)
            in_batch_s = point.ttft_s - slot_s + 255 * point.tpot_s
            assert point.request_rate_req_s * in_batch_s == pytest.approx(point.batch_size, rel=1e-6)

    def test_unstable_beyond_capacity(self, setting: tuple[Deployment, float, float]) -> None:
        deployment, batch, capacity = setting
        for share in (1.0, 1.5):
            assert not poisson(deployment, 1024, 256, batch, share * capacity).stable

    def test_latency_and_batch_grow_with_rate(self, setting: tuple[Deployment, float, float]) -> None:
        deployment, batch, capacity = setting
        shares = (0.05, 0.3, 0.6, 0.9, 0.98)
        points = [poisson(deployment, 1024, 256, batch, share * capacity) for share in shares]
        for low, high in itertools.pairwise(points):
            assert high.ttft_s > low.ttft_s
            assert high.tpot_s > low.tpot_s
            assert high.batch_size > low.batch_size


class TestBatchCaps:
    def test_mixed_batching_caps_decodes_by_the_token_budget(self) -> None:
        """TensorRT-LLM (8192 tokens per iteration): completions d / 256 balance admissions
        (8192 - d) / 1024, so d <= 8192 x 256 / (1024 + 256) = 1638.4, below the 2048-sequence cap."""
        trtllm = make_deployment(engine="trtllm")
        assert max_decode_batch(trtllm, 1024, 256, 10**9) == pytest.approx(1638.4, rel=1e-12)

    def test_prefill_first_is_capped_by_max_num_seqs(self) -> None:
        """vLLM: 256 sequences, whatever the KV cache holds."""
        assert max_decode_batch(make_deployment(engine="vllm"), 1024, 256, 10**9) == 256

    def test_kv_memory_caps_the_batch(self) -> None:
        """12,800 KV tokens: TensorRT-LLM reserves input + output = 1280 tokens per request -> 10 requests;
        vLLM holds input + output / 2 = 1152 on average -> 12,800 / 1152 = 11.11 requests."""
        assert max_decode_batch(make_deployment(engine="trtllm"), 1024, 256, 12_800) == pytest.approx(10)
        vllm = make_deployment(engine="vllm")
        assert max_decode_batch(vllm, 1024, 256, 12_800) == pytest.approx(11.11111111111111, rel=1e-12)

    def test_at_least_one_request(self) -> None:
        assert max_decode_batch(make_deployment(), 1024, 256, 100) == 1.0


class TestStaticBatch:
    def test_more_batch_more_throughput_while_memory_bound(self) -> None:
        """Static batches of the tiny model on the test GPU: decode steps stay memory bound up to 64
        sequences (GEMMs at full efficiency from one row, no fixed overheads), and each larger batch
        finishes more requests per second."""
        deployment = make_deployment(
            kernels=make_kernels(**NO_FIXED), constants=make_constants(iteration_overhead_s=0, per_seq_overhead_s=0)
        )
        points = [static_batch(deployment, 512, 128, batch) for batch in (1, 2, 4, 8, 16, 32, 64)]
        assert all(point.decode_step.bound is Bound.memory for point in points)
        for small, large in itertools.pairwise(points):
            assert large.request_rate_req_s > small.request_rate_req_s
            assert large.tpot_s >= small.tpot_s

    def test_batch_ends_when_its_last_request_does(self) -> None:
        """B requests per (prefill + (O - 1) decode steps), and every request waits for the whole prefill."""
        point = static_batch(make_deployment(), 512, 128, 8)
        assert point.request_rate_req_s == pytest.approx(8 / (point.ttft_s + 127 * point.tpot_s), rel=1e-12)
        assert point.prefill_time_s == point.ttft_s
