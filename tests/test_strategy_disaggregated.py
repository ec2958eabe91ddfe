"""The `disaggregated` strategy (planner.strategies.disaggregated): KV bytes and links by hand, DistServe's
queueing formulas, placement rules, invariants, and the two seed results (DistServe's win on NVLink, and the
reverse over slow Ethernet with long prompts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from planner.errors import PlannerError
from planner.specs.catalog import load_catalog
from planner.specs.hardware import Cluster, NetworkSpec
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies import continuous, disaggregated, get_strategy
from planner.strategies.base import Candidate, Context, Infeasible, Slo, StrategyResult, evaluate
from planner.strategies.disaggregated import kv_bytes_per_token, kv_link, mg1_wait_s

CATALOG = load_catalog()
STRATEGY = disaggregated.Disaggregated()


def make_ctx(
    model: str = "opt-13b",
    gpu: str = "a100",
    num_gpus: int = 4,
    gpus_per_node: int = 8,
    network: str = "100gbe",
    workload: str = "sharegpt",
    kv_dtype: Dtype = Dtype.fp16,
) -> Context:
    return Context(
        catalog=CATALOG,
        model=CATALOG.model(model),
        cluster=Cluster(
            gpu=CATALOG.gpu(gpu),
            num_gpus=num_gpus,
            gpus_per_node=gpus_per_node,
            network=NetworkSpec.parse(network),
        ),
        workload=Workload.preset(workload),
        dtype=Dtype.fp16,
        kv_dtype=kv_dtype,
        engine=CATALOG.engine("vllm"),
    )


def feasible(ctx: Context) -> list[Candidate]:
    return [c for c in STRATEGY.candidates(ctx) if isinstance(c, Candidate)]


def split(
    ctx: Context, prefill: tuple[int, int], decode: tuple[int, int], n_p: int, n_d: int, placement: str
) -> Candidate:
    link = kv_link(ctx, prefill[0] * prefill[1], decode[0] * decode[1], n_p, n_d, placement == "in-node", 1.0)
    return STRATEGY.build_candidate(ctx, prefill, decode, n_p, n_d, placement, link)


def best_per_gpu(name: str, ctx: Context, slo: Slo) -> StrategyResult:
    """The candidate with the most goodput per GPU. Colocated layouts with PP > 1 or TP across nodes are skipped
    to keep the file fast: in both seed settings they trail (4 x A100, OPT-13B, ShareGPT: 6.0 req/s/GPU at
    best with PP against 7.6; over 10GbE the best colocated layout is TP1)."""
    strategy = get_strategy(name)
    candidates = [c for c in strategy.candidates(ctx) if isinstance(c, Candidate)]
    if name == "colocated":
        candidates = [c for c in candidates if c.pp == 1 and c.tp <= ctx.cluster.gpus_per_node]
    results = [evaluate(strategy, ctx, c, slo) for c in candidates]
    return max((r for r in results if r.feasible), key=lambda r: (r.goodput_req_s or 0.0) / r.gpus_used)


class TestKvBytes:
    @pytest.mark.parametrize(
        ("model", "kv_dtype", "expected"),
        [
            ("opt-13b", Dtype.fp16, 819_200),  # 2 (K, V) x 40 layers x 40 heads x 128 head_dim x 2 bytes
            ("opt-13b", Dtype.fp8, 409_600),  # the same at 1 byte per element
            ("llama-3.1-8b", Dtype.fp16, 131_072),  # 2 x 32 layers x 8 KV heads x 128 x 2 bytes (GQA)
        ],
    )
    def test_bytes_per_token_of_the_whole_model(self, model: str, kv_dtype: Dtype, expected: int) -> None:
        assert kv_bytes_per_token(make_ctx(model=model, kv_dtype=kv_dtype)) == expected


class TestKvLink:
    def test_transfer_over_100gbe(self) -> None:
        """OPT-13B, 1000-token prompt: 819,200 x 1000 = 819.2 MB over 100 Gb/s = 12.5 GB/s takes 65.536 ms,
        plus 10 us of Ethernet latency = 65.546 ms (line rate, eff 1)."""
        ctx = make_ctx(num_gpus=2, gpus_per_node=1, network="100gbe")
        link = kv_link(ctx, 1, 1, 1, 1, in_node=False, eff=1.0)
        assert link.lane_bw_bytes_s == 12.5e9
        assert link.latency_s == pytest.approx(10e-6)
        transfer = link.transfer_s(np.array([1000 * kv_bytes_per_token(ctx)]))
        assert transfer[0] == pytest.approx(0.065546, rel=1e-9)

    def test_nodes_share_their_nics(self) -> None:
        """8 GPUs behind one 100GbE port: 12.5 GB/s / 8 = 1.5625 GB/s per GPU lane."""
        ctx = make_ctx(num_gpus=16, gpus_per_node=8, network="100gbe")
        assert kv_link(ctx, 1, 1, 1, 1, in_node=False, eff=1.0).lane_bw_bytes_s == 1.5625e9

    def test_network_share_capped_by_the_pcie_link_to_the_nic(self) -> None:
        """8 x 400 Gb/s per node = 50 GB/s per GPU, but the GPU reaches its NIC over PCIe 4 at 32 GB/s."""
        ctx = make_ctx(num_gpus=16, gpus_per_node=8, network="8xib-ndr")
        assert kv_link(ctx, 1, 1, 1, 1, in_node=False, eff=1.0).lane_bw_bytes_s == 32e9

    @pytest.mark.parametrize(
        ("gpu", "name", "bw_s", "latency_s"),
        [
            ("a100", "nvlink3", 300e9, 3e-6),
            ("l40s", "pcie4", 32e9, 10e-6),  # PCIe peer-to-peer
            ("rtx-4090", "pcie4 through host", 16e9, 20e-6),  # no p2p: half the bandwidth, twice the latency
        ],
    )
    def test_in_node_link(self, gpu: str, name: str, bw_s: float, latency_s: float) -> None:
        link = kv_link(make_ctx(gpu=gpu, model="llama-3.1-8b"), 1, 1, 1, 1, in_node=True, eff=1.0)
        assert (link.name, link.lane_bw_bytes_s) == (name, bw_s)
        assert link.latency_s == pytest.approx(latency_s)

    def test_lanes_and_pooled_capacity(self) -> None:
        """3 prefill instances of 1 GPU feeding 1 decode instance of 2 GPUs: one transfer uses min(1, 2) = 1
        lane; the pools move min(3 x 1, 1 x 2) = 2 lanes: 2 x 300 GB/s x 0.5 = 300 GB/s."""
        link = kv_link(make_ctx(), 1, 2, 3, 1, in_node=True, eff=0.5)
        assert (link.lanes, link.pool_lanes) == (1, 2)
        assert link.capacity_bytes_s == 300e9


class TestQueueFormulas:
    def test_md1_is_distserve_average_ttft(self) -> None:
        """DistServe (section 4.1), M/D/1: Avg_TTFT = D + R D^2 / (2 (1 - R D)). D = 50 ms, R = 10/s:
        0.05 + 10 x 0.0025 / (2 x 0.5) = 0.075 s."""
        rho, wait = mg1_wait_s(10.0, np.full(8, 0.05))
        assert rho == pytest.approx(0.5)
        assert 0.05 + wait == pytest.approx(0.075)

    def test_two_stage_pipeline_is_distserve_inter_op_formula(self) -> None:
        """2-way inter-op: D + R D^2 / (4 (2 - R D)) = 0.05 + 10 x 0.0025 / (4 x 1.5) = 0.0541667 s; the queue
        serves one stage, D / 2 = 25 ms."""
        _, wait = mg1_wait_s(10.0, np.full(8, 0.025))
        assert 0.05 + wait == pytest.approx(0.0541667, rel=1e-5)

    def test_variable_prompts_wait_longer(self) -> None:
        """Services 20 and 60 ms at 10/s: E[s] = 40 ms, E[s^2] = 0.002, W = 10 x 0.002 / (2 x 0.6) = 16.67 ms,
        above M/D/1 at the same mean: 10 x 0.0016 / 1.2 = 13.33 ms."""
        rho, wait = mg1_wait_s(10.0, np.array([0.02, 0.06]))
        assert rho == pytest.approx(0.4)
        assert wait == pytest.approx(0.0166667, rel=1e-5)

    def test_saturated_queue_waits_forever(self) -> None:
        assert mg1_wait_s(25.0, np.full(2, 0.04))[1] == math.inf


class TestDecodeBatch:
    def test_littles_law(self) -> None:
        """B = rate x steps x t_step(B) at the solution."""
        ctx = make_ctx()
        decode = STRATEGY.decode_deployment(ctx, 1, 1)
        context = ctx.workload.mean_decode_context
        batch = disaggregated.decode_batch(decode, 5.0, 200.0, 256.0, context)
        step_s = continuous.decode_step(decode, batch, context).time_s
        assert batch == pytest.approx(5.0 * 200.0 * step_s, rel=1e-6)

    def test_beyond_a_full_batch_is_unstable(self) -> None:
        ctx = make_ctx()
        decode = STRATEGY.decode_deployment(ctx, 1, 1)
        assert disaggregated.decode_batch(decode, 1000.0, 200.0, 64.0, 500.0) == math.inf


class TestPlacement:
    def test_single_node_moves_kv_over_nvlink(self) -> None:
        candidates = feasible(make_ctx())
        assert candidates
        for c in candidates:
            assert (c.detail["placement"], c.detail["kv_link"]) == ("in-node", "nvlink3")
            assert c.gpus_used == c.detail["prefill_gpus"] + c.detail["decode_gpus"] <= 4
            assert c.detail["prefill_decode_ratio"] == f"{c.detail['prefill_instances']}:{c.replicas}"

    def test_one_gpu_per_node_moves_kv_over_the_network(self) -> None:
        candidates = feasible(make_ctx(model="llama-3.1-8b", gpus_per_node=1, network="10gbe"))
        assert candidates
        assert {(c.detail["placement"], c.detail["kv_link"]) for c in candidates} == {("cross-node", "10gbe")}

    def test_slow_network_keeps_segments_in_nodes(self) -> None:
        """DistServe's low node affinity: over 10GbE (a mean ShareGPT prompt's KV, 37.5 MB, takes far longer
        than its prefill) a prefill/decode pair that fits a node never crosses nodes."""
        for c in feasible(make_ctx(model="llama-3.1-8b", num_gpus=16, network="10gbe")):
            segment = c.detail["prefill_tp"] * c.detail["prefill_pp"] + c.tp * c.pp
            assert c.detail["placement"] == "in-node" or segment > 8

    def test_fast_network_allows_any_split(self) -> None:
        candidates = feasible(make_ctx(model="llama-3.1-8b", num_gpus=16, network="8xib-ndr"))
        cross = [c for c in candidates if c.detail["placement"] == "cross-node"]
        assert any(c.detail["prefill_tp"] * c.detail["prefill_pp"] + c.tp * c.pp <= 8 for c in cross)

    def test_layouts_that_fit_neither_role_are_infeasible(self) -> None:
        ctx = make_ctx(model="llama-3.1-70b", num_gpus=2)
        reasons = [c.reason for c in STRATEGY.candidates(ctx) if isinstance(c, Infeasible) and c.tp == 1]
        assert any(r.startswith("as prefill") for r in reasons) and any(r.startswith("as decode") for r in reasons)

    def test_no_knobs(self) -> None:
        with pytest.raises(PlannerError):
            list(STRATEGY.candidates(make_ctx(), {"max_batch": 64}))


class TestInvariants:
    @pytest.fixture(scope="class")
    @classmethod
    def cross(cls) -> dict[str, Any]:
        """P 2 x TP1 + D 2 x TP1 over the network, one GPU per node, under each network."""
        out = {}
        for network in ("10gbe", "25gbe", "100gbe", "400gbe"):
            ctx = make_ctx(model="llama-3.1-8b", gpus_per_node=1, network=network, workload="longbench")
            out[network] = (ctx, split(ctx, (1, 1), (1, 1), 2, 2, "cross-node"))
        return out

    def test_more_bandwidth_never_slower(self, cross: dict[str, Any]) -> None:
        capacities = [STRATEGY.capacity_req_s(ctx, c) for ctx, c in cross.values()]
        rate = 0.5 * capacities[0]
        ttfts = []
        for ctx, c in cross.values():
            lat = STRATEGY.latencies(ctx, c, rate)
            assert lat is not None
            ttfts.append(float(np.mean(lat.ttft_s)))
        assert capacities == sorted(capacities)
        assert ttfts == sorted(ttfts, reverse=True)

    def test_capacity_is_the_slowest_side(self, cross: dict[str, Any]) -> None:
        for ctx, c in cross.values():
            sides = STRATEGY.phase_capacities_req_s(ctx, STRATEGY.pools(ctx, c))
            assert STRATEGY.capacity_req_s(ctx, c) == min(sides.values())

    @pytest.mark.parametrize("layout", [((1, 1), (1, 1), 1, 3), ((2, 1), (1, 1), 1, 2), ((1, 1), (2, 1), 1, 1)])
    def test_latencies(self, layout: tuple[tuple[int, int], tuple[int, int], int, int]) -> None:
        """Every TTFT holds at least its prefill and transfer; TPOT is one decode step at the Little's-law
        batch for every request (no prompt interrupts a decode); beyond capacity the rate is unstable."""
        ctx = make_ctx()
        c = split(ctx, *layout, "in-node")
        pools = STRATEGY.pools(ctx, c)
        capacity = STRATEGY.capacity_req_s(ctx, c)
        lat = STRATEGY.latencies(ctx, c, 0.5 * capacity)
        assert lat is not None
        inputs = np.array(ctx.workload.input_lens)
        floor = continuous.prefill_latencies_s(pools.prefill, inputs) + pools.link.transfer_s(
            inputs * kv_bytes_per_token(ctx)
        )
        assert np.all(lat.ttft_s >= floor)
        batch = disaggregated.decode_batch(
            pools.decode,
            0.5 * capacity / pools.n_d,
            ctx.workload.mean_output_len - 1,
            pools.decode_max_batch,
            ctx.workload.mean_decode_context,
        )
        step_s = continuous.decode_step(pools.decode, max(batch, 1.0), ctx.workload.mean_decode_context).time_s
        assert np.all(lat.tpot_s == step_s) and lat.tbt_p99_s == step_s
        assert STRATEGY.latencies(ctx, c, 1.01 * capacity) is None

    def test_memory_is_the_decode_instances(self) -> None:
        ctx = make_ctx()
        c = split(ctx, (2, 1), (1, 1), 1, 2, "in-node")
        memory = STRATEGY.memory(ctx, c)
        assert memory.kv_capacity_tokens >= ctx.workload.max_request_tokens
        assert memory.gib["weights"] == pytest.approx(
            STRATEGY.memory(ctx, split(ctx, (1, 1), (1, 1), 1, 1, "in-node")).gib["weights"]
        )


class TestSeedResults:
    @pytest.mark.xfail(
        strict=True,
        reason="DistServe (OPT-13B, ShareGPT, TTFT 0.25 s / TPOT 0.1 s at 90%, 4 x A100 NVLink; published 4.48x "
        "arXiv / 7.4x OSDI, simulator 1.56 req/s/GPU): tdplan gives disaggregated 4.92 req/s/GPU (prefill TP1 + "
        "decode TP2, 3 GPUs, TTFT p90 0.185 s) against colocated 6.12 (TP1 x 4, max_batch 256): ratio 0.80. "
        "The colocated model charges prompt stalls as a Poisson count over each long decode (TPOT = "
        "step / (1 - rho)) and gives each replica its own prompt server, so at these SLOs it loses little to "
        "interference; at capacity both strategies do nearly the same work (see docs/strategies/disaggregated.md)",
    )
    def test_distserve_opt13b_sharegpt_beats_colocated(self) -> None:
        ctx, slo = make_ctx(), Slo(ttft_s=0.25, tpot_s=0.1, attainment=0.9)
        colocated = best_per_gpu("colocated", ctx, slo)
        disagg = best_per_gpu("disaggregated", ctx, slo)
        ratio = (
            (disagg.goodput_req_s or 0.0) / disagg.gpus_used / ((colocated.goodput_req_s or 0.0) / colocated.gpus_used)
        )
        print(f"DistServe seed: disaggregated/colocated goodput per GPU = {ratio:.2f}")
        assert 1.2 <= ratio <= 10.0

    def test_reverse_slow_ethernet_long_prompts(self) -> None:
        """Llama-3.1-8B, LongBench (mean prompt about 2000 tokens: 262 MB of KV), 4 x A100 one per node over
        10GbE (1.25 GB/s per GPU): the KV transfer outlasts the prefill and the link caps disaggregation,
        while colocated instances never move KV. SLO: DistServe's summarisation targets (TTFT 15 s, TPOT
        0.15 s). Today: colocated 22.4 req/s, disaggregated 5.3: 4.2x."""
        ctx, slo = (
            make_ctx(model="llama-3.1-8b", gpus_per_node=1, network="10gbe", workload="longbench"),
            Slo(ttft_s=15.0, tpot_s=0.15),
        )
        colocated = best_per_gpu("colocated", ctx, slo)
        disagg = best_per_gpu("disaggregated", ctx, slo)
        ratio = (colocated.goodput_req_s or 0.0) / (disagg.goodput_req_s or 0.0)
        print(
            f"reverse seed: colocated {colocated.goodput_req_s:.2f} req/s vs disaggregated {disagg.goodput_req_s:.2f}"
        )
        assert 1.5 <= ratio <= 5.0
        assert (colocated.request_throughput_req_s or 0.0) >= (disagg.request_throughput_req_s or 0.0)
        best = next(c for c in feasible(ctx) if dict(c.detail) == disagg.detail)
        pools = STRATEGY.pools(ctx, best)
        sides = STRATEGY.phase_capacities_req_s(ctx, pools)
        assert min(sides, key=lambda side: sides[side]) == "kv_link"
        mean_in = round(ctx.workload.mean_input_len)
        transfer_s = float(pools.link.transfer_s(np.array(mean_in * kv_bytes_per_token(ctx))))
        assert transfer_s > continuous.prefill_latency_s(pools.prefill, mean_in)

    def test_nvlink_removes_the_link_cap(self) -> None:
        """The same GPUs in one node: the KV moves over NVLink and disaggregation's capacity is no longer the
        link's (the reverse result is the network's doing, not disaggregation's)."""
        ctx = make_ctx(model="llama-3.1-8b", workload="longbench")
        slow = make_ctx(model="llama-3.1-8b", gpus_per_node=1, network="10gbe", workload="longbench")
        fast = STRATEGY.capacity_req_s(ctx, split(ctx, (1, 1), (1, 1), 2, 2, "in-node"))
        capped = STRATEGY.capacity_req_s(slow, split(slow, (1, 1), (1, 1), 2, 2, "cross-node"))
        assert fast > 1.5 * capped
