"""The simulator beyond one engine instance: pipelined instances as virtual engines sharing a flow shop of
stages (vLLM's virtual engines; gLLM's throttled and TD-Pipe's temporal schedulers over one KV cache), and
disaggregated prefill and decode pools joined by a KV transfer (planner.sim.pipeline,
planner.sim.decode_pool, simulate_pools). The tiny model of `test_ops` on the synthetic test GPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_ops import catalog_engine, make_deployment

from planner.cost.iteration import iteration_cost, send_cost, stage_step
from planner.cost.ops import BatchShape
from planner.errors import PlannerError
from planner.sim import Policy, closed_loop, offline, poisson
from planner.sim.instance import Instance, Ledger, PhaseState, WaitingQueue, join_siblings
from planner.sim.pipeline import StageClock
from planner.sim.policy import Phases, Role, Rotation, Scheduler, Throttle, resolve_scheduler
from planner.sim.resharding import Resharding
from planner.sim.simulate import PAIRED, KvTransfer, SimPool, simulate, simulate_pools
from planner.sim.throttled import prompt_tokens
from planner.sim.timing import IterationTimer
from planner.specs.deployment import Deployment
from planner.specs.engine import EngineConstants
from planner.specs.workload import Workload

MIXED = Workload(name="mixed", input_lens=(40, 300, 700, 90, 1500), output_lens=(5, 60, 20, 200, 1))
LINK = KvTransfer(bytes_per_token=1000.0, bandwidth_bytes_s=1e8, latency_s=1e-4)  # 10 µs per prompt token


def vllm(**layout: Any) -> Deployment:
    return make_deployment(engine=catalog_engine("vllm"), **layout)


def records(result: Any) -> dict[str, np.ndarray]:
    r = result.requests
    return {name: np.asarray(getattr(r, name)) for name in type(r).model_fields}


class TestStageClock:
    def test_flow_shop_by_hand(self) -> None:
        """Three stages; micro-batches of 2 s on the first stage and 1 s on the others, all ready at 0: the
        first leaves at 2 + 1 + 1 = 4; the second enters at 2, leaves stage 1 at 4, stage 2 at max(4, 3) + 1
        = 5, stage 3 at max(5, 4) + 1 = 6; a third ready only at 10 finds the stages free: 10 + 4 = 14."""
        clock = StageClock(3)
        assert clock.pass_through(0.0, 2.0, 1.0) == (2.0, 4.0)
        assert clock.pass_through(0.0, 2.0, 1.0) == (4.0, 6.0)
        assert clock.pass_through(10.0, 2.0, 1.0) == (12.0, 14.0)

    def test_a_long_micro_batch_holds_up_the_one_behind_at_every_stage(self) -> None:
        """A 5 s micro-batch ahead of a 1 s one: the short one leaves each stage right after the long one."""
        clock = StageClock(2)
        assert clock.pass_through(0.0, 5.0, 5.0) == (5.0, 10.0)
        assert clock.pass_through(0.0, 1.0, 1.0) == (6.0, 11.0)


class TestPipelinedInstance:
    @pytest.mark.parametrize("pp", [1, 2])
    def test_a_lone_prompt_crosses_every_stage(self, pp: int) -> None:
        """One request alone: TTFT = the whole-iteration time through pp stages plus one send (the sampled
        token back to the host), exactly (planner.sim.pipeline)."""
        dep = vllm(pp_size=pp)
        result = simulate(dep, offline(1, Workload.fixed(700, 3)))
        batch = BatchShape.prefill(700)
        expected = iteration_cost(dep, batch).time_s + (send_cost(dep, batch).time_s if pp > 1 else 0.0)
        assert result.ttft_s.mean == pytest.approx(expected, rel=1e-12)

    def test_each_virtual_engine_holds_a_share_of_the_kv_cache(self) -> None:
        dep = vllm(pp_size=2)
        result = simulate(dep, offline(4, MIXED), Policy(kv_capacity_tokens=8000))
        assert result.kv_capacity_tokens == 8000  # per replica: two virtual engines of 4,000

    def test_micro_batches_keep_the_stages_busy(self) -> None:
        """Decode-heavy offline load on PP 2: each virtual engine runs its full batch (the engine's sequence
        cap) and the two alternate on the stages, so a token comes every round of two stage steps at the mean
        context I + O / 2 (within 3%: ramp-up and drain)."""
        dep = vllm(pp_size=2)
        result = simulate(dep, offline(2000, Workload.fixed(32, 512)))
        cap = dep.engine.max_batch_size
        round_s = 2 * stage_step(dep, BatchShape.decode(cap, 32 + 512 / 2)).time_s
        assert result.itl_s.p50 == pytest.approx(round_s, rel=0.03)

    @pytest.mark.parametrize("stream", [offline(60, MIXED), poisson(40.0, 60, MIXED), closed_loop(8, 50, MIXED)])
    def test_conservation(self, stream: Any) -> None:
        result = simulate(vllm(pp_size=2), stream, Policy(kv_capacity_tokens=8000, max_num_tokens=512), replicas=2)
        r = records(result)
        assert np.all(np.isfinite(r["finish_s"]))
        assert np.all(r["arrival_s"] <= r["first_token_s"]) and np.all(r["first_token_s"] <= r["finish_s"])
        assert result.output_tokens == r["output_len"][~r["warmup"]].sum()


def pools(kv_decode: int | None = None, n_p: int = 1, n_d: int = 1) -> list[SimPool]:
    dep = vllm()
    return [
        SimPool(dep, n_p, Role.prefill),
        SimPool(dep, n_d, Role.decode, Policy(kv_capacity_tokens=kv_decode)),
    ]


class TestDisaggregated:
    def test_a_lone_request_by_hand(self) -> None:
        """First token when the prefill ends; its KV (I x 1,000 bytes at 100 MB/s, plus 0.1 ms) reaches the
        decode instance, which then runs O - 1 decode steps at contexts I + 1 ... I + O - 1."""
        dep = vllm()
        i, o = 700, 9
        result = simulate_pools(pools(), offline(1, Workload.fixed(i, o)), LINK)
        r = records(result)
        prefill = iteration_cost(dep, BatchShape.prefill(i)).time_s
        transfer = i * 1000 / 1e8 + 1e-4
        steps = sum(iteration_cost(dep, BatchShape.decode(1, i + k)).time_s for k in range(1, o))
        assert r["first_token_s"][0] == pytest.approx(prefill, rel=1e-12)
        assert r["finish_s"][0] == pytest.approx(prefill + transfer + steps, rel=1e-9)

    @pytest.mark.parametrize(
        "stream", [offline(60, MIXED), poisson(40.0, 60, MIXED), closed_loop(8, 50, MIXED, warmup_requests=10)]
    )
    def test_conservation_with_preemption_in_the_decode_pool(self, stream: Any) -> None:
        """A decode pool of 2,000 tokens: it preempts and recomputes, and every request still finishes once."""
        result = simulate_pools(pools(kv_decode=2000, n_p=2, n_d=2), stream, LINK)
        r = records(result)
        counted = ~r["warmup"]
        assert np.all(np.isfinite(r["finish_s"]))
        assert np.all(r["arrival_s"] <= r["first_token_s"]) and np.all(r["first_token_s"] <= r["finish_s"])
        assert result.output_tokens == r["output_len"][counted].sum()
        assert result.busy.mixed_s == 0.0  # no iteration holds prompts and decodes together

    def test_decode_pool_preempts_when_its_cache_is_short(self) -> None:
        result = simulate_pools(pools(kv_decode=2000), offline(60, MIXED), LINK)
        assert result.preemptions > 0

    def test_a_slower_link_never_lowers_ttft_but_delays_the_finish(self) -> None:
        """The first token streams from the prefill instance; the transfer only delays the decode."""
        stream = poisson(20.0, 80, MIXED)
        fast = simulate_pools(pools(), stream, LINK)
        slow = simulate_pools(pools(), stream, KvTransfer(1000.0, 1e7, 1e-3))
        assert slow.ttft_s.mean == pytest.approx(fast.ttft_s.mean, rel=1e-12)
        assert slow.e2e_s.mean > fast.e2e_s.mean

    def test_pools_are_checked(self) -> None:
        with pytest.raises(PlannerError, match="KV transfer"):
            simulate_pools(pools(), offline(4, MIXED))
        with pytest.raises(PlannerError, match="one serve pool or a prefill and a decode pool"):
            simulate_pools(list(reversed(pools())), offline(4, MIXED), LINK)

    def test_same_seed_same_result(self) -> None:
        stream = poisson(30.0, 50, MIXED)
        first = simulate_pools(pools(), stream, LINK, seed=5)
        again = simulate_pools(pools(), stream, LINK, seed=5)
        assert first.model_dump_json() == again.model_dump_json()


THROTTLE = Throttle(max_prefill_tokens=2048, min_prefill_tokens=32, iterp=8, kv_threshold=0.05)


def throttled(kv_tokens: int | None = None, **throttle: Any) -> Policy:
    return Policy(scheduler=Scheduler.throttled, throttle=THROTTLE.model_copy(update=throttle),
                  kv_capacity_tokens=kv_tokens)  # fmt: skip


def temporal(kv_tokens: int | None = None, kv_fill: float = 0.9, switch_batch: float = 4) -> Policy:
    phases = Phases(prefill_tokens=192, kv_fill=kv_fill, switch_batch=switch_batch, horizons=(5, 8, 16, 32, 64))
    return Policy(scheduler=Scheduler.temporal, phases=phases, kv_capacity_tokens=kv_tokens)


class TestThrottle:
    def test_prompt_tokens_by_hand(self) -> None:
        """KV half free, 4,000 prompt tokens queued: UT = round(2048 x (0.5 - 0.05) / 0.95) = 970,
        WT = max(4000 // 8, 32) = 500, free-block bound 16 x (500 - 0.05 x 1000) = 7,200: 500 tokens."""
        config = resolve_scheduler(vllm(pp_size=2), throttled(kv_tokens=16000))
        assert config.shared and config.total_blocks == 1000
        ledger = Ledger(
            input_len=np.array([1000] * 4), output_len=np.array([10] * 4), counted=np.ones(4, bool),
            arrival_s=np.zeros(4),
        )  # fmt: skip
        instance = Instance(0, config, ledger, IterationTimer(vllm(pp_size=2), 8, 2000, per_stage=True))
        for req in range(4):
            instance.waiting.append(req)
        instance.kv.free = 500
        assert instance.waiting.tokens == 4000
        assert prompt_tokens(instance, decodes=0) == 500
        instance.kv.free = 60  # free-block bound: 16 x int(60 - 50) = 160
        assert prompt_tokens(instance, decodes=0) == min(round(2048 * (0.06 - 0.05) / 0.95), 160) == 22
        instance.kv.free = 40  # below the threshold: no prompt tokens
        assert prompt_tokens(instance, decodes=0) == 0


class TestTally:
    def test_sums_over_virtual_engines(self) -> None:
        """The shared tally of joined virtual engines equals the sums of their own counters as requests are
        admitted, prefilled, moved between them and released."""
        config = resolve_scheduler(vllm(pp_size=2), throttled(kv_tokens=16000))
        ledger = Ledger(
            input_len=np.array([100, 40, 70]), output_len=np.array([5, 3, 4]), counted=np.ones(3, bool),
            arrival_s=np.zeros(3),
        )  # fmt: skip
        timer = IterationTimer(vllm(pp_size=2), 8, 2000, per_stage=True)
        queue = WaitingQueue(ledger)
        engines = [Instance(v, config, ledger, timer, waiting=queue) for v in range(2)]
        join_siblings(engines, PhaseState())

        def check() -> None:
            tally = engines[0].tally
            assert engines[1].tally is tally
            assert tally.used == sum(e.num_used for e in engines)
            assert tally.decoding == sum(e.num_decoding for e in engines)
            assert tally.prefill_left == sum(e.prefill_left for e in engines)
            assert tally.prefill_need == sum(e.prefill_need for e in engines)

        a, b = engines
        slots = [a.admit(0, 2), a.admit(1, 3), b.admit(2, 1)]
        check()
        assert a.tally.prefill_left == 210 and a.tally.prefill_need == 7 + 3 + 5 - 6
        b.grant_prompt_blocks(slots[2], 4)
        a._commit_chunk(slots[0], 100, 1.0)  # a whole prompt: it decodes
        a._commit_chunk(slots[1], 16, 1.0)
        check()
        a.move_to(b, slots[0])
        check()
        a.release(slots[1])
        check()
        assert a.tally.used == 2 and a.tally.decoding == 1


class TestSharedPipelineSchedulers:
    @pytest.mark.parametrize("policy", [throttled(kv_tokens=6000), temporal(kv_tokens=6000)], ids=["gllm", "tdpipe"])
    @pytest.mark.parametrize(
        "stream", [offline(60, MIXED), poisson(40.0, 60, MIXED), closed_loop(8, 50, MIXED, warmup_requests=10)]
    )
    def test_conservation(self, policy: Policy, stream: Any) -> None:
        """Tight KV (6,000 tokens shared by both virtual engines): every request finishes once."""
        result = simulate(vllm(pp_size=2), stream, policy, replicas=2)
        r = records(result)
        assert np.all(np.isfinite(r["finish_s"]))
        assert np.all(r["arrival_s"] <= r["first_token_s"]) and np.all(r["first_token_s"] <= r["finish_s"])
        assert result.output_tokens == r["output_len"][~r["warmup"]].sum()
        assert result.kv_capacity_tokens == 6000  # one cache for the instance, not one per virtual engine

    def test_temporal_phases_never_mix_prompts_and_decodes(self) -> None:
        result = simulate(vllm(pp_size=2), offline(200, MIXED), temporal())
        assert result.busy.mixed_s == 0.0 and result.busy.prefill_s > 0 and result.busy.decode_s > 0

    def test_temporal_prefill_phase_stops_at_the_fill_target(self) -> None:
        """Fixed 200/64 requests, 20,000 KV tokens filled to 50%: a fresh request's predicted footprint at
        the first horizon is 200 + 1 + 5 tokens, so at most 10,000 / 206 = 48 run at once."""
        work = Workload.fixed(200, 64)
        result = simulate(vllm(pp_size=2), offline(300, work), temporal(20000, kv_fill=0.5))
        assert 0 < max(result.queue.running) <= 48
        assert result.preemptions == 0
        fuller = simulate(vllm(pp_size=2), offline(300, work), temporal(20000, kv_fill=0.9))
        assert max(fuller.queue.running) > max(result.queue.running)  # the target, not the batch cap, binds

    def test_throttled_micro_batches_hold_prompts_and_decodes(self) -> None:
        result = simulate(vllm(pp_size=2), offline(200, MIXED), throttled())
        assert result.busy.mixed_s > 0

    def test_same_seed_same_result(self) -> None:
        stream = poisson(30.0, 50, MIXED)
        for policy in (throttled(), temporal()):
            first = simulate(vllm(pp_size=2), stream, policy, seed=2)
            assert first.model_dump_json() == simulate(vllm(pp_size=2), stream, policy, seed=2).model_dump_json()


def macros(ttft_s: float, tpot_s: float, kv_tokens: int | None = None) -> Policy:
    return Policy(rotation=Rotation(size=3, ttft_s=ttft_s, tpot_s=tpot_s), kv_capacity_tokens=kv_tokens)


class TestMacroInstance:
    def test_ample_credit_keeps_every_prompt_on_the_pointer(self) -> None:
        """Credits of hours never run out and the KV never fills: the pointer never moves."""
        result = simulate(vllm(), poisson(40.0, 200, MIXED), macros(3600.0, 3600.0), replicas=3)
        assert set(records(result)["replica"].tolist()) == {0}

    def test_spent_credit_rotates_the_pointer(self) -> None:
        """A TPOT target below the decode step: credits go negative, so every instance takes prompts in turn."""
        result = simulate(vllm(), poisson(40.0, 200, MIXED), macros(0.05, 1e-4), replicas=3)
        counts = np.bincount(records(result)["replica"], minlength=3)
        assert np.all(counts > 0)

    def test_a_full_kv_cache_rotates_the_pointer(self) -> None:
        """2,000 KV tokens per instance and ample credit: the pointer moves when the blocks run out."""
        result = simulate(vllm(), offline(60, MIXED), macros(3600.0, 3600.0, kv_tokens=2000), replicas=3)
        assert len(set(records(result)["replica"].tolist())) == 3

    @pytest.mark.parametrize("stream", [poisson(40.0, 60, MIXED), closed_loop(8, 50, MIXED, warmup_requests=10)])
    def test_conservation(self, stream: Any) -> None:
        result = simulate(vllm(), stream, macros(0.5, 0.01, kv_tokens=4000), replicas=3)
        r = records(result)
        assert np.all(np.isfinite(r["finish_s"]))
        assert result.output_tokens == r["output_len"][~r["warmup"]].sum()

    def test_instances_must_form_whole_macros(self) -> None:
        with pytest.raises(PlannerError, match="do not form macros of 3"):
            simulate(vllm(), offline(4, MIXED), macros(1.0, 0.1), replicas=4)


class TestSmPartition:
    def pools(self, kv_tokens: int | None = None) -> list[SimPool]:
        """Prefill worker on the test GPU; decode worker twice as slow while the prefill worker runs."""
        dep = vllm()
        slow = vllm(constants=EngineConstants(iteration_overhead_s=0.002, per_seq_overhead_s=2e-5))
        return [
            SimPool(dep, 2, Role.prefill, Policy(kv_capacity_tokens=kv_tokens)),
            SimPool(dep, 2, Role.decode, Policy(kv_capacity_tokens=kv_tokens), contended=slow),
        ]

    def test_a_lone_request_stays_on_its_instance_and_moves_no_bytes(self) -> None:
        """Prefill, then at once the decode steps on the paired worker (alone: the prefill worker is idle)."""
        dep, i, o = vllm(), 700, 9
        result = simulate_pools(self.pools(), offline(1, Workload.fixed(i, o)), PAIRED)
        r = records(result)
        prefill = iteration_cost(dep, BatchShape.prefill(i)).time_s
        steps = sum(iteration_cost(dep, BatchShape.decode(1, i + k)).time_s for k in range(1, o))
        assert r["finish_s"][0] == pytest.approx(prefill + steps, rel=1e-9)
        assert result.replicas == 2 and result.scheduler.startswith("SM partition")

    def test_decode_steps_slow_down_while_the_prefill_worker_runs(self) -> None:
        stream = poisson(60.0, 300, MIXED)
        pools = self.pools()
        contended = simulate_pools(pools, stream, PAIRED)
        alone = simulate_pools([pools[0], SimPool(vllm(), 2, Role.decode)], stream, PAIRED)
        assert contended.tpot_s.mean > alone.tpot_s.mean
        assert contended.ttft_s.mean == pytest.approx(alone.ttft_s.mean, rel=1e-12)  # prompts never wait on decodes

    @pytest.mark.parametrize("stream", [offline(60, MIXED), closed_loop(8, 50, MIXED, warmup_requests=10)])
    def test_conservation_in_one_kv_cache_per_pair(self, stream: Any) -> None:
        result = simulate_pools(self.pools(kv_tokens=3000), stream, PAIRED)
        r = records(result)
        assert np.all(np.isfinite(r["finish_s"]))
        assert result.output_tokens == r["output_len"][~r["warmup"]].sum()


class TestPhaseResharding:
    def pool(self, fill_tokens: float = 1e9, kv_tokens: int | None = None) -> SimPool:
        """Prefill layout PP 2, decode layout TP 2; a switch to decode takes 0.5 s + 1 ms per KV token, back 0.2 s."""
        plan = Resharding(
            prefill=vllm(pp_size=2),
            to_decode_s=lambda tokens: 0.5 + 1e-3 * tokens,
            to_prefill_s=0.2,
            fill_tokens=fill_tokens,
            decode_batch=8,
        )
        policy = Policy(scheduler=Scheduler.resharding, kv_capacity_tokens=kv_tokens)
        return SimPool(vllm(tp_size=2), 1, Role.serve, policy, resharding=plan)

    def test_a_lone_request_by_hand(self) -> None:
        """Its prompt crosses both prefill stages; the layout switch moves its I + 1 tokens of KV; then O - 1
        decode steps in the decode layout."""
        i, o = 700, 9
        result = simulate_pools([self.pool()], offline(1, Workload.fixed(i, o)))
        r = records(result)
        prefill, decode = vllm(pp_size=2), vllm(tp_size=2)
        batch = BatchShape.prefill(i)
        first = iteration_cost(prefill, batch).time_s + send_cost(prefill, batch).time_s
        switch = 0.5 + 1e-3 * (i + 1)
        steps = sum(iteration_cost(decode, BatchShape.decode(1, i + k)).time_s for k in range(1, o))
        assert r["first_token_s"][0] == pytest.approx(first, rel=1e-9)
        assert r["finish_s"][0] == pytest.approx(first + switch + steps, rel=1e-9)
        assert result.busy.reshard_s == pytest.approx(switch, rel=1e-12)

    def test_phases_fill_to_the_target_and_switch_back(self) -> None:
        """20 requests of 100 + 20 tokens with a fill target of 600 tokens: phases of 5 requests, four cycles,
        so four switches to decode and three back."""
        result = simulate_pools([self.pool(fill_tokens=600)], offline(20, Workload.fixed(100, 20)))
        r = records(result)
        assert len(np.unique(np.round(r["first_token_s"], 9))) >= 4  # first tokens come in phases
        kv_per_phase = 5 * 101
        expected = 4 * (0.5 + 1e-3 * kv_per_phase) + 3 * 0.2
        assert result.busy.reshard_s == pytest.approx(expected, rel=1e-9)
        assert result.busy.mixed_s == 0.0

    @pytest.mark.parametrize("stream", [poisson(40.0, 60, MIXED), closed_loop(8, 50, MIXED, warmup_requests=10)])
    def test_conservation(self, stream: Any) -> None:
        result = simulate_pools([self.pool(fill_tokens=3000, kv_tokens=4000)], stream)
        r = records(result)
        assert np.all(np.isfinite(r["finish_s"]))
        assert result.output_tokens == r["output_len"][~r["warmup"]].sum()


class TestReviewFindings:
    def test_a_tight_shared_cache_lets_started_prompts_finish(self) -> None:
        """2,500 tokens shared by two virtual engines and prompts of up to 1,500: a prompt starts only when it
        fits beside the started ones, so no two half-prefilled prompts evict each other for ever."""
        policy = throttled(kv_tokens=2500, iterp=4)
        result = simulate(vllm(pp_size=2), offline(30, MIXED), policy)
        assert result.num_requests == 30

    def test_an_sm_partition_hand_off_keeps_the_blocks_in_the_shared_cache(self) -> None:
        """Offline on 4,000 tokens per pair: the simulator raises if a cache ever holds more than it has."""
        result = simulate_pools(TestSmPartition().pools(kv_tokens=4000), offline(300, MIXED), PAIRED)
        assert result.num_requests == 300

    def test_paired_workers_need_one_cache_size(self) -> None:
        dep = vllm()
        pools = [SimPool(dep, 1, Role.prefill, Policy(kv_capacity_tokens=4000)),
                 SimPool(dep, 1, Role.decode, Policy(kv_capacity_tokens=8000))]  # fmt: skip
        with pytest.raises(PlannerError, match="same capacity"):
            simulate_pools(pools, offline(4, MIXED), PAIRED)

    def test_the_resharding_scheduler_needs_its_layouts(self) -> None:
        with pytest.raises(PlannerError, match="needs its layouts"):
            simulate(vllm(), offline(4, MIXED), Policy(scheduler=Scheduler.resharding))

    def test_zero_replicas_is_an_error(self) -> None:
        with pytest.raises(PlannerError, match="at least 1"):
            simulate(vllm(), offline(4, MIXED), replicas=0)
