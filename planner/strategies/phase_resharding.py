"""`phase-resharding`: long prefill and decode phases on the same GPUs, each with its own TP x PP (Seesaw).

Seesaw (MLSys'25, arXiv 2503.06433; seed_systems.md section 8) notes that the two phases want different
parallelism on one node: prefill is compute-bound, so pipeline parallelism (few, small activation sends)
beats tensor parallelism (two all-reduces of every token's activations per layer, slow over PCIe); decode is
bound by streaming the weights, so tensor parallelism (each GPU streams 1/tp of every layer per step) beats
pipeline parallelism (each stage streams its layers once per micro-batch). Seesaw switches layouts between
phases and re-shards weights and KV cache at each switch; to amortise that it runs long phases, prefilling
many prompts, then decoding them (temporal phases, as TD-Pipe does), for offline throughput.

The model, per instance of g GPUs in one node, prefill layout tp_p x pp_p and decode layout tp_d x pp_d
(tp_p pp_p = tp_d pp_d = g), mean prompt I and output O (workload means), knobs `kv_fill` and `max_batch`:

- A cycle prefills n = kv_fill x KV / (I + O) requests (KV = the smaller KV capacity of the two layouts; each
  request's footprint grows to I + O; TD-Pipe switches at 0.9 of the KV blocks, the default), then decodes them.
- Prefill phase: micro-batches of k = max_num_tokens // I prompts fill the pp_p stages in turn:
  T_p = (n / k + pp_p - 1) x t_stage(k), t_stage = one stage + its activation send + the engine's iteration
  overhead (pipeline fill and drain once per phase).
- Decode phase: B = min(n, max_batch) sequences decode together, refilled from the prefilled pool as others
  finish, until the last is done: full steps while the pool lasts, (n - B) E[O - 1] / B of them at t_step(B),
  then the drain of the last B, whose batch shrinks as they finish. With S(k) the share of the workload's
  requests with more than k decode steps, at drain step k about B S(k) still run (fresh lengths: the last B
  started at different times, so this is slightly short), and a step runs while any does, with probability
  a(k) = 1 - (1 - S(k))^B: T_d = full steps x t_step(B) + sum over k of a(k) t_step(max(1, B S(k) / a(k)))
  (continuous.decode_step, pp_d micro-batches). Heavy-tailed outputs make the drain long: the phase lasts as
  long as its longest request.
- Re-shards: prefill -> decode moves the weights and the n x I tokens of KV cache, decode -> prefill the
  weights only (the decode phase drains the KV). Each GPU receives the slices of the new layout it does not
  already hold (`gpu_reshard_bytes`): with GPUs numbered stage x tp + rank (Megatron-LM order), a GPU keeps the
  overlap of its old and new column/row shard on layers it holds in both layouts, the KV heads (and their k/v
  projection columns) common to both, and replicated norms. GPUs receive in parallel over the intra-node link
  (planner.cost.comm.group_link: NVLink, or PCIe, halved without peer-to-peer), so a transition takes the
  largest GPU's bytes / (link bandwidth x its attained share, comm.link_efficiency) + latency. No overlap with
  compute (pessimistic).
- Capacity = n / (T_p + T_reshard(P->D) + T_d + T_reshard(D->P)) per instance.
- Latencies (Poisson R per instance): the cycle length T(n) with n = R T(n) (bisection, n <= the fill cap;
  an idle system serves a lone request, n >= 1). A request arriving in a prefill phase joins it; otherwise it
  waits for the next one (uniform over the rest of the cycle). TTFT = that wait + its place in the phase +
  its own trip through the pp_p stages. Its first gap spans the rest of the prefill phase and the re-shard,
  plus any wait for a decode slot; then a token every t_step(B). TPOT = (first gap + (O_i - 1) t_step) /
  (O_i - 1); TBT p99 = t_step unless first gaps are more than 1% of all gaps.

Not modelled: Seesaw's tiered KV buffering in CPU memory (phases here are bounded by GPU KV capacity, which
understates the amortisation Seesaw reaches), re-shard/compute overlap, PCIe switch or root-complex limits
when all GPUs exchange at once, and the transient memory of a re-shard (done layer by layer, its staging fits
in the activation workspace that is idle during a switch). Weights could also be reloaded from host memory;
here they move GPU to GPU as the intra-node link allows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from planner.cost.comm import group_link, link_efficiency, p2p_time_s
from planner.cost.iteration import stage_step
from planner.cost.memory import MemoryBreakdown, memory_breakdown
from planner.cost.ops import EMBED_BYTES, BatchShape
from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.specs.model import ModelSpec, param_count
from planner.strategies import continuous
from planner.strategies.base import (
    Candidate,
    Context,
    Infeasible,
    Knob,
    Latencies,
    Memory,
    Strategy,
    layouts,
    register,
    require_request_fits,
    seeded_quantiles,
)

# --- where each GPU's slices live in a layout ------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """tp x pp GPUs; GPU i is tensor rank i % tp of pipeline stage i // tp (Megatron-LM rank order)."""

    tp: int
    pp: int

    def place(self, gpu: int) -> tuple[int, int]:
        """(stage, tensor rank) of a GPU."""
        return gpu // self.tp, gpu % self.tp

    def layers(self, stage: int, num_layers: int) -> range:
        """Layers of a stage: ceil(L / pp) each, the last stage the rest (as planner.cost.memory assumes)."""
        per = math.ceil(num_layers / self.pp)
        return range(stage * per, min(num_layers, (stage + 1) * per))


def tp_shard(rank: int, tp: int) -> tuple[float, float]:
    """The part [lo, hi) of a split dimension (columns or rows of a matrix, the vocabulary) a rank holds."""
    return rank / tp, (rank + 1) / tp


def shard_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def kv_heads(rank: int, tp: int, num_kv_heads: int) -> frozenset[int]:
    """KV heads on a rank: num_kv_heads / tp consecutive heads, or one replicated head when tp exceeds them
    (vLLM and TensorRT-LLM replicate; planner.cost.ops)."""
    if tp > num_kv_heads:
        return frozenset({rank * num_kv_heads // tp})
    return frozenset(h for h in range(num_kv_heads) if h * tp // num_kv_heads == rank)


def end_pieces(model: ModelSpec, layout: Layout, stage: int) -> set[str]:
    """Embedding on the first stage, LM head on the last (a tied head is the embedding: with PP the last stage
    keeps its own copy, as planner.cost.memory counts it)."""
    pieces = {"embedding"} if stage == 0 else set()
    if stage == layout.pp - 1:
        pieces.add("embedding" if model.tie_word_embeddings else "lm_head")
    return pieces


def gpu_reshard_bytes(
    model: ModelSpec, weight_elem_bytes: float, kv_elem_bytes: float, src: Layout, dst: Layout, gpu: int
) -> tuple[float, float]:
    """(weight bytes, KV bytes per cached token) GPU `gpu` must receive to go from layout `src` to `dst`.

    Per layer of its new stage: the column/row-split matrices (q, o, MLP) are 1/tp_dst of the layer, less the
    overlap of old and new shards when the layer was already held; the k/v projections and the KV cache go by
    KV head, less the heads held in both; norms are replicated, needed only for layers not held. The embedding
    and LM head split over the vocabulary like the matrices; the final norm travels with the head."""
    counts = param_count(model)
    kv_proj_head = 2 * model.hidden_size * model.head_dim  # k and v columns of one KV head
    split = counts.attention_per_layer - kv_proj_head * model.num_key_value_heads + counts.mlp_per_layer
    src_stage, src_rank = src.place(gpu)
    dst_stage, dst_rank = dst.place(gpu)
    new_layers = dst.layers(dst_stage, model.num_hidden_layers)
    both = len(set(new_layers) & set(src.layers(src_stage, model.num_hidden_layers)))
    overlap = shard_overlap(tp_shard(src_rank, src.tp), tp_shard(dst_rank, dst.tp))
    dst_heads = kv_heads(dst_rank, dst.tp, model.num_key_value_heads)
    kept_heads = dst_heads & kv_heads(src_rank, src.tp, model.num_key_value_heads)
    head_layers = len(new_layers) * len(dst_heads) - both * len(kept_heads)  # (layer, KV head) pairs to fetch
    weights = (len(new_layers) / dst.tp - both * overlap) * split * weight_elem_bytes
    weights += head_layers * kv_proj_head * weight_elem_bytes
    weights += (len(new_layers) - both) * counts.norms_per_layer * EMBED_BYTES
    held = end_pieces(model, src, src_stage)
    sizes = {"embedding": counts.embedding, "lm_head": counts.lm_head}
    for piece in end_pieces(model, dst, dst_stage):
        weights += sizes[piece] * EMBED_BYTES * (1 / dst.tp - (overlap if piece in held else 0.0))
    if dst_stage == dst.pp - 1 and src_stage != src.pp - 1:
        weights += counts.final_norm * EMBED_BYTES
    kv_per_token = head_layers * 2 * model.head_dim * kv_elem_bytes  # key and value of each fetched head
    return weights, kv_per_token


@dataclass(frozen=True)
class Transition:
    """One switch of layouts: what each GPU receives, and the link it arrives over."""

    weights_bytes: tuple[float, ...]  # per GPU
    kv_bytes_per_token: tuple[float, ...]  # per GPU, per cached token of the instance
    bw_s: float
    latency_s: float
    bw_eff: float

    def time_s(self, kv_tokens: float) -> float:
        """GPUs receive in parallel; the one receiving most bytes sets the time (0 when nothing moves)."""
        most = max(w + kv * kv_tokens for w, kv in zip(self.weights_bytes, self.kv_bytes_per_token, strict=True))
        return p2p_time_s(most, self.bw_s, self.latency_s, self.bw_eff) if most > 0 else 0.0


@functools.lru_cache(maxsize=1024)  # the same switch for every kv_fill value and every rate tabulated
def build_transition(deployment: Deployment, src: Layout, dst: Layout) -> Transition:
    """The bytes of a switch from `src` to `dst` for every GPU of the instance, over the intra-node link that
    joins them."""
    w, kvb = deployment.dtype.bytes_per_element, deployment.kv_dtype.bytes_per_element
    gpus = src.tp * src.pp
    per_gpu = [gpu_reshard_bytes(deployment.model, w, kvb, src, dst, gpu) for gpu in range(gpus)]
    bw_s, latency_s = group_link(deployment.cluster, gpus, spans_nodes=False)
    return Transition(
        weights_bytes=tuple(b[0] for b in per_gpu),
        kv_bytes_per_token=tuple(b[1] for b in per_gpu),
        bw_s=bw_s,
        latency_s=latency_s,
        bw_eff=link_efficiency(deployment),
    )


# --- one cycle of phases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """The costs a cycle is made of, for one configuration."""

    prefill: Deployment
    decode: Deployment
    prompts_per_microbatch: float  # k
    stage_s: float  # one prefill micro-batch of k prompts through one stage
    max_requests: float  # n at the fill target
    max_batch: float  # decode batch cap
    to_decode: Transition  # weights and KV, prefill -> decode layout
    to_prefill: Transition  # weights back (no KV left after the decode phase)
    input_len: float
    output_len: float
    decode_context: float
    survival: np.ndarray  # S(k), k = 0, 1, ...: share of the workload's requests with more than k decode steps

    def prefill_s(self, n: float) -> float:
        pp = self.prefill.pp_size
        if n <= self.prompts_per_microbatch:
            return pp * prefill_stage_s(self.prefill, self.input_len, n)
        return (n / self.prompts_per_microbatch + pp - 1) * self.stage_s

    def decode_batch(self, n: float) -> float:
        return max(1.0, min(n, self.max_batch))

    def step_s(self, n: float) -> float:
        return continuous.decode_step(self.decode, self.decode_batch(n), self.decode_context).time_s

    def decode_s(self, n: float) -> float:
        """The decode phase of n requests: full batches while the pool lasts, then the drain (module docstring)."""
        if self.output_len <= 1:
            return 0.0
        batch = self.decode_batch(n)
        full_steps = max(n - batch, 0.0) * (self.output_len - 1) / batch
        return full_steps * self.step_s(n) + self.drain_s(batch)

    def drain_s(self, batch: float) -> float:
        """`batch` requests decoding together until the last one finishes."""
        running = 1.0 - (1.0 - self.survival) ** batch  # a(k): a step runs while any request does
        alive = np.maximum(1.0, batch * self.survival / np.maximum(running, 1e-300))
        sizes, times = self.step_table
        return float(np.sum(running * np.interp(alive, sizes, times)))

    @functools.cached_property
    def step_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Decode step times at 16 batch sizes from 1 to max_batch (geometric): the step is smooth in the batch,
        and the drain reads it by interpolation."""
        return decode_step_table(self.decode, self.max_batch, self.decode_context)

    def to_decode_s(self, n: float) -> float:
        """The switch after a prefill phase of n prompts: weights and their n x I tokens of KV."""
        return self.to_decode.time_s(n * self.input_len)

    def reshard_s(self, n: float) -> float:
        """Both switches of a cycle."""
        return self.to_decode_s(n) + self.to_prefill.time_s(0.0)

    def length_s(self, n: float) -> float:
        return self.prefill_s(n) + self.reshard_s(n) + self.decode_s(n)


@functools.lru_cache(maxsize=1024)  # one table per decode layout and batch cap, whatever the fill and prefill layout
def decode_step_table(decode: Deployment, max_batch: float, decode_context: float) -> tuple[np.ndarray, np.ndarray]:
    """(batch sizes, decode step seconds) at 16 batch sizes from 1 to max_batch, spaced geometrically (Cycle)."""
    sizes = np.geomspace(1.0, max(max_batch, 1.0), 16)
    return sizes, np.array([continuous.decode_step(decode, b, decode_context).time_s for b in sizes])


def decode_survival(output_lens: np.ndarray) -> np.ndarray:
    """S(k) for k = 0 .. the longest request's decode steps - 1: the share of requests with more than k decode
    steps (a request of O output tokens decodes O - 1 of them after its prefill)."""
    steps = np.asarray(output_lens, dtype=np.int64) - 1
    if steps.max() <= 0:
        return np.zeros(0)
    counts = np.bincount(steps, minlength=int(steps.max()) + 1)  # requests with exactly s decode steps
    more_than: np.ndarray = 1.0 - np.cumsum(counts)[:-1] / len(steps)  # k = 0 .. max - 1
    return more_than


def prefill_stage_s(deployment: Deployment, input_len: float, prompts: float) -> float:
    """One micro-batch of prompts through one stage, across one boundary, plus the iteration overhead."""
    batch = BatchShape.prefill(input_len, prompts)
    return stage_step(deployment, batch).time_s


@register
class PhaseResharding(Strategy):
    name = "phase-resharding"
    summary = "long prefill then decode phases on the same GPUs, each with its own TP x PP; re-shard at switches"
    reference = "Seesaw (MLSys'25, arXiv 2503.06433)"
    knobs = (
        Knob(
            name="kv_fill",
            default=0.9,
            search=(0.25, 0.5, 0.9),
            help="share of the KV cache a prefill phase fills before switching to decode (TD-Pipe switches at "
            "0.9): longer phases amortise the two re-shards per cycle but lengthen TTFT",
        ),
        Knob(
            name="max_batch",
            default=256,
            search=(256, 1024),
            help="cap on sequences decoding together in the decode phase",
        ),
    )

    def _deployment(self, ctx: Context, layout: Layout, candidate: Candidate) -> Deployment:
        engine = ctx.engine.model_copy(
            update={"mixed_batching": False, "max_batch_size": int(candidate.knobs["max_batch"])}
        )
        return ctx.deployment(layout.tp, layout.pp, engine)

    @staticmethod
    def layouts_of(candidate: Candidate) -> tuple[Layout, Layout]:
        """(prefill layout, decode layout)."""
        prefill = Layout(candidate.detail["prefill_tp"], candidate.detail["prefill_pp"])
        return prefill, Layout(candidate.tp, candidate.pp)

    def candidates(self, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate | Infeasible]:
        pairs = [(tp, pp) for tp, pp in layouts(ctx) if tp * pp <= ctx.cluster.gpus_in_node]  # one node (Seesaw)
        for (tp_p, pp_p), (tp_d, pp_d) in ((p, d) for p in pairs for d in pairs if p[0] * p[1] == d[0] * d[1]):
            gpus = tp_d * pp_d
            if ctx.instance_gpus is not None and gpus != ctx.instance_gpus:
                continue
            for values in self.knob_grid(knobs):
                candidate = Candidate(
                    strategy=self.name,
                    tp=tp_d,
                    pp=pp_d,
                    replicas=ctx.cluster.num_gpus // gpus,
                    gpus_used=ctx.cluster.num_gpus // gpus * gpus,
                    knobs=values,
                    detail={"prefill_tp": tp_p, "prefill_pp": pp_p},
                )
                reason = None
                if not 0 < values["kv_fill"] <= 1:
                    reason = "kv_fill must lie in (0, 1]: CPU KV buffering is not modelled"
                else:
                    try:
                        self.memory(ctx, candidate)
                    except PlannerError as err:
                        reason = f"prefill TP{tp_p} PP{pp_p} / decode TP{tp_d} PP{pp_d}: {err}"
                if reason is not None:
                    yield Infeasible(strategy=self.name, tp=tp_d, pp=pp_d, knobs=values, reason=reason)
                    continue
                yield candidate

    def _memories(self, ctx: Context, candidate: Candidate) -> tuple[MemoryBreakdown, MemoryBreakdown]:
        prefill, decode = self.layouts_of(candidate)
        return (
            memory_breakdown(self._deployment(ctx, prefill, candidate)),
            memory_breakdown(self._deployment(ctx, decode, candidate)),
        )

    def memory(self, ctx: Context, candidate: Candidate) -> Memory:
        """The layout with the smaller KV capacity binds: the same requests' KV must fit in both."""
        binding = min(self._memories(ctx, candidate), key=lambda m: m.kv_capacity_tokens)
        require_request_fits(ctx, binding)
        return Memory(gib=binding.as_gib(), kv_capacity_tokens=binding.kv_capacity_tokens)

    def cycle(self, ctx: Context, candidate: Candidate) -> Cycle:
        """The configuration's cycle costs, built once per context: capacity and every rate the latencies are
        tabulated at read the same one."""
        src, dst = self.layouts_of(candidate)
        key = ("phase-resharding cycle", src, dst, candidate.knobs["kv_fill"], candidate.knobs["max_batch"])
        return ctx.cached(key, lambda: self._cycle(ctx, candidate, src, dst))

    def _cycle(self, ctx: Context, candidate: Candidate, src: Layout, dst: Layout) -> Cycle:
        prefill, decode = self._deployment(ctx, src, candidate), self._deployment(ctx, dst, candidate)
        w = ctx.workload
        kv_tokens = min(m.kv_capacity_tokens for m in self._memories(ctx, candidate))
        k = float(max(1, prefill.engine.max_num_tokens // round(w.mean_input_len)))
        return Cycle(
            prefill=prefill,
            decode=decode,
            prompts_per_microbatch=k,
            stage_s=prefill_stage_s(prefill, w.mean_input_len, k),
            max_requests=max(1.0, candidate.knobs["kv_fill"] * kv_tokens / (w.mean_input_len + w.mean_output_len)),
            max_batch=float(candidate.knobs["max_batch"]),
            to_decode=build_transition(decode, src, dst),
            to_prefill=build_transition(decode, dst, src),
            input_len=w.mean_input_len,
            output_len=w.mean_output_len,
            decode_context=w.mean_decode_context,
            survival=ctx.cached("decode survival", lambda: decode_survival(np.array(w.output_lens))),
        )

    def capacity_req_s(self, ctx: Context, candidate: Candidate) -> float:
        cycle = self.cycle(ctx, candidate)
        n = cycle.max_requests
        return n / cycle.length_s(n) * candidate.replicas

    def latencies(self, ctx: Context, candidate: Candidate, rate_req_s: float) -> Latencies | None:
        cycle = self.cycle(ctx, candidate)
        rate = rate_req_s / candidate.replicas
        if rate * cycle.length_s(cycle.max_requests) >= cycle.max_requests:
            return None
        low, high = 1.0, cycle.max_requests  # n = R T(n): the requests that arrive during one cycle
        if rate * cycle.length_s(low) > low:
            for _ in range(40):
                mid = (low + high) / 2
                low, high = (mid, high) if rate * cycle.length_s(mid) > mid else (low, mid)
        n = high if rate * cycle.length_s(1.0) > 1.0 else 1.0
        length_s, prefill_s, step_s = cycle.length_s(n), cycle.prefill_s(n), cycle.step_s(n)
        busy = min(1.0, max(rate * length_s / n, 1e-12))  # share of time a cycle is running
        w = ctx.workload
        outputs = np.array(w.output_lens, dtype=float)
        count = len(outputs)
        arrive, place, slot = (seeded_quantiles(count, seed) for seed in (2, 3, 4))
        # An arrival finds a cycle running with probability `busy`, at a uniform point u of it. During the
        # prefill phase it joins; otherwise it waits out the rest of the cycle. An idle system starts at once.
        u = arrive / busy
        wait = np.where((arrive < busy) & (u >= prefill_s / length_s), (1 - u) * length_s, 0.0)
        own_s = continuous.prefill_latencies_s(cycle.prefill, np.array(w.input_lens))
        ttft = wait + (place * prefill_s if n > 1 else 0.0) + own_s
        decode_batch = cycle.decode_batch(n)
        queued_s = max(0.0, cycle.decode_s(n) - (w.mean_output_len - 1) * step_s) if n > decode_batch else 0.0
        first_gap = (1 - place) * prefill_s + cycle.to_decode_s(n) + slot * queued_s
        gaps = np.maximum(outputs - 1, 1)
        tpot = np.where(outputs > 1, (first_gap + (outputs - 1) * step_s) / gaps, step_s)
        first_gap_share = count / float(np.sum(gaps))  # one gap per request spans the switch
        tbt_p99 = step_s if first_gap_share <= 0.01 else float(np.mean(first_gap))
        return Latencies(ttft_s=ttft, tpot_s=tpot, tbt_p99_s=tbt_p99)
