"""The discrete-event simulator (`planner.sim`): conservation, agreement with the analytic colocated model
where that analysis is exact, the closed-loop lock-step, preemption, determinism, and monotonicity in memory.

All cases run the tiny model of `test_ops` on the synthetic test GPU (millions of KV tokens, so memory binds
only where a test sets `kv_capacity_tokens`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops import catalog_engine, make_deployment, make_moe_model

from planner.cost.iteration import iteration_cost, iteration_times_s, stage_step_times_s
from planner.cost.ops import FEATURES, BatchShape
from planner.errors import PlannerError
from planner.sim import (
    Policy,
    Routing,
    Scheduler,
    SimResult,
    bursty,
    closed_loop,
    draw_requests,
    offline,
    poisson,
    simulate,
    static_batch,
)
from planner.sim.timing import IterationTimer, prefill_shape
from planner.specs.deployment import Deployment
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies import continuous

SCHEDULERS = [Scheduler.prefill_first, Scheduler.chunked, Scheduler.inflight]
MIXED = Workload(name="mixed", input_lens=(40, 300, 700, 90, 1500), output_lens=(5, 60, 20, 200, 1))


def deployment(engine: str = "vllm", **engine_overrides: Any) -> Deployment:
    """The tiny model on one test GPU with an engine profile, its knobs overridden."""
    spec = catalog_engine(engine).model_copy(update=engine_overrides)
    return make_deployment(engine=spec)


def arrays(result: SimResult) -> dict[str, np.ndarray]:
    records = result.requests
    return {name: np.asarray(getattr(records, name)) for name in type(records).model_fields}


class TestIterationTimer:
    @pytest.mark.parametrize("layout", [{}, {"tp_size": 2, "pp_size": 2}, {"model": make_moe_model()}])
    def test_decode_lines_equal_the_cost_model(self, layout: dict[str, Any]) -> None:
        """Decode steps read from the per-batch-size lines equal iteration_times_s at 2,000 random shapes (and
        a batch size whose line is switched off takes the direct path)."""
        dep = make_deployment(**layout)
        timer = IterationTimer(dep, max_batch_size=256, max_context_tokens=5000)
        assert timer.affine.all()
        rng = np.random.default_rng(0)
        seqs = rng.integers(1, 257, size=2000)
        context = seqs * rng.integers(2, 5001, size=2000).astype(float)
        shapes = np.zeros((2000, len(FEATURES)))
        shapes[:, 0], shapes[:, 5], shapes[:, 6] = 1.0, seqs, context
        direct = iteration_times_s(dep, shapes)
        assert timer.decode(seqs, context) == pytest.approx(direct, rel=1e-9)
        timer.affine[7] = False
        assert timer.decode(seqs, context) == pytest.approx(direct, rel=1e-12)

    def test_micro_batched_decode_is_pp_stage_steps_of_the_largest_micro_batch(self) -> None:
        """PP 2, 9 sequences at 900 context tokens: micro-batches of 5 and 4; a step is 2 stage steps of 5
        sequences at 5/9 of the context (planner.sim.timing.MicroBatchedTimer)."""
        from planner.cost.iteration import stage_step
        from planner.sim.timing import MicroBatchedTimer

        dep = make_deployment(pp_size=2)
        timer = MicroBatchedTimer(dep, max_batch_size=16, max_context_tokens=2000)
        expected = 2 * stage_step(dep, BatchShape.decode(5, 900 * 5 / 9 / 5)).time_s
        assert timer.decode(np.array([9]), np.array([900.0]))[0] == pytest.approx(expected, rel=1e-9)

    def test_decode_steps_pad_to_the_next_cuda_graph(self) -> None:
        """vLLM V0 captures decode graphs at 1, 2, 4, 8, 16, ...: 9 sequences run as 16, paying 16 GEMM rows but
        the host-side work of 9; 256 is a graph size itself; 3 runs as 4."""
        dep = deployment("vllm")
        assert dep.engine.cuda_graph_batch_sizes[:5] == (1, 2, 4, 8, 16)
        timer = IterationTimer(dep, max_batch_size=256, max_context_tokens=5000)
        per_seq_s = dep.calibration.per_seq_overhead_s

        def direct(seqs: int, context: float) -> float:
            return float(iteration_times_s(dep, np.array([[1.0, 0, 0, 0, 0, seqs, context]]))[0])

        got = timer.decode(np.array([9, 256, 3]), np.array([9000.0, 256000.0, 300.0]))
        expected = [direct(16, 9000.0) - 7 * per_seq_s, direct(256, 256000.0), direct(4, 300.0) - per_seq_s]
        assert got == pytest.approx(expected, rel=1e-9)
        assert got[0] > direct(9, 9000.0)

    @pytest.mark.parametrize("layout", [{"pp_size": 2}, {"tp_size": 2, "pp_size": 2}, {}])
    def test_stage_steps_by_op_group_equal_the_compiled_stage_step(self, layout: dict[str, Any]) -> None:
        """A pipelined instance's micro-batch times, op group by op group in plain floats with each group's
        seconds memoised on the features it reads (planner.sim.timing.StageStepOps), equal stage_step_times_s
        to round-off at 2,000 random mixed shapes, many of them sharing some groups' features."""
        dep = make_deployment(**layout)
        timer = IterationTimer(dep, max_batch_size=64, max_context_tokens=5000, per_stage=True)
        assert timer.stage_step is not None
        rng = np.random.default_rng(1)
        shapes = []
        for _ in range(2000):
            chunks = [(int(rng.integers(0, 3)) * 512, int(rng.integers(1, 4)) * 128) for _ in range(rng.integers(0, 3))]
            decodes = int(rng.integers(0 if chunks else 1, 5))
            shapes.append(prefill_shape(chunks, decodes, decodes * int(rng.integers(10, 5000))))
        got = [timer.one(shape) for shape in shapes]
        assert got == pytest.approx(stage_step_times_s(dep, np.array(shapes)), rel=1e-12, abs=0)
        assert IterationTimer(make_deployment(model=make_moe_model(), pp_size=2), 8, 100, True).stage_step is None

    @pytest.mark.parametrize(
        "layout",
        [
            {"tp_size": 2, "pp_size": 2},
            {"pp_size": 2, "dtype": Dtype.fp8, "kv_dtype": Dtype.fp8},
            {"pp_size": 2, "dtype": Dtype.int4},
            {"tp_size": 4, "pp_size": 2, "engine": "vllm"},
        ],
    )
    def test_an_op_group_written_out_is_its_ops_summed_to_the_bit(self, layout: dict[str, Any]) -> None:
        """Each op group's function (planner.sim.timing._group_function) gives the sum of its ops'
        ScalarOp.seconds, float for float, at 500 random mixed shapes (long contexts among them), dense and
        quantised."""
        from planner.cost.compiled import compile_stage_step
        from planner.sim.timing import _group_function, _grouped_ops

        groups = _grouped_ops(compile_stage_step(make_deployment(**layout)))
        rng = np.random.default_rng(2)
        for _ in range(500):
            chunks = [(int(rng.integers(0, 4)) * 300, int(rng.integers(1, 600))) for _ in range(rng.integers(0, 3))]
            decodes = int(rng.integers(0 if chunks else 1, 64))
            shape = prefill_shape(chunks, decodes, decodes * int(rng.integers(10, 120_000)))
            for _, ops in groups:
                summed = 0.0
                for op in ops:
                    summed += op.seconds(shape)
                assert _group_function(ops)(shape) == summed

    @pytest.mark.parametrize("per_stage", [False, True])
    def test_one_decode_step_in_scalars_equals_decode(self, per_stage: bool) -> None:
        """decode_one (a pipelined virtual engine's single step) is decode() of that one step, to the bit: padded
        to a CUDA graph or not, on the lines or off them, and micro-batched."""
        from planner.sim.timing import MicroBatchedTimer

        dep = deployment("vllm", pp_size=2) if per_stage else deployment("vllm")
        timer = IterationTimer(dep, max_batch_size=256, max_context_tokens=5000, per_stage=per_stage)
        timer.affine[16] = False
        micro = MicroBatchedTimer(dep, max_batch_size=256, max_context_tokens=5000)
        for seqs, context in [(1, 17.0), (9, 9000.0), (16, 16000.0), (256, 256000.0), (3, 300.0)]:
            for t in (timer, micro):
                assert t.decode_one(seqs, context) == t.decode(np.array([seqs]), np.array([context]))[0]


class TestConservation:
    @pytest.mark.parametrize("scheduler", SCHEDULERS)
    @pytest.mark.parametrize(
        "stream",
        [
            offline(60, MIXED),
            poisson(40.0, 60, MIXED),
            bursty(40.0, 3.0, 60, MIXED),
            closed_loop(8, 50, MIXED, warmup_requests=10),
        ],
        ids=["offline", "poisson", "bursty", "closed-loop"],
    )
    def test_every_request_finishes_once_and_every_token_counts_once(self, scheduler: Scheduler, stream: Any) -> None:
        """Tight KV (4,000 tokens) and a small budget (512) so that chunks, waits and preemptions all happen."""
        policy = Policy(scheduler=scheduler, kv_capacity_tokens=4000, max_num_tokens=512)
        result = simulate(deployment(), stream, policy, replicas=2)
        r = arrays(result)
        counted = ~r["warmup"]
        assert len(r["arrival_s"]) == stream.total_requests
        assert np.all(np.isfinite(r["finish_s"]))
        assert np.all(r["arrival_s"] <= r["first_token_s"]) and np.all(r["first_token_s"] <= r["finish_s"])
        assert result.num_requests == stream.num_requests
        assert result.output_tokens == r["output_len"][counted].sum()
        assert result.output_throughput_tok_s * result.duration_s == pytest.approx(result.output_tokens, rel=1e-12)
        assert result.request_throughput_req_s * result.duration_s == pytest.approx(stream.num_requests, rel=1e-12)
        if scheduler is Scheduler.inflight:
            assert result.preemptions == 0  # GUARANTEED_NO_EVICT

    def test_busy_time_is_the_iterations_of_every_replica(self) -> None:
        """One replica, offline: the engine never idles from t = 0 to the last finish."""
        result = simulate(deployment(), offline(40, MIXED), replicas=1)
        busy = result.busy.prefill_s + result.busy.decode_s + result.busy.mixed_s
        assert busy == pytest.approx(result.duration_s, rel=1e-12)


class TestSingleRequestAlone:
    @pytest.mark.parametrize("scheduler", SCHEDULERS)
    @pytest.mark.parametrize(("input_len", "output_len"), [(1024, 256), (100, 2), (3000, 40)])
    def test_ttft_is_one_prefill_and_tpot_one_decode_step(
        self, scheduler: Scheduler, input_len: int, output_len: int
    ) -> None:
        """TTFT = the prefill iteration of I tokens; TPOT = the mean of O - 1 decode steps at contexts
        I + 1 ... I + O - 1, which is the step at the mean context I + O / 2 (a decode step is affine in its
        context). Exact up to float rounding."""
        dep = deployment()
        result = simulate(dep, offline(1, Workload.fixed(input_len, output_len)), Policy(scheduler=scheduler))
        prefill = iteration_cost(dep, BatchShape.prefill(input_len)).time_s
        step = iteration_cost(dep, BatchShape.decode(1, input_len + output_len / 2)).time_s
        assert result.ttft_s.mean == pytest.approx(prefill, rel=1e-12)
        assert result.tpot_s.mean == pytest.approx(step, rel=1e-9)
        assert result.itl_s.mean == pytest.approx(step, rel=1e-9)


class TestStaticBatch:
    @pytest.mark.parametrize("scheduler", SCHEDULERS)
    @pytest.mark.parametrize(("batch", "input_len", "output_len"), [(8, 512, 128), (32, 128, 64), (1, 2048, 16)])
    def test_matches_continuous_static_batch(
        self, scheduler: Scheduler, batch: int, input_len: int, output_len: int
    ) -> None:
        """B prompts in one iteration (the budget holds B x I tokens), then O - 1 decode steps of all B:
        continuous.static_batch, exact up to float rounding."""
        dep = deployment(max_num_tokens=batch * input_len)
        result = simulate(dep, static_batch(batch, Workload.fixed(input_len, output_len)), Policy(scheduler=scheduler))
        point = continuous.static_batch(dep, input_len, output_len, batch)
        assert result.ttft_s.mean == pytest.approx(point.ttft_s, rel=1e-12)
        assert result.tpot_s.mean == pytest.approx(point.tpot_s, rel=1e-9)
        assert result.request_throughput_req_s == pytest.approx(point.request_rate_req_s, rel=1e-9)


class TestOfflineThroughput:
    @pytest.mark.parametrize(("input_len", "output_len"), [(256, 64), (1024, 256), (2000, 2), (512, 1)])
    def test_prefill_first_equals_the_analytic_cycle(self, input_len: int, output_len: int) -> None:
        """Fixed lengths, prefill-first, N = 4 full batches: the simulator runs in waves (all B requests of a
        wave finish together), each wave B / k prompt iterations of k = max_num_tokens // I prompts and O - 1
        decode steps of B. The analytic cycle counts one request's life instead (its first token, then O - 1
        steps stretched by the other B - 1 prompts), which is longer by one prompt's first-token time less its
        share of a packed iteration: within 2% here (measured 0.3-1.3%)."""
        dep = deployment(max_batch_size=64, max_num_tokens=4 * input_len)
        result = simulate(dep, offline(256, Workload.fixed(input_len, output_len)))
        point = continuous.offline(dep, input_len, output_len, 64, 256)
        assert result.request_throughput_req_s == pytest.approx(point.request_rate_req_s, rel=0.02)
        assert result.request_throughput_req_s >= point.request_rate_req_s * (1 - 1e-9)

    @pytest.mark.parametrize(("input_len", "output_len"), [(256, 64), (1024, 256), (128, 32)])
    def test_mixed_batching_within_three_percent(self, input_len: int, output_len: int) -> None:
        """TensorRT-LLM profile (in-flight, budget 8192, 2048 sequences), 4 x the analytic batch. The analytic
        model charges a prompt its marginal cost beside a fractional steady-state batch (the token budget's
        balance, d = budget x O / (I + O)) and ignores ramp-up and drain; the simulator runs whole chunks and
        integer batches. Agreement within 3% (measured: 0.4%, 0.6%, 1.8%)."""
        dep = deployment("trtllm")
        batch = continuous.max_decode_batch(dep, input_len, output_len, 10**9)
        num_requests = 4 * int(batch)
        result = simulate(dep, offline(num_requests, Workload.fixed(input_len, output_len)))
        point = continuous.offline(dep, input_len, output_len, batch, num_requests)
        assert result.request_throughput_req_s == pytest.approx(point.request_rate_req_s, rel=0.03)


class TestClosedLoopLockStep:
    @pytest.mark.parametrize("clients", [1, 4, 16, 64])
    def test_first_wave_ttft_is_c_plus_one_over_two_prefills(self, clients: int) -> None:
        """Prefill-first with max_num_tokens = I = 1024, so each prefill iteration holds one prompt; C clients
        start together at t = 0 and nothing runs before them. Request j (1-based) gets its first token after j
        prefills, so the first wave's mean TTFT is (C + 1) / 2 prefills, exactly."""
        dep = deployment(max_num_tokens=1024)
        result = simulate(dep, closed_loop(clients, 3 * clients, Workload.fixed(1024, 64)))
        r = arrays(result)
        first_wave = (r["first_token_s"] - r["arrival_s"])[:clients]
        prefill = iteration_cost(dep, BatchShape.prefill(1024)).time_s
        assert first_wave.mean() == pytest.approx((clients + 1) / 2 * prefill, rel=1e-12)

    def test_clients_never_exceed_the_concurrency(self) -> None:
        result = simulate(deployment(), closed_loop(6, 80, MIXED, warmup_requests=6), replicas=3)
        r = arrays(result)
        for t in r["arrival_s"]:
            assert np.sum((r["arrival_s"] <= t) & (r["finish_s"] > t)) <= 6


class TestPreemption:
    @pytest.mark.parametrize("scheduler", [Scheduler.prefill_first, Scheduler.chunked])
    def test_exhausted_kv_preempts_and_every_request_still_finishes(self, scheduler: Scheduler) -> None:
        """32 requests of 512 + 512 tokens on 8,192 KV tokens: prompts are admitted on their prompt blocks
        alone, so decodes outgrow the cache and the newest are recomputed."""
        workload = Workload.fixed(512, 512)
        policy = Policy(scheduler=scheduler, kv_capacity_tokens=8192)
        result = simulate(deployment(), offline(32, workload), policy)
        assert result.preemptions > 0
        assert result.output_tokens == 32 * 512
        assert np.all(np.isfinite(arrays(result)["finish_s"]))

    def test_guaranteed_no_evict_admits_only_what_fits(self) -> None:
        """8,192 tokens hold 8 requests of 1,024 tokens reserved whole: at most 8 run at once, none evicted."""
        result = simulate(deployment("trtllm"), offline(32, Workload.fixed(512, 512)), Policy(kv_capacity_tokens=8192))
        assert result.preemptions == 0
        assert max(result.queue.running) <= 8

    def test_a_request_larger_than_the_cache_is_refused(self) -> None:
        with pytest.raises(PlannerError, match="KV cache"):
            simulate(deployment(), offline(1, Workload.fixed(4000, 200)), Policy(kv_capacity_tokens=4096))


class TestRunLength:
    @pytest.mark.parametrize("scheduler", SCHEDULERS)
    @pytest.mark.parametrize("routing", [Routing.round_robin, Routing.least_loaded])
    @pytest.mark.parametrize(
        "stream",
        [poisson(40.0, 60, MIXED), closed_loop(8, 50, MIXED, warmup_requests=10)],
        ids=["poisson", "closed-loop"],
    )
    def test_planning_many_decode_steps_at_once_changes_nothing(
        self, scheduler: Scheduler, routing: Routing, stream: Any
    ) -> None:
        """Runs of up to 512 decode steps, cut when an arrival could join, against runs of one step (plus the
        decode step that may follow a prompt iteration): the same iterations, preemptions and timestamps."""
        tight = {"scheduler": scheduler, "kv_capacity_tokens": 4000, "max_num_tokens": 512}
        stepwise = simulate(deployment(), stream, Policy(**tight, max_run_steps=1), replicas=2, routing=routing)
        batched = simulate(deployment(), stream, Policy(**tight), replicas=2, routing=routing)
        assert (stepwise.iterations, stepwise.preemptions) == (batched.iterations, batched.preemptions)
        for field in ("first_token_s", "finish_s"):
            a, b = getattr(stepwise.requests, field), getattr(batched.requests, field)
            assert a == pytest.approx(b, rel=1e-12)


class TestDeterminism:
    def test_same_seed_same_result(self) -> None:
        stream = poisson(30.0, 80, Workload.preset("sharegpt"))
        a, b = (simulate(deployment(), stream, replicas=2, seed=7) for _ in range(2))
        assert a == b

    def test_another_seed_draws_other_requests(self) -> None:
        stream = poisson(30.0, 80, Workload.preset("sharegpt"))
        a, b = (draw_requests(stream, seed) for seed in (1, 2))
        assert not np.array_equal(a.arrival_s, b.arrival_s)
        assert not np.array_equal(a.input_len, b.input_len)


class TestMoreMemory:
    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(
        scheduler=st.sampled_from(SCHEDULERS),
        input_len=st.integers(16, 600),
        output_len=st.integers(1, 300),
        kv_tokens=st.integers(1200, 20_000),
        extra_tokens=st.integers(0, 20_000),
    )
    def test_more_kv_memory_never_lowers_offline_throughput_beyond_finite_run_effects(
        self, scheduler: Scheduler, input_len: int, output_len: int, kv_tokens: int, extra_tokens: int
    ) -> None:
        """Offline, fixed lengths, 24 requests: a larger KV cache never lowers output throughput by more than
        5%. Not strictly never: a finite run ends with a partial batch, and more memory can leave a smaller one
        (24 requests as 21 + 3 instead of 14 + 10: the last 3 decode almost as slowly as 10 would); and a
        scheduler that admits on prompt blocks alone (vLLM) can admit one request more than decoding then
        holds, and preempt (see the pinned case below). A random search of 1,500 cases found at most 1.8%
        (prefill-first), 0.5% (chunked) and 0.09% (inflight)."""
        dep, stream = deployment(), offline(24, Workload.fixed(input_len, output_len))
        small = simulate(dep, stream, Policy(scheduler=scheduler, kv_capacity_tokens=kv_tokens))
        large = simulate(dep, stream, Policy(scheduler=scheduler, kv_capacity_tokens=kv_tokens + extra_tokens))
        assert large.output_throughput_tok_s >= small.output_throughput_tok_s * 0.95

    def test_one_more_admitted_prompt_can_cost_preemptions(self) -> None:
        """Prompts of 443 tokens (28 blocks) decoding 26 tokens (to 30 blocks), prefill-first, 1% watermark:
        245 blocks admit 8 prompts and hold their 8 x 30 blocks; 255 blocks admit 9 (252 blocks, 3 left
        above the 2-block watermark), which then need 270: the newest are recomputed, and throughput falls
        although memory grew."""
        dep, stream = deployment(), offline(24, Workload.fixed(443, 26))
        small = simulate(dep, stream, Policy(kv_capacity_tokens=245 * 16))
        large = simulate(dep, stream, Policy(kv_capacity_tokens=255 * 16))
        assert (small.preemptions, large.preemptions > 0) == (0, True)
        assert large.output_throughput_tok_s < small.output_throughput_tok_s


class TestKvBlocksAreConserved:
    """After every commit, each KV cache's free blocks plus the blocks its sequences hold equal its size: a
    step's blocks are taken once (reserved when planned, not again when committed), released once, and moved
    with a sequence between virtual engines sharing the cache."""

    @pytest.mark.parametrize(
        ("strategy", "tp", "pp", "workload"),
        [
            ("throttled-pipeline", 1, 8, Workload.preset("sharegpt")),  # one cache for eight virtual engines
            ("colocated", 2, 4, Workload.preset("sharegpt")),  # a cache per virtual engine
            (None, 4, 1, Workload.fixed(1024, 256)),  # vLLM on L20s: the cache overbooks and preempts
        ],
    )
    def test_free_and_held_blocks_sum_to_the_cache(
        self, monkeypatch: pytest.MonkeyPatch, strategy: str | None, tp: int, pp: int, workload: Workload
    ) -> None:
        from planner.comparison import build_context
        from planner.sim.instance import Instance
        from planner.sim.policy import Role
        from planner.sim.setup import PoolLayout, sim_pools
        from planner.sim.simulate import simulate_pools
        from planner.specs.catalog import load_catalog

        ctx = build_context(load_catalog(), "llama-2-70b", "8xL20", workload, "bf16", None, "vllm", None, None)
        pools, transfer = sim_pools(ctx, strategy, None, [PoolLayout(Role.serve, tp, pp, 8 // (tp * pp))])
        commit, checked = Instance.commit, []

        def checked_commit(self: Instance, run: Any, steps: int) -> list[int]:
            finished = commit(self, run, steps)
            sharing = [engine for engine in self.siblings if engine.kv is self.kv]
            assert self.kv.free + sum(int(engine.blocks.sum()) for engine in sharing) == self.kv.total
            checked.append(1)
            return finished

        monkeypatch.setattr(Instance, "commit", checked_commit)
        result = simulate_pools(pools, offline(400, workload), transfer)
        assert result.num_requests == 400 and len(checked) >= 100
        if strategy is None:
            assert result.preemptions > 0

    @pytest.mark.parametrize(("strategy", "tp", "pp"), [("throttled-pipeline", 1, 8), ("colocated", 2, 4)])
    def test_a_virtual_engine_plans_once_its_tokens_are_out(
        self, monkeypatch: pytest.MonkeyPatch, strategy: str, tp: int, pp: int
    ) -> None:
        """Outside the temporal scheduler (whose prompt micro-batches stream), every sequence a micro-batch decodes
        got its last token by the time the micro-batch is planned, so the event loop starts it then."""
        from planner.comparison import build_context
        from planner.sim.instance import Instance
        from planner.sim.policy import Role
        from planner.sim.setup import PoolLayout, sim_pools
        from planner.sim.simulate import simulate_pools
        from planner.specs.catalog import load_catalog

        workload = Workload.preset("sharegpt")
        ctx = build_context(load_catalog(), "llama-2-70b", "8xL20", workload, "bf16", None, "vllm", None, None)
        pools, transfer = sim_pools(ctx, strategy, None, [PoolLayout(Role.serve, tp, pp, 8 // (tp * pp))])
        plan_decode_run, prompt_run, checked = Instance.plan_decode_run, Instance.prompt_run, []

        def ready(self: Instance, start_s: float, slots: Any) -> None:
            assert not len(slots) or float(self.last_token_s[slots].max()) <= start_s
            checked.append(len(slots))

        def checked_decode(self: Instance, start_s: float, slots: Any, *args: Any) -> Any:
            ready(self, start_s, slots)
            return plan_decode_run(self, start_s, slots, *args)

        def checked_prompt(self: Instance, start_s: float, chunks: Any, slots: Any, stalled: Any, *args: Any) -> Any:
            ready(self, start_s, slots)
            ready(self, start_s, stalled)
            return prompt_run(self, start_s, chunks, slots, stalled, *args)

        monkeypatch.setattr(Instance, "plan_decode_run", checked_decode)
        monkeypatch.setattr(Instance, "prompt_run", checked_prompt)
        simulate_pools(pools, poisson(3.0, 400, workload), transfer)
        assert sum(checked) > 1000
