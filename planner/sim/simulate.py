"""`simulate()`: replay an engine's scheduler on a request stream, iteration by iteration, over data-parallel
replicas, with iteration times from the compiled cost model.

The event loop is a heap of timed events, in the manner of vidur's: arrivals, ends of planned runs, and
wake-ups. At one instant arrivals come first, then run ends, then wake-ups, so an instance decides its next
iteration after everything that happened at that instant. An instance runs one iteration at a time; the
scheduler plans a run (planner.sim.instance.Run) whose first iteration is fixed and whose later decode steps
are provisional: an arrival that could join the batch cuts the run at the iteration then in progress.

Pipeline parallelism: an instance with pp stages runs one iteration at a time through all stages
(iteration_cost), without the micro-batches that would keep the stages busy together.
"""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np

from planner.errors import PlannerError
from planner.sim.chunked import plan_chunked
from planner.sim.instance import Instance, Ledger, Phase, Run
from planner.sim.policy import Policy, Routing, Scheduler, SchedulerConfig, resolve_scheduler
from planner.sim.prefill_first import plan_prefill_first
from planner.sim.result import (
    LatencyStats,
    PhaseBusy,
    RequestRecords,
    SimResult,
    Slo,
    sample_queue,
    slo_attainment,
)
from planner.sim.streams import Arrival, DrawnRequests, RequestStream, draw_requests
from planner.sim.timing import IterationTimer
from planner.specs.deployment import Deployment

ARRIVAL, RUN_END, WAKE = 0, 1, 2  # event priorities at one instant


def _check_fits(drawn: DrawnRequests, config: SchedulerConfig) -> None:
    """Every request must be able to run alone: the KV cache holds its longest context (input + output - 1
    tokens; input + output reserved under GUARANTEED_NO_EVICT), less the admission watermark."""
    longest = int((drawn.input_len + drawn.output_len).max())
    held = longest if config.reserves_full_sequence else longest - 1
    usable = config.total_blocks - config.watermark_blocks
    if -(-held // config.block_size_tokens) > usable:
        raise PlannerError(
            f"a request of {longest} tokens needs more KV cache than the {config.kv_capacity_tokens} tokens one "
            "instance holds: shorten it or give the instance more memory (raise TP/PP)"
        )


def simulate(
    deployment: Deployment,
    stream: RequestStream,
    policy: Policy | None = None,
    replicas: int | None = None,
    routing: Routing = Routing.round_robin,
    slo: Slo | None = None,
    seed: int = 0,
) -> SimResult:
    """Simulate `stream` on `replicas` identical instances of `deployment` (default: the data-parallel replicas
    its cluster holds) under `policy` (default: the engine profile's scheduler and knobs)."""
    policy = policy or Policy()
    config = resolve_scheduler(deployment, policy)
    count = replicas or deployment.replicas
    if count < 1:
        raise PlannerError(f"replicas must be at least 1, got {count}")
    drawn = draw_requests(stream, seed)
    _check_fits(drawn, config)
    total = len(drawn.input_len)
    ledger = Ledger(
        input_len=drawn.input_len,
        output_len=drawn.output_len,
        counted=np.arange(total) >= stream.warmup_requests,
        arrival_s=drawn.arrival_s.copy(),
    )
    timer = IterationTimer(deployment, config.max_batch_size, int((drawn.input_len + drawn.output_len).max()))
    instances = [Instance(i, config, ledger, timer) for i in range(count)]
    plan = plan_prefill_first if config.scheduler is Scheduler.prefill_first else plan_chunked
    closed = stream.arrival is Arrival.closed_loop
    # A run may carry on past a finish only when no one reacts to that finish before the run ends: an open
    # stream routed round-robin (a closed loop re-issues at the finish; least-loaded routing reads the load).
    drain = not closed and routing is Routing.round_robin

    heap: list[tuple[float, int, int, int, int]] = []  # (time, priority, sequence, target, version)
    sequence = itertools.count()
    issued = min(stream.clients or 0, total) if closed else 0
    for req in range(issued):
        heapq.heappush(heap, (0.0, ARRIVAL, next(sequence), req, 0))
    open_times = ledger.arrival_s if not closed else np.zeros(0)
    next_open = 0
    routed = 0

    def route() -> Instance:
        nonlocal routed
        routed += 1
        if routing is Routing.round_robin:
            return instances[(routed - 1) % count]
        return min(instances, key=lambda inst: (len(inst.waiting) + inst.num_used, inst.index))

    def arrive(req: int, time_s: float) -> None:
        ledger.arrival_s[req] = time_s
        instance = route()
        ledger.replica[req] = instance.index
        instance.waiting.append(req)
        instance.record(time_s)
        run = instance.run
        if run is None:
            if not instance.wake_pending:
                instance.wake_pending = True
                heapq.heappush(heap, (time_s, WAKE, next(sequence), instance.index, 0))
        elif len(instance.waiting) == 1 and instance.num_used < config.max_batch_size:
            _cut(instance, run, time_s)

    def _cut(instance: Instance, run: Run, time_s: float) -> None:
        """End the run with the iteration in progress at time_s, so the next one can take the arrival."""
        last = int(np.searchsorted(run.ends_s, time_s, side="left"))
        if last < len(run.ends_s) - 1:
            run.ends_s = run.ends_s[: last + 1]
            instance.version += 1
            heapq.heappush(heap, (float(run.ends_s[-1]), RUN_END, next(sequence), instance.index, instance.version))

    def start(instance: Instance, time_s: float) -> None:
        run = plan(instance, time_s, not drain)
        instance.record(time_s)
        instance.run = run
        if run is not None:
            instance.version += 1
            heapq.heappush(heap, (float(run.ends_s[-1]), RUN_END, next(sequence), instance.index, instance.version))

    while True:
        open_time = open_times[next_open] if next_open < len(open_times) else math.inf
        if heap and (heap[0][0], heap[0][1]) < (open_time, ARRIVAL):
            time_s, kind, _, target, version = heapq.heappop(heap)
        elif next_open < len(open_times):
            time_s, kind, target, version = float(open_time), ARRIVAL, next_open, 0
            next_open += 1
        else:
            break
        if kind == ARRIVAL:
            arrive(target, time_s)
            continue
        instance = instances[target]
        if kind == WAKE:
            instance.wake_pending = False
            if instance.run is None:
                start(instance, time_s)
            continue
        run = instance.run
        if version != instance.version or run is None:
            continue  # superseded by a cut
        finished = instance.commit(run, len(run.ends_s))
        instance.run = None
        if closed:
            for req in finished:  # its client sends the next request at once
                if issued < total:
                    heapq.heappush(heap, (float(ledger.finish_s[req]), ARRIVAL, next(sequence), issued, 0))
                    issued += 1
        instance.wake_pending = True
        heapq.heappush(heap, (time_s, WAKE, next(sequence), instance.index, 0))

    if np.isnan(ledger.finish_s).any():  # a scheduler that stalls with work left is a bug, not bad input
        raise RuntimeError(f"{int(np.isnan(ledger.finish_s).sum())} requests never finished")
    return _summarize(ledger, instances, stream, config, routing, slo)


def _summarize(
    ledger: Ledger,
    instances: list[Instance],
    stream: RequestStream,
    config: SchedulerConfig,
    routing: Routing,
    slo: Slo | None,
) -> SimResult:
    counted = ledger.counted
    arrival, first, finish = ledger.arrival_s[counted], ledger.first_token_s[counted], ledger.finish_s[counted]
    outputs = ledger.output_len[counted]
    ttft = first - arrival
    decoding = outputs > 1
    tpot = np.zeros(len(outputs))
    tpot[decoding] = (finish - first)[decoding] / (outputs[decoding] - 1)
    duration_s = float(finish.max() - arrival.min())
    itl_values = np.concatenate(ledger.itl_values_s) if ledger.itl_values_s else np.zeros(0)
    itl_weights = np.concatenate(ledger.itl_weights) if ledger.itl_weights else np.zeros(0, dtype=np.int64)
    records = RequestRecords(
        replica=tuple(ledger.replica.tolist()),
        warmup=tuple((~counted).tolist()),
        arrival_s=tuple(ledger.arrival_s.tolist()),
        first_token_s=tuple(ledger.first_token_s.tolist()),
        finish_s=tuple(ledger.finish_s.tolist()),
        input_len=tuple(ledger.input_len.tolist()),
        output_len=tuple(ledger.output_len.tolist()),
        preemptions=tuple(ledger.preemptions.tolist()),
    )
    return SimResult(
        scheduler=config.scheduler.value,
        stream=stream.label,
        replicas=len(instances),
        routing=routing.value,
        kv_capacity_tokens=config.kv_capacity_tokens,
        num_requests=int(counted.sum()),
        output_tokens=int(ledger.generated[counted].sum()),
        duration_s=duration_s,
        output_throughput_tok_s=float(ledger.generated[counted].sum()) / duration_s,
        request_throughput_req_s=len(outputs) / duration_s,
        ttft_s=LatencyStats.of(ttft),
        tpot_s=LatencyStats.of(tpot[decoding]),
        itl_s=LatencyStats.weighted(itl_values, itl_weights),
        e2e_s=LatencyStats.of(finish - arrival),
        slo_attainment=slo_attainment(ttft, tpot, slo),
        busy=PhaseBusy(
            prefill_s=ledger.busy_s[Phase.prefill],
            decode_s=ledger.busy_s[Phase.decode],
            mixed_s=ledger.busy_s[Phase.mixed],
        ),
        iterations=ledger.iterations,
        preemptions=int(ledger.preemptions.sum()),
        queue=sample_queue([instance.samples for instance in instances], float(np.nanmax(ledger.finish_s))),
        requests=records,
    )
