"""`phase-resharding` (Seesaw): prefill and decode phases with their own TP x PP on the same GPUs.

Hand-computed re-shard bytes, invariants of the cycle, and Seesaw's published offline throughput (up to 1.78x,
1.36x on average, over vLLM; seed_systems.md section 8 and row 33; hardware and models not readable), in a
setting of ours: Llama-2-70B in fp16 on one node of 8 PCIe L20s, LongBench-like long prompts, offline.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from planner.errors import PlannerError
from planner.specs.catalog import load_catalog
from planner.specs.hardware import Cluster
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies import get_strategy
from planner.strategies import phase_resharding as pr
from planner.strategies.base import Candidate, Context


def make_context(
    gpu: str = "l20", model: str = "llama-2-70b", num_gpus: int = 8, workload: str = "longbench"
) -> Context:
    c = load_catalog()
    return Context(
        catalog=c,
        model=c.model(model),
        cluster=Cluster(gpu=c.gpu(gpu), num_gpus=num_gpus, gpus_per_node=8),
        workload=Workload.preset(workload),
        dtype=Dtype.fp16,
        kv_dtype=Dtype.fp16,
        engine=c.engine("vllm"),
    )


def feasible(ctx: Context, name: str, knobs: dict[str, float] | None = None) -> list[Candidate]:
    return [c for c in get_strategy(name).candidates(ctx, knobs) if isinstance(c, Candidate)]


def reshards(candidate: Candidate) -> bool:
    return (candidate.detail["prefill_tp"], candidate.detail["prefill_pp"]) != (candidate.tp, candidate.pp)


class TestReshardBytes:
    """Llama-2-7B in fp16 (32 layers, h 4096, 32 KV heads of 128, MLP 11008, vocabulary 32000) on 2 GPUs.
    Per layer: attention 4 x 4096^2 = 67,108,864 parameters, of which the k/v projections are 2 x 4096 x 128
    = 1,048,576 per KV head; MLP 3 x 4096 x 11008 = 135,266,304; norms 2 x 4096 = 8,192. Embedding and LM head
    32000 x 4096 = 131,072,000 each; final norm 4,096."""

    MODEL = "llama-2-7b"

    def bytes_of(self, src: pr.Layout, dst: pr.Layout, gpu: int) -> tuple[float, float]:
        return pr.gpu_reshard_bytes(load_catalog().model(self.MODEL), 2, 2, src, dst, gpu)

    @pytest.mark.parametrize("gpu", [0, 1])
    def test_tp2_to_pp2(self, gpu: int) -> None:
        """GPU 0 (TP rank 0, all layers -> stage 0, layers 0-15 whole) holds half of each of its 16 new layers:
        it fetches the other half, 16 x 202,375,168 / 2 params x 2 bytes = 3,238,002,688 bytes (norms it has),
        plus the embedding's other half, 131,072,000 / 2 x 2 = 131,072,000: 3,369,074,688 bytes. GPU 1 fetches
        the other halves of layers 16-31 and of the LM head (the final norm it holds): the same.
        KV: 16 layers x 16 missing heads x 2 (K, V) x 128 x 2 bytes = 131,072 bytes per cached token."""
        weights, kv = self.bytes_of(pr.Layout(2, 1), pr.Layout(1, 2), gpu)
        assert weights == 3_369_074_688
        assert kv == 131_072

    def test_pp2_to_tp2(self) -> None:
        """Back: GPU 0 (stage 0 -> TP rank 0 of all layers) holds layers 0-15 whole; it fetches half of layers
        16-31 (3,238,002,688 bytes) with their norms (16 x 8,192 x 2 = 262,144), half of the LM head
        (131,072,000) and the final norm (8,192): 3,369,345,024 bytes."""
        weights, kv = self.bytes_of(pr.Layout(1, 2), pr.Layout(2, 1), 0)
        assert weights == 3_369_345_024
        assert kv == 131_072

    def test_same_layout_moves_nothing(self) -> None:
        assert self.bytes_of(pr.Layout(2, 1), pr.Layout(2, 1), 1) == (0.0, 0.0)

    def test_kv_heads_by_head(self) -> None:
        """Llama-2-70B has 8 KV heads. TP8 x PP1 -> TP4 x PP2, GPU 0: it held KV head 0 of all 80 layers and
        now holds heads 0 and 1 of layers 0-39, so it fetches head 1 of 40 layers: 40 x 2 (K, V) x 128 x 2
        bytes = 20,480 bytes per cached token."""
        model = load_catalog().model("llama-2-70b")
        assert pr.gpu_reshard_bytes(model, 2, 2, pr.Layout(8, 1), pr.Layout(4, 2), 0)[1] == 20_480

    def test_transition_time(self) -> None:
        """Two GPUs receiving 3.2e9 + 1000 x 1e6 and 1.6e9 bytes over 32 GB/s at 80%: the first sets the time,
        4.2e9 / 25.6e9 = 0.1640625 s, plus 10 us of latency."""
        transition = pr.Transition((3.2e9, 1.6e9), (1000.0, 0.0), 32e9, 10e-6, 0.8)
        assert transition.time_s(1e6) == pytest.approx(0.1640725)
        assert pr.Transition((0.0, 0.0), (0.0, 0.0), 32e9, 10e-6, 0.8).time_s(1e6) == 0.0

    def test_no_gpu_receives_more_than_the_model(self) -> None:
        model = load_catalog().model("llama-2-70b")
        whole = 69e9 * 2  # about 69 B parameters in fp16
        for gpu in range(8):
            weights, _ = pr.gpu_reshard_bytes(model, 2, 2, pr.Layout(8, 1), pr.Layout(1, 8), gpu)
            assert 0 < weights < whole / 8 * 1.1


class TestCycle:
    def test_longer_phases_amortise_the_reshards(self) -> None:
        ctx, strategy = make_context(), pr.PhaseResharding()
        shares = []
        for fill in (0.05, 0.25, 0.9):
            candidate = next(
                c
                for c in feasible(ctx, "phase-resharding", {"kv_fill": fill, "max_batch": 256})
                if (c.detail["prefill_tp"], c.detail["prefill_pp"], c.tp, c.pp) == (1, 8, 4, 2)
            )
            cycle = strategy.cycle(ctx, candidate)
            n = cycle.max_requests
            shares.append(cycle.reshard_s(n) / cycle.length_s(n))
        assert shares[0] > shares[1] > shares[2] > 0

    def test_faster_link_never_lowers_capacity(self) -> None:
        ctx = make_context()
        gpu = ctx.cluster.gpu
        fast_link = gpu.interconnect.model_copy(update={"bw_gb_s": 10 * gpu.interconnect.bw_gb_s})
        cluster = ctx.cluster.model_copy(update={"gpu": gpu.model_copy(update={"interconnect": fast_link})})
        fast = dataclasses.replace(ctx, cluster=cluster)
        strategy = pr.PhaseResharding()
        for candidate in feasible(ctx, "phase-resharding", {"kv_fill": 0.25, "max_batch": 256}):
            assert strategy.capacity_req_s(fast, candidate) >= strategy.capacity_req_s(ctx, candidate) * (1 - 1e-9)

    def test_latencies(self) -> None:
        ctx, strategy = make_context(), pr.PhaseResharding()
        candidate = next(
            c for c in feasible(ctx, "phase-resharding", {"kv_fill": 0.5, "max_batch": 256}) if reshards(c)
        )
        capacity = strategy.capacity_req_s(ctx, candidate)
        lat = strategy.latencies(ctx, candidate, 0.5 * capacity)
        assert lat is not None
        cycle = strategy.cycle(ctx, candidate)
        assert np.all(lat.ttft_s > 0) and np.all(lat.tpot_s >= cycle.step_s(1.0) * (1 - 1e-9))
        assert strategy.latencies(ctx, candidate, 1.05 * capacity) is None

    def test_decode_survival_by_hand(self) -> None:
        """Outputs of 2, 4 and 4 tokens: 1, 3 and 3 decode steps. More than 0 steps: all; more than 1 or 2: two
        of three."""
        assert pr.decode_survival(np.array([2, 4, 4])) == pytest.approx([1.0, 2 / 3, 2 / 3])
        assert len(pr.decode_survival(np.array([1, 1]))) == 0

    def test_the_decode_phase_drains_to_its_longest_request(self) -> None:
        """Two requests of 1 and 3 decode steps (S = 1, 1/2, 1/2): step 0 runs both; steps 1 and 2 run with
        probability a = 1 - (1 - 1/2)^2 = 3/4, with 2 x 1/2 / (3/4) = 4/3 requests then. One length: exactly
        n / B x (O - 1) steps of the full batch, with or without refills."""
        ctx, strategy = make_context(), pr.PhaseResharding()
        candidate = next(iter(feasible(ctx, "phase-resharding", {"kv_fill": 0.5, "max_batch": 2})))
        cycle = dataclasses.replace(strategy.cycle(ctx, candidate), survival=pr.decode_survival(np.array([2, 4])))

        def step(batch: float) -> float:
            return pr.continuous.decode_step(cycle.decode, batch, cycle.decode_context).time_s

        sizes = np.geomspace(1.0, cycle.max_batch, 16)
        at_4_3 = float(np.interp(4 / 3, sizes, [step(b) for b in sizes]))
        assert cycle.drain_s(2.0) == pytest.approx(step(2.0) + 2 * 0.75 * at_4_3, rel=1e-12)
        fixed = dataclasses.replace(cycle, survival=pr.decode_survival(np.array([4, 4])), output_len=4.0)
        assert fixed.decode_s(6.0) == pytest.approx(6 / 2 * 3 * step(2.0), rel=1e-12)

    def test_kv_fill_beyond_gpu_memory_is_refused(self) -> None:
        with pytest.raises(PlannerError, match=r"kv_fill must be a number in \(0, 1\], got 1.5"):
            list(pr.PhaseResharding().candidates(make_context(), {"kv_fill": 1.5, "max_batch": 256}))


@cache
def best_capacities(knobs: tuple[tuple[str, float], ...] = ()) -> tuple[float, float, Candidate]:
    """(colocated's best capacity, phase-resharding's best among re-sharding pairs, that pair) in the seed
    setting, req/s."""
    ctx = make_context()
    colocated = max(get_strategy("colocated").capacity_req_s(ctx, c) for c in feasible(ctx, "colocated"))
    strategy = get_strategy("phase-resharding")
    rated = [
        (strategy.capacity_req_s(ctx, c), c) for c in feasible(ctx, "phase-resharding", dict(knobs)) if reshards(c)
    ]
    capacity, candidate = max(rated, key=lambda r: r[0])
    print(f"phase-resharding {capacity:.3f} req/s ({candidate.label()}, {dict(candidate.detail)})")
    print(f"colocated {colocated:.3f} req/s")
    return colocated, capacity, candidate


class TestPublished:
    def test_seesaw_beats_colocated_offline(self) -> None:
        """Seesaw: offline throughput up to 1.78x (1.36x on average) over vLLM. tdplan: 2.352 req/s (prefill
        TP1 x PP8, decode TP4 x PP2) vs 1.759 (colocated TP4 x2): 1.34x. Prefill picks pipeline parallelism,
        decode tensor parallelism, as Seesaw argues."""
        colocated, capacity, candidate = best_capacities()
        assert 1.1 < capacity / colocated < 2.5
        assert candidate.detail["prefill_pp"] > candidate.pp and candidate.tp > candidate.detail["prefill_tp"]

    def test_short_phases_lose_to_colocated(self) -> None:
        """Phases of 2% of the KV cache (about 6 requests): the two re-shards, the pipeline fill and drain and
        a small decode batch are paid per handful of requests. tdplan: 0.524 req/s vs 1.759 (0.30x)."""
        colocated, capacity, _ = best_capacities((("kv_fill", 0.02),))
        assert capacity / colocated < 0.8

    def test_reshards_dominate_short_phases_on_a_slow_link(self) -> None:
        ctx = make_context(gpu="rtx-4090", model="qwen2.5-32b", workload="humaneval")
        strategy = pr.PhaseResharding()
        shares = []
        for candidate in feasible(ctx, "phase-resharding", {"kv_fill": 0.001, "max_batch": 256}):
            cycle = strategy.cycle(ctx, candidate)
            n = cycle.max_requests
            shares.append(cycle.reshard_s(n) / cycle.length_s(n))
        print(f"largest re-shard share of a cycle: {max(shares):.2f}")
        assert max(shares) > 0.5
