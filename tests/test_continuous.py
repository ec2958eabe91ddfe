"""Colocated continuous batching in steady state (`planner.strategies.continuous`).

Consistency rather than numbers: Little's law, queueing added where clients outnumber batch slots, the
Poisson solution's stability boundary, and the batch caps that follow from the engine profile. The tiny model
of `test_ops` on one test GPU holds millions of KV tokens, so memory never sets the batch here unless a test
says so.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_iteration import NO_FIXED
from test_ops import make_constants, make_deployment, make_kernels

from planner.cost.memory import memory_breakdown
from planner.cost.roofline import Bound
from planner.specs.deployment import Deployment
from planner.strategies.continuous import (
    BatchLimit,
    arrival_prompts_per_iteration,
    batch_limit,
    closed_loop,
    holding_scv,
    kv_tokens_per_sequence,
    max_decode_batch,
    offline,
    packed_prefill_share_s,
    poisson,
    prefill_iteration_secant,
    recompute_share_s,
    saturated_prompts_per_iteration,
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
        """Up to 80% of capacity the batch is not full. (Beyond it, vLLM's batch runs full first: below capacity
        prompts arrive one or two per prefill iteration, dearer than the budget-packed prompts of capacity;
        the simulator's queue grows there too, its mean TTFT 40 times the one at 80%.)"""
        deployment, batch, capacity = setting
        for share in (0.1, 0.5, 0.8):
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
            assert high.batch_size > low.batch_size or high.batch_size == low.batch_size == batch  # full


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
        """12,800 KV tokens: TensorRT-LLM reserves input + output = 1280 tokens (80 blocks) per request -> 10
        requests. vLLM holds blocks of 16 for contexts 1024 .. 1279 over the request's 256 iterations:
        64 + 16 x (65 + ... + 79) + 15 x 80 = 64 + 17,280 + 1,200 = 18,544 blocks, 18,544 x 16 / 256 = 1159
        tokens on average; admission keeps a 1% watermark (128 tokens) free: 12,672 / 1159 = 10.9336 requests."""
        assert max_decode_batch(make_deployment(engine="trtllm"), 1024, 256, 12_800) == pytest.approx(10)
        vllm = make_deployment(engine="vllm")
        assert max_decode_batch(vllm, 1024, 256, 12_800) == pytest.approx(12_672 / 1159, rel=1e-12)

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


class TestKvFootprint:
    def test_paged_blocks_round_up(self) -> None:
        """I = 10, O = 8, blocks of 16: contexts 10 .. 17 over the 8 iterations hold 1 block (10 .. 16, seven
        of them) or 2 (17): 9 blocks, 9 x 16 / 8 = 18 tokens on average (unrounded: 10 + 3.5 = 13.5)."""
        assert kv_tokens_per_sequence([10], [8], reserves_full_sequence=False) == pytest.approx(18)

    def test_reserved_sequence_rounds_its_whole_length(self) -> None:
        """TensorRT-LLM reserves I + O = 18 tokens at admission: 2 blocks, 32 tokens, for the whole life."""
        assert kv_tokens_per_sequence([10], [8], reserves_full_sequence=True) == pytest.approx(32)

    def test_long_outputs_weigh_more(self) -> None:
        """Two requests of I = 100, O = 10 and O = 90, single-token blocks: the first holds 100 .. 109 for 10
        iterations (1045 token-iterations), the second 100 .. 189 for 90 (13,005): 14,050 / 100 = 140.5 tokens
        per running sequence, not the plain mean 100 + 50 / 2 = 125."""
        footprint = kv_tokens_per_sequence([100, 100], [10, 90], reserves_full_sequence=False, block_tokens=1)
        assert footprint == pytest.approx(140.5)

    def test_workload_batch_uses_the_weighted_footprint(self) -> None:
        """The same two requests in blocks of 16: first 100 .. 109 -> ceil(n / 16) = 7 x 10 = 70 blocks; second
        100 .. 189: 7 x 13 (100 .. 112) + 16 x (8 + 9 + 10 + 11) + 12 x 13 (177 .. 189) = 91 + 608 + 156 = 855
        blocks; (70 + 855) x 16 / 100 = 148.0 tokens. vLLM with 14,800 tokens, 1% watermark: 14,652 / 148 = 99."""
        limit = batch_limit(make_deployment(engine="vllm"), [100, 100], [10, 90], 14_800)
        assert limit.kv_tokens_per_seq == pytest.approx(148.0)
        assert limit.max_batch == pytest.approx(99.0)
        assert limit.kv_bound and not limit.lockstep


class TestPreemption:
    def test_waves_overbook_by_prompt_blocks(self) -> None:
        """vLLM, I = 1024, O = 256 on 12,800 KV tokens (KV sets the batch at 10.93): a wave admits
        (12,800 - 128) / 1024 = 12.375 prompts at their 64 blocks, the cache carries 10.9336 at the mean
        footprint of 1159 tokens: 12.375 x 1159 / 12,672 - 1 = 0.1318 recomputes per request. The wave fills
        the cache at context u1 = 12,672 / 12.375 = 1024 and grows to u2 = 1279, so a preempted request had
        generated g = [ln(1279 / 1024) - 1024 (1/1024 - 1/1279)] / (1/1024 - 1/1279) = 118.07 tokens."""
        limit = batch_limit(make_deployment(engine="vllm"), [1024], [256], 12_800)
        assert limit.lockstep and limit.kv_bound
        assert limit.preemptions_per_request == pytest.approx(12.375 * 1159 / 12_672 - 1, rel=1e-12)
        span = 1 / 1024 - 1 / 1279
        generated = (math.log(1279 / 1024) - 1024 * span) / span
        assert generated == pytest.approx(118.07, abs=0.01)
        assert limit.recompute_tokens == pytest.approx(1024 + generated, rel=1e-12)

    def test_spread_completions_rarely_leave_the_pool_dry(self) -> None:
        """vLLM, I = 96 (6 blocks) with O = 31 and O = 33 (E[O - 1] = 31) on 9,600 tokens (watermark 96): the
        pool left after an admission lasts p / B steps, p ~ U[96, 192]; no completion comes in that time with
        probability E[exp(-p / 31)] = 31 / 96 x exp(-96 / 31) x (1 - exp(-96 / 31)) = 0.013935."""
        limit = batch_limit(make_deployment(engine="vllm"), [96, 96], [31, 33], 9_600)
        assert not limit.lockstep and limit.kv_bound
        expected = 31 / 96 * math.exp(-96 / 31) * (1 - math.exp(-96 / 31))
        assert limit.preemptions_per_request == pytest.approx(expected, rel=1e-12)
        assert expected == pytest.approx(0.013935, abs=1e-6)
        assert limit.recompute_tokens == 96

    def test_no_preemption_when_kv_is_not_the_limit_or_is_reserved(self) -> None:
        assert batch_limit(make_deployment(engine="vllm"), [1024], [256], 10**9).preemptions_per_request == 0
        assert batch_limit(make_deployment(engine="trtllm"), [1024], [256], 12_800).preemptions_per_request == 0

    def test_recompute_stretches_tpot_like_prompts(self) -> None:
        """At the KV cap the others' B - 1 prompts per cycle come with f = 0.1318 recomputes each of 1142
        tokens, packed 8192 // 1142 = 7 to an iteration (the prompts' pack is 8): TPOT grows by
        (B - 1) x f x t(7 x 1142 tokens) / 7 / (O - 1), and throughput falls."""
        deployment = make_deployment(engine="vllm")
        limit = batch_limit(deployment, [1024], [256], 12_800)
        batch = limit.max_batch
        plain = steady_state(deployment, 1024, 256, batch)
        preempting = steady_state(deployment, 1024, 256, batch, limit=limit)
        recompute_s = limit.preemptions_per_request * packed_prefill_share_s(deployment, 1142, batch, 1152, 7)
        assert recompute_share_s(deployment, batch, 1152, 8, limit) == pytest.approx(recompute_s, rel=1e-12)
        assert preempting.tpot_s - plain.tpot_s == pytest.approx((batch - 1) * recompute_s / 255, rel=1e-9)
        assert preempting.request_rate_req_s < plain.request_rate_req_s
        # Below the cache's capacity nothing overbooks.
        assert recompute_share_s(deployment, batch / 2, 1152, 8, limit) == 0


def limit_of(lockstep: bool, kv_bound: bool = False, kv_batch: float = 1e9) -> BatchLimit:
    return BatchLimit(
        max_batch=256,
        kv_batch=kv_batch,
        kv_tokens_per_seq=1000,
        kv_bound=kv_bound,
        lockstep=lockstep,
        preemptions_per_request=0.0,
        recompute_tokens=0.0,
    )


class TestPromptsPerIteration:
    def test_arrivals_one_at_a_time_at_low_load(self) -> None:
        """R -> 0: a prefill iteration holds the one prompt that arrived."""
        assert arrival_prompts_per_iteration(1e-9, 0.02, 0.05, 0.04, 8) == pytest.approx(1.0, abs=1e-6)
        assert arrival_prompts_per_iteration(0.0, 0.02, 0.05, 0.04, 8) == 1.0

    def test_arrivals_hand_computed(self) -> None:
        """R = 10/s, t_d = 20 ms, T(1) = 50 ms, dT/dk = 0 (a fixed-cost iteration): R t_d = 0.2, arrivals per
        decode step that had one 0.2 / (1 - e^-0.2) = 1.10333; R T = 0.5, so
        k = e^-0.5 x 1.10333 + 0.5 = 1.16920."""
        k = arrival_prompts_per_iteration(10.0, 0.02, 0.05, 0.0, 8)
        assert k == pytest.approx(math.exp(-0.5) * 0.2 / (1 - math.exp(-0.2)) + 0.5, rel=1e-9)
        assert k == pytest.approx(1.16920, abs=1e-5)

    def test_arrivals_fill_the_budget_near_prefill_saturation(self) -> None:
        """R = 30/s with T(k) = 40 ms x k: back-to-back prefill iterations would need k = R T(k) = 1.2 k > k, so
        arrivals outgrow any pack: the budget, 8."""
        assert arrival_prompts_per_iteration(30.0, 0.02, 0.04, 0.04, 8) == 8

    def test_arrivals_rise_with_the_rate(self) -> None:
        ks = [arrival_prompts_per_iteration(r, 0.02, 0.05, 0.004, 8) for r in (0.1, 1, 5, 10, 15, 19)]
        assert all(low < high for low, high in itertools.pairwise(ks))
        assert ks[0] < 1.01 and ks[-1] > 1.4

    def test_secant_of_the_prefill_iteration(self) -> None:
        """The budget of the vLLM profile for 1024-token prompts is 8192 // 1024 = 8; the slope runs from one
        prompt's iteration to eight's."""
        deployment = make_deployment(engine="vllm")
        one_s, per_prompt_s, budget = prefill_iteration_secant(deployment, 1024)
        assert budget == 8
        eight_s = packed_prefill_share_s(deployment, 1024, 8, 1024) * 8
        assert one_s + 7 * per_prompt_s == pytest.approx(eight_s, rel=1e-12)

    def test_saturated_lockstep_packs_the_budget(self) -> None:
        """One output length: packs of 8192 // 1024 = 8 prompts persist (at most the batch)."""
        deployment = make_deployment(engine="vllm")
        assert saturated_prompts_per_iteration(deployment, 1024, 256, 100, limit_of(True)) == 8
        assert saturated_prompts_per_iteration(deployment, 1024, 256, 5, limit_of(True)) == 5
        assert saturated_prompts_per_iteration(deployment, 1024, 256, 100, None) == 8

    def test_saturated_spread_completions(self) -> None:
        """B = 255, O = 256: c = 255 / 255 = 1 completion per decode step, 1 / (1 - e^-1) = 1.58198 per prefill
        iteration; KV-bound, a completion frees I + O = 1280 tokens, 1.25 prompts' worth: 1.97748."""
        deployment = make_deployment(engine="vllm")
        slots = saturated_prompts_per_iteration(deployment, 1024, 256, 255, limit_of(False))
        assert slots == pytest.approx(1 / (1 - math.exp(-1)), rel=1e-12)
        kv = saturated_prompts_per_iteration(deployment, 1024, 256, 255, limit_of(False, True, 255))
        assert kv == pytest.approx(1.25 / (1 - math.exp(-1)), rel=1e-12)

    def test_poisson_low_load_charges_one_prompt_per_iteration(self) -> None:
        """At 1% of capacity vLLM's TPOT is t_decode / (1 - R x T(k) / k) with k about 1: one prompt's
        iteration, not the budget's share."""
        deployment = make_deployment(engine="vllm")
        batch = full_batch(deployment, 1024, 256)
        capacity = steady_state(deployment, 1024, 256, batch).request_rate_req_s
        rate = 0.01 * capacity
        point = poisson(deployment, 1024, 256, batch, rate)
        one_s, per_prompt_s, budget = prefill_iteration_secant(deployment, 1024)
        k = arrival_prompts_per_iteration(rate, point.decode_step.time_s, one_s, per_prompt_s, budget)
        assert k == pytest.approx(1.0, abs=0.02)
        share = packed_prefill_share_s(deployment, 1024, point.batch_size, 1024 + 128, k)
        assert point.tpot_s == pytest.approx(point.decode_step.time_s / (1 - rate * share), rel=1e-9)
        assert share > 1.5 * packed_prefill_share_s(deployment, 1024, point.batch_size, 1024 + 128, budget)


class TestSlotWait:
    def test_allen_cunneen_scales_the_mmc_wait(self) -> None:
        """c = 4 slots at rho = 0.5, 2 req/s: Lq = 0.5^sqrt(10) / 0.5 = 0.22360..., Wq = Lq / 2 for M/M/c;
        requests of one length (scv 0) wait half that, scv 3 twice that."""
        mmc = 0.5 ** math.sqrt(10) / 0.5 / 2
        assert slot_wait_s(2.0, 4.0, 2.0) == pytest.approx(mmc, rel=1e-12)
        assert slot_wait_s(2.0, 4.0, 2.0, service_scv=0.0) == pytest.approx(mmc / 2, rel=1e-12)
        assert slot_wait_s(2.0, 4.0, 2.0, service_scv=3.0) == pytest.approx(2 * mmc, rel=1e-12)

    def test_holding_scv_of_output_lengths(self) -> None:
        """Outputs 100 and 300: mean 200, variance 10,000, scv 0.25; one length: 0."""
        assert holding_scv(np.array([100, 300])) == pytest.approx(0.25)
        assert holding_scv(np.array([256, 256])) == 0.0


class TestVirtualEngineLatencies:
    """Colocated with PP > 1: the latencies at a rate price a prompt as capacity does (the pipeline beat of the
    prompts a virtual engine packs), so they are finite below capacity and grow with the load. Before, they
    charged a prompt micro-batch alone and went unstable at 0.7x capacity for short outputs (azure-code)."""

    @pytest.mark.parametrize(
        ("model", "gpus", "workload", "pp"),
        [("llama-70b", "8xl20", "azure-code", 8), ("mistral-7b", "2xa100", "sharegpt", 2)],
    )
    def test_finite_below_capacity_and_growing(self, model: str, gpus: str, workload: str, pp: int) -> None:
        from planner.comparison import build_context
        from planner.specs.catalog import load_catalog
        from planner.specs.workload import Workload
        from planner.strategies import get_strategy
        from planner.strategies.base import Candidate

        ctx = build_context(load_catalog(), model, gpus, Workload.preset(workload), "bf16", None, None, None, None)
        strategy = get_strategy("colocated")
        candidate = Candidate(strategy="colocated", tp=1, pp=pp, replicas=1, gpus_used=pp, knobs={"max_batch": 256.0})
        capacity = strategy.capacity_req_s(ctx, candidate)
        ttfts = []
        for share in (0.3, 0.7, 0.9, 0.99):
            lat = strategy.latencies(ctx, candidate, share * capacity)
            assert lat is not None and np.all(np.isfinite(lat.ttft_s)) and np.all(np.isfinite(lat.tpot_s))
            ttfts.append(float(np.mean(lat.ttft_s)))
        assert ttfts == sorted(ttfts)
