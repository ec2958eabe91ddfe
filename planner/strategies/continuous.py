"""Colocated continuous batching (Orca, vLLM, TensorRT-LLM in-flight batching) in steady state.

B requests are in flight on one instance and each finishes once per cycle, so by Little's law the cycle is one
request's life: its first token, then O - 1 decode steps of the batch stretched by the prompts of the other
B - 1 requests (each admitted once per cycle):

    E2E(B) = TTFT + (O - 1) x TPOT,   TPOT = t_decode(B) + (B - 1) x t_prefill_share / (O - 1)
    X(B) = B / E2E(B)   requests/s;   O = 1: E2E(B) = max(t_prefill, B x t_prefill_share), prompt-only iterations

(mixed batching costs the riding prompts together with the decodes of a step, see `steady_state`).

t_prefill_share depends on how the engine schedules prompts:
- prefill-first (vLLM V0): prompts run in their own iterations, k = max_num_tokens // I at a time, stalling
  every decode: share = t_iteration(k prompts) / k;
- mixed (TensorRT-LLM in-flight batching, chunked prefill): prompt chunks ride along decode iterations, so a
  prompt costs only its marginal compute: share = [t(decodes + chunk) - t(decodes)] x I / chunk.
With mixed batching the per-iteration token budget also caps the decode batch: in steady state each iteration
holds d decodes and max_num_tokens - d prompt tokens, and completions (d / O) balance admissions
((max_num_tokens - d) / I), so d <= max_num_tokens x O / (I + O).

With PP > 1 the batch is split into pp micro-batches that occupy the stages in turn; a decode step of the whole
batch is pp x (stage time of B / pp + send), and a prompt occupies each stage once (its latency is pp stages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from planner.cost.iteration import IterationCost, iteration_cost, stage_step
from planner.cost.ops import BatchShape
from planner.specs.deployment import Deployment


@dataclass(frozen=True, slots=True)
class ServingPoint:
    """Steady state of one instance at a mean in-flight batch."""

    batch_size: float  # mean requests in flight (decode batch)
    request_rate_req_s: float  # completions per second
    ttft_s: float  # mean time to first token, queueing included
    tpot_s: float  # mean time per output token after the first
    decode_step: IterationCost  # one decode step of the whole batch
    prefill_time_s: float  # one prompt of I tokens alone, through every stage
    stable: bool = True


def decode_step(deployment: Deployment, batch_size: float, mean_context: float) -> IterationCost:
    """One output token for each of `batch_size` sequences (all pp micro-batches)."""
    pp = deployment.pp_size
    return stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context)).scaled(pp)


def prefill_latency_s(deployment: Deployment, input_len: int) -> float:
    """One prompt alone through the whole model."""
    return iteration_cost(deployment, BatchShape.prefill(input_len)).time_s


def prefill_latencies_s(deployment: Deployment, input_lens: np.ndarray) -> np.ndarray:
    """`prefill_latency_s` for many prompt lengths: exact at 24 lengths spaced evenly in log scale over the
    range, linearly interpolated between them (prefill time is smooth in the length)."""
    lengths = np.asarray(input_lens, dtype=float)
    grid = np.unique(np.rint(np.geomspace(lengths.min(), lengths.max(), 24)))
    times = np.array([prefill_latency_s(deployment, int(n)) for n in grid])
    interpolated: np.ndarray = np.interp(lengths, grid, times)
    return interpolated


def max_decode_batch(deployment: Deployment, input_len: int, output_len: int, kv_capacity_tokens: int) -> float:
    """Largest steady-state decode batch: KV memory, the engine's sequence cap, and (mixed batching) the
    per-iteration token budget (see the module docstring)."""
    engine = deployment.engine
    per_seq = input_len + (output_len if engine.reserves_full_sequence else output_len / 2)
    cap = min(float(engine.max_batch_size), kv_capacity_tokens / per_seq)
    if engine.mixed_batching:
        cap = min(cap, engine.max_num_tokens * output_len / (input_len + output_len) * deployment.pp_size)
    return max(cap, 1.0)


def prefill_share_s(
    deployment: Deployment, input_len: int, batch_size: float, mean_context: float, output_len: int | None = None
) -> float:
    """Engine time one prompt costs the instance (see the module docstring). With `output_len` 1 no request
    ever decodes, so under mixed batching too prompts fill their own iterations, packed as prefill-first."""
    engine, pp = deployment.engine, deployment.pp_size
    if engine.mixed_batching and output_len != 1:
        # A prompt rides along the decodes of the other B - 1 requests; with none running (B <= 1) it runs
        # alone and pays the whole iteration. Between the two, blend by the chance others are running.
        others = min(max(batch_size - 1.0, 0.0), 1.0)
        alone = stage_step(deployment, BatchShape.prefill(input_len)).time_s
        if others == 0.0:
            return alone
        decodes = BatchShape.decode(batch_size / pp, mean_context)
        chunk = max(1.0, min(float(input_len), engine.max_num_tokens - batch_size / pp))
        with_chunk = stage_step(deployment, decodes + BatchShape.prefill(chunk)).time_s
        marginal = (with_chunk - stage_step(deployment, decodes).time_s) * input_len / chunk
        return others * marginal + (1.0 - others) * alone
    return packed_prefill_share_s(deployment, input_len, batch_size, mean_context)


def packed_prefill_share_s(deployment: Deployment, input_len: int, batch_size: float, mean_context: float) -> float:
    """Engine time per prompt when prompts fill their own iterations, max_num_tokens // I at a time (at most the
    batch): prefill-first scheduling, or any engine with no decodes to ride along."""
    engine, pp = deployment.engine, deployment.pp_size
    per_batch = max(1, min(int(engine.max_num_tokens // input_len), math.ceil(batch_size)))
    prompt_stage_s = stage_step(deployment, BatchShape.prefill(input_len, per_batch)).time_s
    if pp > 1:
        # Naive pipeline (vLLM-style PP): the long prompt micro-batch sets the pace at every stage it passes,
        # so the decode micro-batches queued behind it wait T at each of the pp - 1 later stages instead of
        # their own t: the prompt costs pp T - (pp - 1) t of pipeline time rather than T (on identical stages
        # a micro-batch delays the stream behind it by (pp - 1) x (its stage time - the stream's), the
        # proportionate flow-shop makespan). In steady state a prompt enters as soon as a slot frees, and a
        # pipeline frees B / (pp O) < 1 slot per micro-batch at serving batch sizes, so a prompt micro-batch
        # holds one prompt. Packing max_num_tokens // I prompts into one (true only of a cold start) would
        # charge the (pp - 1) T stall on the whole pack: naive PP8 would fall to 0.38x of TP8 for Llama-2-70B
        # on 8 L20 (one prompt per micro-batch: 0.52x), where TD-Pipe's published speedups on PCIe-only
        # nodes (up to 2.73x over PP and 1.91x over TP, arXiv 2506.10470) imply about 0.7x if both maxima
        # come from one setting.
        alone_s = stage_step(deployment, BatchShape.prefill(input_len)).time_s
        decode_stage_s = stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context)).time_s
        return pp * alone_s - (pp - 1) * min(decode_stage_s, alone_s)
    return prompt_stage_s / per_batch


def _first_token_service_s(
    deployment: Deployment, input_len: int, batch_size: float, mean_context: float, t_decode: float
) -> float:
    """Time from admission to the first token: the prompt's own iterations, after waiting (on average) half
    of the iteration already running when other requests are in flight."""
    engine, pp = deployment.engine, deployment.pp_size
    residual = t_decode / 2 * (1 - 1 / max(batch_size, 1.0))
    if not engine.mixed_batching or batch_size <= 1:
        return prefill_latency_s(deployment, input_len) + residual
    budget = max(1.0, engine.max_num_tokens - batch_size / pp)
    chunks = math.ceil(input_len / budget)
    chunk = input_len / chunks
    step = stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context) + BatchShape.prefill(chunk))
    return chunks * step.time_s * pp + residual


def steady_state(
    deployment: Deployment, input_len: int, output_len: int, batch_size: float, mean_context: float | None = None
) -> ServingPoint:
    """The instance with `batch_size` requests always in flight (closed loop, no queue). `mean_context` is the
    mean KV context of a decode step: input + output / 2 for one request shape, the output-weighted mean over a
    workload of mixed lengths (Workload.mean_decode_context)."""
    mean_context = mean_context or input_len + output_len / 2
    step = decode_step(deployment, batch_size, mean_context)
    share = prefill_share_s(deployment, input_len, batch_size, mean_context, output_len)
    ttft = _first_token_service_s(deployment, input_len, batch_size, mean_context, step.time_s)
    # Little's law ties the cycle to one request's life: B requests finish per cycle and each lives one cycle,
    # its first token and then O - 1 decode steps of the batch, stretched by the prompts of the other B - 1
    # requests (each admitted once per cycle). Counting the cycle as the engine's work instead, O - 1 decode
    # steps plus B prompt shares, would miss that a request holds its batch slot through its whole first-token
    # time without decoding (its prompt's iteration, and the wait for it), and put TPOT below a decode step.
    others = max(batch_size - 1.0, 0.0)
    if deployment.engine.mixed_batching and output_len > 1:
        # The others' prompts ride along the decode steps: (B - 1) I / (O - 1) prompt tokens per step, as
        # whole prompts on average (chunks of one prompt attend to its earlier chunks), costed with the
        # decodes in one iteration rather than as a sum of single-chunk margins, so that the step stays an
        # iteration time (never slower on faster hardware).
        pp = deployment.pp_size
        riders = BatchShape.prefill(input_len, others / (output_len - 1) / pp)
        tpot = stage_step(deployment, BatchShape.decode(batch_size / pp, mean_context) + riders).time_s * pp
    else:
        tpot = step.time_s + others * share / (output_len - 1) if output_len > 1 else 0.0
    busy = ttft + (output_len - 1) * tpot
    if output_len == 1:
        # Nothing ever decodes: the engine runs prompt-only iterations back to back, B prompts per cycle, and
        # a request takes at least its own prompt's latency. The first token ends the request, so TTFT is the
        # whole cycle (Little's law).
        busy = ttft = max(prefill_latency_s(deployment, input_len), batch_size * share)
    return ServingPoint(
        batch_size=batch_size,
        request_rate_req_s=batch_size / busy,
        ttft_s=ttft,
        tpot_s=tpot,
        decode_step=step,
        prefill_time_s=prefill_latency_s(deployment, input_len),
    )


def offline(
    deployment: Deployment, input_len: int, output_len: int, max_batch: float, num_requests: int
) -> ServingPoint:
    """All `num_requests` queued at once: the batch runs full; a request waits for its prompt's turn, and
    beyond the batch for a slot first.

    The first B = min(N, batch) prompts are prefilled one after another, prompt j waiting j x t_prefill_share
    (prompt-only iterations, `packed_prefill_share_s`);
    request i > B is admitted once i - B earlier ones finished, at (i - B) / X. Mean wait over the N requests:
    [B (B - 1) / 2 x t_prefill_share + (N - B)^2 / (2 X)] / N."""
    point = steady_state(deployment, input_len, output_len, min(max_batch, num_requests))
    first = point.batch_size
    # The first prompts meet an empty batch: there are no decodes to ride along yet, so whatever the engine's
    # scheduling they are admitted as fast as prompt-only iterations run them.
    share = packed_prefill_share_s(deployment, input_len, first, input_len + output_len / 2)
    waiting = (
        first * (first - 1) / 2 * share + max(0.0, num_requests - first) ** 2 / (2 * point.request_rate_req_s)
    ) / num_requests
    return replace(point, ttft_s=point.ttft_s + waiting)


def closed_loop(
    deployment: Deployment, input_len: int, output_len: int, max_batch: float, concurrency: float
) -> ServingPoint:
    """`concurrency` clients, each sending its next request when the last one finishes. Clients beyond the
    batch limit wait in the queue: (C - B) / X on average (Little's law on the queue)."""
    point = steady_state(deployment, input_len, output_len, min(max_batch, concurrency))
    waiting = max(0.0, concurrency - point.batch_size) / point.request_rate_req_s
    return replace(point, ttft_s=point.ttft_s + waiting)


def slot_wait_s(batch_size: float, max_batch: float, rate_req_s: float) -> float:
    """Mean wait for a free batch slot when `batch_size` of `max_batch` slots are busy on average: the M/M/c
    queue with c = max_batch servers at utilisation rho = B / c, by Sakasegawa's approximation (1977) of
    the queue length, Lq = rho^sqrt(2 (c + 1)) / (1 - rho), and Little's law, Wq = Lq / rate."""
    rho = batch_size / max_batch
    if rho >= 1:
        return math.inf
    servers = max(max_batch, 1.0)
    return float(rho ** math.sqrt(2 * (servers + 1)) / (1 - rho) / rate_req_s)


def poisson(
    deployment: Deployment,
    input_len: int,
    output_len: int,
    max_batch: float,
    rate_req_s: float,
    mean_context: float | None = None,
) -> ServingPoint:
    """Poisson arrivals at `rate_req_s` (an open system).

    A prompt arriving while others decode stalls them (prefill-first) or slows their steps (mixed): prompts take
    a share rho = rate x t_prefill_share of engine time, so TPOT = t_decode(B) / (1 - rho); prompts queue for
    that share as in an M/D/1 queue, wait = rho t / (2 (1 - rho)). The mean in-flight batch solves
    B = rate x E2E(B) (Little's law). At or beyond the capacity of a full batch the point is returned at
    capacity with `stable` False. Requests also wait for a batch slot as the offered rate nears the capacity
    (`slot_wait_s`)."""
    mean_context = mean_context or input_len + output_len / 2
    full = steady_state(deployment, input_len, output_len, max_batch, mean_context)
    if rate_req_s >= full.request_rate_req_s:
        return replace(full, stable=False)

    def at(batch: float) -> ServingPoint:
        step = decode_step(deployment, max(batch, 1.0), mean_context)
        share = prefill_share_s(deployment, input_len, max(batch, 1.0), mean_context, output_len)
        rho = min(rate_req_s * share, 0.999)
        tpot = step.time_s / (1 - rho) if output_len > 1 else 0.0  # no token after the first, as steady_state
        service = _first_token_service_s(deployment, input_len, batch, mean_context, step.time_s)
        ttft = service + rho * share / (2 * (1 - rho))
        return ServingPoint(
            batch_size=batch,
            request_rate_req_s=rate_req_s,
            ttft_s=ttft,
            tpot_s=tpot,
            decode_step=step,
            prefill_time_s=prefill_latency_s(deployment, input_len),
        )

    def excess(batch: float) -> float:
        point = at(batch)
        return rate_req_s * (point.ttft_s + (output_len - 1) * point.tpot_s) - batch

    low, high = 0.0, max_batch
    if excess(high) <= 0:
        for _ in range(50):  # bisection on B = rate x E2E(B), the batch excluding requests waiting for a slot
            mid = (low + high) / 2
            low, high = (mid, high) if excess(mid) > 0 else (low, mid)
    # Otherwise the batch runs full below capacity (the stretched latencies above ask for more than max_batch in
    # flight) and the rest wait for a slot. Slots free at the full batch's completion rate, so the slot queue
    # is M/M/c with c = max_batch servers of total rate `full.request_rate_req_s`: its utilisation is the offered
    # rate over that capacity, which reaches 1 exactly where the point turns unstable (one capacity, the
    # offline throughput of a full batch).
    point = at(high)
    utilisation = rate_req_s / full.request_rate_req_s
    return replace(point, ttft_s=point.ttft_s + slot_wait_s(utilisation * max_batch, max_batch, rate_req_s))


def static_batch(deployment: Deployment, input_len: int, output_len: int, batch_size: int) -> ServingPoint:
    """Static batching (TensorRT-LLM before in-flight batching): `batch_size` requests start together, one
    prefill iteration for all their prompts, then output_len - 1 decode steps of the whole batch at the mean
    context; the batch ends when its last request does."""
    mean_context = input_len + output_len / 2
    prefill = iteration_cost(deployment, BatchShape.prefill(input_len, batch_size)).time_s
    step = decode_step(deployment, batch_size, mean_context)
    total = prefill + (output_len - 1) * step.time_s
    return ServingPoint(
        batch_size=batch_size,
        request_rate_req_s=batch_size / total,
        ttft_s=prefill,
        tpot_s=step.time_s,
        decode_step=step,
        prefill_time_s=prefill,
    )
