"""`disaggregated`: separate prefill and decode instances; each prompt's KV cache moves from the prefill
instance that computed it to a decode instance (DistServe, OSDI'24; Splitwise, ISCA'24).

Layout. n_p prefill instances of tp_p x pp_p GPUs and n_d decode instances of tp_d x pp_d GPUs share the cluster
(the Candidate's tp/pp are the decode instance's; the prefill side is in `detail`). Placement follows DistServe's
search (simdistserve/benchmarks/search_configs.py):
- in-node segments: every node holds the same a prefill + b decode instances, so KV moves over the node's GPU
  link (NVLink, PCIe peer-to-peer, or through host memory without it: planner.cost.comm.group_link);
- cross-node pools (multi-node clusters): instances anywhere, KV crosses the network at each GPU's share of its
  node's NICs. DistServe's low-node-affinity rule: when the network is slow, a layout pair that fits a node
  keeps its KV inside nodes (no cross-node splits). "Slow" is derived, not tuned: the network cannot move a
  mean prompt's KV within the prefill stage time of that prompt, so it, not prefill, would set the pace.
  With a fast network, cross-node splits that an in-node split matches instance for instance are dropped
  when the in-node link is no slower per GPU than the network (it is not on PCIe without p2p: through host).
Search: (tp, pp) pairs from `layouts`, Pareto-pruned per phase (prefill: capacity per GPU vs latency; decode:
capacity per GPU vs the batch-1 step); per pair only splits with no room for another instance (more instances of
either kind never lower goodput), within one prefill instance of the split whose prefill and decode capacities
balance (DistServe's Algorithm 1 sizes each phase to the rate, n = R / G_p, m = R / G_d).

Per request i (prompt I_i, output O_i) at total Poisson rate R:
- prefill: requests split evenly; a prefill instance is an M/G/1 queue at R / n_p whose server is one pipeline
  stage (pp_p stages take a new prompt every t_prefill / pp_p): service s_i = t_prefill(I_i) x stage share,
  rho = (R / n_p) E[s], Pollaczek-Khinchine wait W = (R / n_p) E[s^2] / (2 (1 - rho)). With equal prompts this is
  DistServe's average-TTFT analysis of a prefill instance: D + R D^2 / (2 (1 - R D)) for one stage (M/D/1),
  D + R D^2 / (4 (2 - R D)) for 2-way inter-op (PP); intra-op (TP) enters as a shorter t_prefill (DistServe's
  D / K). Queued prompts run one at a time here (DistServe's analysis); batching them under the token budget
  counts only in the offline capacity.
- KV transfer: bytes_i = I_i x 2 (K and V) x layers x kv_heads x head_dim x kv bytes, over min(gpus_p, gpus_d)
  GPU lanes in parallel (each rank sends its own heads/layers), plus the link latency; the links of all
  instances together move min(n_p gpus_p, n_d gpus_d) lanes; queueing at that utilisation by M/G/1.
- decode: no prompt ever interrupts a decode step; the mean decode batch solves B = (R / n_d) E[O - 1] t_step(B)
  (Little's law: a request holds a slot for its O - 1 steps); TPOT = t_step(B) (continuous.decode_step);
  waiting for a free slot as continuous.slot_wait_s.
- TTFT_i = prefill wait + t_prefill(I_i) + link wait + transfer_i + slot wait: the first token counts once the
  request's KV sits in a decode instance that has a slot for it (conservative where the prefill instance streams
  its first token straight to the user, as DistServe's does).
Capacity (offline) = min(n_p prefill instances batching queued prompts under the engine's token budget (FCFS,
stopping at the first prompt that does not fit, over the workload's prompts: `continuous.packed_prefill_iteration`),
n_d decode instances at their largest batch, link bytes/s / mean bytes per request).
Memory: a decode instance holds weights + the KV of its batch (reported; it must hold the longest request); a
prefill instance holds KV only for prompts in flight (it must hold the longest prompt). Knobs: none; a decode
instance admits as many sequences as its KV holds (`Disaggregated.decode_deployment`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from planner.cost.comm import group_link, link_efficiency
from planner.cost.iteration import stage_step
from planner.cost.memory import memory_breakdown
from planner.cost.ops import BatchShape
from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.strategies import continuous
from planner.strategies.base import (
    Candidate,
    Context,
    Infeasible,
    Latencies,
    Memory,
    Strategy,
    layouts,
    queue_waits_s,
    register,
)

# --- KV cache bytes and the link that moves them --------------------------------------------------------------


def kv_bytes_per_token(ctx: Context) -> float:
    """KV bytes of one token over the whole model: K and V (2) x layers x kv heads x head_dim x bytes per
    element (unique heads: what the prefill side holds once and the decode side needs once)."""
    model = ctx.model
    return 2 * model.num_hidden_layers * model.num_key_value_heads * model.head_dim * ctx.kv_dtype.bytes_per_element


@dataclass(frozen=True)
class KvLink:
    """The path KV takes from prefill to decode instances.

    lane_bw_bytes_s: bytes/s per GPU lane; lanes: GPUs one transfer uses in parallel (min(gpus_p, gpus_d));
    pool_lanes: lanes of all instances together (min(n_p gpus_p, n_d gpus_d)); eff: attained share of line rate.
    """

    name: str
    lane_bw_bytes_s: float
    latency_s: float
    lanes: int
    pool_lanes: int
    eff: float

    def transfer_s(self, message_bytes: np.ndarray) -> np.ndarray:
        """Each request's KV over its lanes: bytes / attained bandwidth + latency (comm.p2p_time_s, elementwise)."""
        return np.asarray(message_bytes / (self.lanes * self.lane_bw_bytes_s * self.eff) + self.latency_s)

    @property
    def capacity_bytes_s(self) -> float:
        return self.pool_lanes * self.lane_bw_bytes_s * self.eff


def kv_link(ctx: Context, gpus_p: int, gpus_d: int, n_p: int, n_d: int, in_node: bool, eff: float) -> KvLink:
    """In a node: the link joining a prefill and a decode instance (group of gpus_p + gpus_d GPUs, so an NVLink
    bridge of pairs falls back to PCIe, and PCIe without p2p goes through host memory). Across nodes: each
    GPU's share of its node's NICs, node bandwidth / GPUs in the node, capped by the GPU's PCIe link to them."""
    cluster = ctx.cluster
    if in_node:
        bw_s, latency_s = group_link(cluster, min(gpus_p + gpus_d, cluster.gpus_in_node), spans_nodes=False)
        gpu = cluster.gpu
        name = gpu.interconnect.kind.value if bw_s == gpu.interconnect.bw_bytes_s else gpu.host_link.kind.value
        if bw_s < gpu.host_link.bw_bytes_s and bw_s < gpu.interconnect.bw_bytes_s:
            name += " through host"
    else:
        network = cluster.network
        # A GPU reaches its NIC over its PCIe host link (GPUDirect RDMA) and shares the node's ports.
        bw_s = min(cluster.gpu.host_link.bw_bytes_s, network.node_bw_bytes_s / cluster.gpus_in_node)
        latency_s = max(cluster.gpu.host_link.latency_s, network.kind.latency_s)
        name = network.label
    return KvLink(name, bw_s, latency_s, min(gpus_p, gpus_d), min(n_p * gpus_p, n_d * gpus_d), eff)


# --- the two kinds of instance --------------------------------------------------------------------------------


def _stage_s(deployment: Deployment, batch: BatchShape) -> float:
    """One pipeline stage of `batch` and its send, plus the per-iteration overhead: the interval at which a
    pipeline takes new work (as continuous._stage_step)."""
    return stage_step(deployment, batch).time_s


def prefill_capacity_req_s(deployment: Deployment, input_lens: Sequence[int]) -> float:
    """Prompts/s one prefill instance finishes with prompts always queued: the mean packed iteration's k prompts
    (`continuous.packed_prefill_iteration`, under the engine's max_num_tokens) every stage time of that iteration (a
    prefill iteration of a full budget is close to affine in its tokens, prompts and pairs, so the time of the
    mean iteration is the mean time: continuous.prefill_iteration_secant)."""
    shape = continuous.packed_prefill_iteration(tuple(int(n) for n in input_lens), deployment.engine.max_num_tokens)
    return shape.prefill_seqs / _stage_s(deployment, shape)


def decode_batch(deployment: Deployment, rate_req_s: float, steps: float, max_batch: float, context: float) -> float:
    """Mean decode batch under Poisson arrivals at `rate_req_s`, each request staying `steps` decode steps:
    B = rate x steps x t_step(B) (Little's law), by bisection; inf when even a full batch cannot keep up."""
    if steps <= 0:
        return 0.0

    def excess(batch: float) -> float:
        return rate_req_s * steps * continuous.decode_step(deployment, max(batch, 1.0), context).time_s - batch

    if excess(max_batch) > 0:
        return math.inf
    low, high = 0.0, max_batch
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if excess(mid) > 0 else (low, mid)
    return high


def mg1_wait_s(rate_req_s: float, service_s: np.ndarray) -> tuple[float, float]:
    """(utilisation, mean wait) of an M/G/1 queue (Pollaczek-Khinchine): rho = rate E[s],
    W = rate E[s^2] / (2 (1 - rho)). With a constant service D it is M/D/1: rho D / (2 (1 - rho))."""
    rho = rate_req_s * float(np.mean(service_s))
    if rho >= 1:
        return rho, math.inf
    return rho, rate_req_s * float(np.mean(service_s**2)) / (2 * (1 - rho))


@dataclass(frozen=True)
class Pools:
    """Both kinds of instance of one candidate, with what the cost formulas need."""

    prefill: Deployment
    decode: Deployment
    n_p: int
    n_d: int
    link: KvLink
    decode_max_batch: float


# --- the strategy ---------------------------------------------------------------------------------------------


@register
class Disaggregated(Strategy):
    name = "disaggregated"
    summary = "separate prefill and decode instances, KV cache moved between them over the real link"
    reference = "DistServe (OSDI'24); Splitwise (ISCA'24)"
    knobs = ()

    def prefill_deployment(self, ctx: Context, tp: int, pp: int) -> Deployment:
        """An instance that runs prompts only (none shares an iteration with decodes), engine defaults."""
        return ctx.deployment(tp, pp, ctx.engine.model_copy(update={"mixed_batching": False}))

    def decode_deployment(self, ctx: Context, tp: int, pp: int) -> Deployment:
        """An instance that runs decodes only. Its sequence cap is what its KV cache holds at the workload's
        mean request (continuous.max_decode_batch with the cap lifted to the token budget, one token per
        sequence), never below the engine's default: with no prompt in its iterations a larger cap only adds
        throughput, and TPOT follows the rate (Little's law), not the cap."""
        base = self.prefill_deployment(ctx, tp, pp)
        w, engine = ctx.workload, base.engine
        roomy = base.model_copy(update={"engine": engine.model_copy(update={"max_batch_size": engine.max_num_tokens})})
        kv_tokens = memory_breakdown(base).kv_capacity_tokens
        held = continuous.max_decode_batch(roomy, round(w.mean_input_len), round(w.mean_output_len), kv_tokens)
        seqs = max(engine.max_batch_size, int(held))
        return ctx.deployment(tp, pp, engine.model_copy(update={"max_batch_size": seqs}))

    def pools(self, ctx: Context, candidate: Candidate) -> Pools:
        d = candidate.detail
        prefill = self.prefill_deployment(ctx, int(d["prefill_tp"]), int(d["prefill_pp"]))
        decode = self.decode_deployment(ctx, candidate.tp, candidate.pp)
        n_p, n_d = int(d["prefill_instances"]), int(d["decode_instances"])
        in_node = d["placement"] == "in-node"
        eff = link_efficiency(decode)
        link = kv_link(ctx, prefill.gpus_per_replica, decode.gpus_per_replica, n_p, n_d, in_node, eff)
        return Pools(prefill, decode, n_p, n_d, link, self._decode_max_batch(ctx, decode))

    @staticmethod
    def _decode_max_batch(ctx: Context, decode: Deployment) -> float:
        """Decode slots: KV memory and the sequence cap (continuous.max_decode_batch)."""
        w = ctx.workload
        kv_tokens = memory_breakdown(decode).kv_capacity_tokens
        return continuous.max_decode_batch(decode, round(w.mean_input_len), round(w.mean_output_len), kv_tokens)

    # memory ----------------------------------------------------------------------------------------------------

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        d = candidate.detail
        self._check_prefill_fits(ctx, self.prefill_deployment(ctx, int(d["prefill_tp"]), int(d["prefill_pp"])))
        return self._decode_memory(ctx, self.decode_deployment(ctx, candidate.tp, candidate.pp))

    @staticmethod
    def _decode_memory(ctx: Context, decode: Deployment) -> Memory:
        """A decode instance holds weights and the KV of its whole batch: at least the longest request."""
        breakdown = memory_breakdown(decode)
        if breakdown.kv_capacity_tokens < ctx.workload.max_request_tokens:
            raise PlannerError(
                f"decode KV cache of {breakdown.kv_capacity_tokens} tokens cannot hold the workload's longest "
                f"request ({ctx.workload.max_request_tokens} tokens)"
            )
        return Memory(gib=breakdown.as_gib(), kv_capacity_tokens=breakdown.kv_capacity_tokens)

    @staticmethod
    def _check_prefill_fits(ctx: Context, prefill: Deployment) -> None:
        """A prefill instance holds KV only for the prompts in flight: at least the longest prompt."""
        longest = max(ctx.workload.input_lens)
        kv_tokens = memory_breakdown(prefill).kv_capacity_tokens
        if kv_tokens < longest:
            raise PlannerError(f"prefill KV cache of {kv_tokens} tokens cannot hold the longest prompt ({longest})")

    # capacity --------------------------------------------------------------------------------------------------

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        return min(self.phase_capacities_req_s(ctx, self.pools(ctx, candidate)).values())

    def phase_capacities_req_s(self, ctx: Context, pools: Pools) -> dict[str, float]:
        """Offline req/s of each side: all prefill instances, all decode instances, and the KV link."""
        w = ctx.workload
        steps = w.mean_output_len - 1
        full = pools.decode_max_batch
        step_s = continuous.decode_step(pools.decode, full, w.mean_decode_context).time_s
        return {
            "prefill": pools.n_p * prefill_capacity_req_s(pools.prefill, w.input_lens),
            "decode": pools.n_d * full / (steps * step_s) if steps > 0 else math.inf,
            "kv_link": pools.link.capacity_bytes_s / (w.mean_input_len * kv_bytes_per_token(ctx)),
        }

    # latencies -------------------------------------------------------------------------------------------------

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        pools = self.pools(ctx, candidate)
        w = ctx.workload
        inputs, n = np.array(w.input_lens), len(w.input_lens)
        # Prefill: M/G/1 per instance; its server is one pipeline stage (t_prefill x stage share).
        prefill_s = continuous.prefill_latencies_s(pools.prefill, inputs)
        mean_in = round(w.mean_input_len)
        stage_share = _stage_s(pools.prefill, BatchShape.prefill(mean_in)) / continuous.prefill_latency_s(
            pools.prefill, mean_in
        )
        rho_p, wait_p = mg1_wait_s(rate_req_s / pools.n_p, prefill_s * min(stage_share, 1.0))
        # KV transfer: per-request time over its lanes; the pooled links at utilisation rate x bytes / capacity.
        bytes_ = inputs * kv_bytes_per_token(ctx)
        transfer_s = pools.link.transfer_s(bytes_)
        rho_x = rate_req_s * float(np.mean(bytes_)) / pools.link.capacity_bytes_s
        wait_x = rho_x * float(np.mean(transfer_s**2)) / (2 * float(np.mean(transfer_s)) * (1 - rho_x))
        # Decode: Little's law on the slots, no prompt interference.
        rate_d = rate_req_s / pools.n_d
        batch = decode_batch(pools.decode, rate_d, w.mean_output_len - 1, pools.decode_max_batch, w.mean_decode_context)
        if rho_p >= 1 or rho_x >= 1 or not math.isfinite(batch):
            return None
        step_s = continuous.decode_step(pools.decode, max(batch, 1.0), w.mean_decode_context).time_s
        slot_s = continuous.slot_wait_s(batch, pools.decode_max_batch, rate_d)
        waits = (
            queue_waits_s(n, rho_p, wait_p, seed=0)
            + queue_waits_s(n, rho_x, wait_x, seed=1)
            + queue_waits_s(n, batch / pools.decode_max_batch, slot_s, seed=2)
        )
        ttft = waits + prefill_s + transfer_s
        tpot = np.full(n, step_s)
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=step_s)

    # candidates ------------------------------------------------------------------------------------------------

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        for pair in self.layout_pairs(ctx, knobs):
            if isinstance(pair, Infeasible):
                yield pair
            else:
                yield from self._splits(ctx, *pair)

    def layout_pairs(
        self, ctx: Context, knobs: Mapping[str, float] | None = None
    ) -> Iterator[tuple[tuple[int, int], tuple[int, int]] | Infeasible]:
        """(prefill layout, decode layout) pairs that fit, Pareto-pruned per phase, and the layouts that do not
        fit; no instance counts (the planner chooses those: `placements` says where a pair can go)."""
        list(self.knob_grid(knobs))  # rejects knobs this strategy does not have
        prefill_layouts: list[tuple[int, int]] = []
        decode_layouts: list[tuple[int, int]] = []
        for tp, pp in layouts(ctx):
            for role, fitting in (("prefill", prefill_layouts), ("decode", decode_layouts)):
                try:
                    if role == "prefill":
                        self._check_prefill_fits(ctx, self.prefill_deployment(ctx, tp, pp))
                    else:
                        self._decode_memory(ctx, self.decode_deployment(ctx, tp, pp))
                    fitting.append((tp, pp))
                except PlannerError as err:
                    yield Infeasible(strategy=self.name, tp=tp, pp=pp, knobs={}, reason=f"as {role}: {err}")
        prefill_layouts = self._pareto(ctx, prefill_layouts, self._prefill_metrics)
        decode_layouts = self._pareto(ctx, decode_layouts, self._decode_metrics)
        for p_layout in prefill_layouts:
            for d_layout in decode_layouts:
                yield p_layout, d_layout

    def _prefill_metrics(self, ctx: Context, tp: int, pp: int) -> tuple[float, float]:
        """(req/s per GPU, seconds): offline capacity per GPU and the latency of a mean prompt."""
        deployment, mean_in = self.prefill_deployment(ctx, tp, pp), round(ctx.workload.mean_input_len)
        per_gpu = prefill_capacity_req_s(deployment, ctx.workload.input_lens) / (tp * pp)
        return per_gpu, continuous.prefill_latency_s(deployment, mean_in)

    def _decode_metrics(self, ctx: Context, tp: int, pp: int) -> tuple[float, float]:
        """(req/s per GPU, seconds): offline capacity per GPU and the decode step at batch 1 (the TPOT floor)."""
        deployment, w = self.decode_deployment(ctx, tp, pp), ctx.workload
        full = self._decode_max_batch(ctx, deployment)
        step_full = continuous.decode_step(deployment, full, w.mean_decode_context).time_s
        per_gpu = full / (max(w.mean_output_len - 1, 1e-9) * step_full) / (tp * pp)
        return per_gpu, continuous.decode_step(deployment, 1.0, w.mean_decode_context).time_s

    @staticmethod
    def _pareto(
        ctx: Context, items: list[tuple[int, int]], metrics: Callable[[Context, int, int], tuple[float, float]]
    ) -> list[tuple[int, int]]:
        """Layouts not dominated by another at least as small (GPUs), with at least the capacity per GPU and at
        most the latency (a smaller instance also packs into more splits)."""
        scored = [(layout[0] * layout[1], *metrics(ctx, *layout), layout) for layout in items]
        return [
            layout
            for gpus, cap, lat, layout in scored
            if not any(g <= gpus and c >= cap and t <= lat and (g, c, t) != (gpus, cap, lat) for g, c, t, _ in scored)
        ]

    def build_candidate(
        self, ctx: Context, p: tuple[int, int], d: tuple[int, int], n_p: int, n_d: int, placement: str, link: KvLink
    ) -> Candidate:
        """n_p prefill instances of layout p = (tp, pp) and n_d decode instances of layout d, placed in nodes
        ("in-node") or across them ("cross-node"), KV over `link`."""
        gpus_p, gpus_d = n_p * p[0] * p[1], n_d * d[0] * d[1]
        return Candidate(
            strategy=self.name,
            tp=d[0],
            pp=d[1],
            replicas=n_d,
            gpus_used=gpus_p + gpus_d,
            knobs={},
            detail={
                "prefill_tp": p[0],
                "prefill_pp": p[1],
                "prefill_instances": n_p,
                "decode_instances": n_d,
                "prefill_gpus": gpus_p,
                "decode_gpus": gpus_d,
                "prefill_decode_ratio": f"{n_p}:{n_d}",
                "placement": placement,
                "kv_link": link.name,
                "kv_link_gb_s": link.lanes * link.lane_bw_bytes_s / 1e9,
            },
        )

    def _splits(self, ctx: Context, p: tuple[int, int], d: tuple[int, int]) -> Iterator[Candidate]:
        """Instance counts for one layout pair: maximal in-node and cross-node splits, balance-windowed."""
        gp, gd = p[0] * p[1], d[0] * d[1]
        eff = link_efficiency(ctx.deployment(*d))
        for placement, splits in self.placements(ctx, p, d).items():
            scored = []
            for n_p, n_d in splits:
                link = kv_link(ctx, gp, gd, n_p, n_d, placement == "in-node", eff)
                candidate = self.build_candidate(ctx, p, d, n_p, n_d, placement, link)
                caps = self.phase_capacities_req_s(ctx, self.pools(ctx, candidate))
                scored.append((candidate, caps))
            yield from self._balance_window(scored)

    def placements(self, ctx: Context, p: tuple[int, int], d: tuple[int, int]) -> dict[str, list[tuple[int, int]]]:
        """The maximal (prefill, decode) instance counts of one layout pair on the cluster, by placement
        ("in-node", "cross-node"; empty where the pair cannot go), before any capacity is computed."""
        cluster = ctx.cluster
        gpus, per_node, nodes = cluster.num_gpus, cluster.gpus_in_node, cluster.num_nodes
        gp, gd = p[0] * p[1], d[0] * d[1]
        in_node: list[tuple[int, int]] = []
        if gp + gd <= per_node:
            a = 1
            while (per_node - a * gp) // gd >= 1:
                in_node.append((a * nodes, (per_node - a * gp) // gd * nodes))
                a += 1
        cross: list[tuple[int, int]] = []
        if nodes > 1:
            n_p = 1
            while (gpus - n_p * gp) // gd >= 1:
                cross.append((n_p, (gpus - n_p * gp) // gd))
                n_p += 1
        eff = link_efficiency(ctx.deployment(*d))
        if in_node and cross:
            if not self._network_keeps_up(ctx, p, d):
                cross = []  # DistServe's low node affinity: KV stays inside nodes
            node_bw_s = kv_link(ctx, gp, gd, 1, 1, True, eff).lane_bw_bytes_s
            if node_bw_s >= kv_link(ctx, gp, gd, 1, 1, False, eff).lane_bw_bytes_s:
                # an in-node split with as many instances of each kind moves KV no slower
                cross = [(a, b) for a, b in cross if not any(x >= a and y >= b for x, y in in_node)]
        return {"in-node": in_node, "cross-node": cross}

    @staticmethod
    def _balance_window(scored: list[tuple[Candidate, dict[str, float]]]) -> list[Candidate]:
        """The split with the highest capacity bound and one prefill instance either side of it (SLOs shift
        the best split off the capacity balance: a tight TTFT wants prefill headroom, a tight TPOT decode)."""
        if not scored:
            return []
        best = max(range(len(scored)), key=lambda i: min(scored[i][1].values()) / scored[i][0].gpus_used)
        return [candidate for candidate, _ in scored[max(0, best - 1) : best + 2]]

    def _network_keeps_up(self, ctx: Context, p: tuple[int, int], d: tuple[int, int]) -> bool:
        """Whether the network moves a mean prompt's KV within that prompt's prefill stage time (then it is
        not the bottleneck of a prefill-to-decode pair: DistServe's high node affinity)."""
        prefill = self.prefill_deployment(ctx, *p)
        mean_in = round(ctx.workload.mean_input_len)
        link = kv_link(ctx, p[0] * p[1], d[0] * d[1], 1, 1, False, link_efficiency(prefill))
        transfer = float(link.transfer_s(np.array(mean_in * kv_bytes_per_token(ctx))))
        return transfer <= _stage_s(prefill, BatchShape.prefill(mean_in))
