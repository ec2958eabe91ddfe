"""`simulate()`: replay an engine's scheduler on a request stream, iteration by iteration, over data-parallel
replicas, with iteration times from the compiled cost model; `simulate_pools()`: the same over the pools of a
disaggregated deployment, with each request's KV moving from a prefill instance to a decode instance.

The event loop is a heap of timed events, in the manner of vidur's: arrivals, KV arrivals at decode
instances, ends of planned runs, and wake-ups. At one instant they come in that order, so an instance decides
its next iteration after everything that happened at that instant. An instance runs one iteration at a time;
the scheduler plans a run (planner.sim.instance.Run) whose first iteration is fixed and whose later decode
steps are provisional: an arrival that could join the batch cuts the run at the iteration then in progress.

Pipeline parallelism: an instance with pp stages is pp virtual engines whose micro-batches share the stages
(planner.sim.pipeline); a request goes to the virtual engine of its replica with the fewest requests.

Disaggregation: a prefill instance hands a request off when its prompt is done (its first token streams to the
client then, as DistServe's does); the KV goes over that prefill instance's link, one transfer at a time in
FIFO order (bytes / attained bandwidth, plus the link latency), to the decode instance with the fewest
requests, which admits it when a slot and KV blocks are free (planner.sim.decode_pool). An SM partition is the
same pair of roles on one instance's GPUs: prefill worker i hands its requests to decode worker i, both in one
KV cache, nothing transferred; the decode worker's step is the contended one while its prefill worker runs.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from planner.errors import PlannerError
from planner.sim.chunked import plan_chunked
from planner.sim.decode_pool import plan_decode_pool
from planner.sim.instance import (
    Instance,
    KvBlocks,
    Ledger,
    Phase,
    PhaseState,
    Run,
    WaitingQueue,
    join_siblings,
    least_loaded,
)
from planner.sim.macro import Macro
from planner.sim.pipeline import StageClock
from planner.sim.policy import Policy, Role, Routing, Scheduler, SchedulerConfig, resolve_scheduler
from planner.sim.prefill_first import plan_prefill_first
from planner.sim.resharding import Resharding, ReshardingScheduler
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
from planner.sim.temporal import plan_temporal
from planner.sim.throttled import plan_throttled
from planner.sim.timing import IterationTimer, MicroBatchedTimer
from planner.specs.deployment import Deployment

ARRIVAL, KV_ARRIVAL, RUN_END, WAKE = 0, 1, 2, 3  # event kinds, in their order at one instant
Progress = Callable[[int, int], None]  # (requests finished, requests in all)
Planner = Callable[[Instance, float, bool], Run | None]  # a scheduler's planning of an instance's next run


@dataclass(frozen=True)
class SimPool:
    """`count` identical instances of `deployment` in one role, under `policy`. With a rotation in the policy
    the instances form macro instances (EcoServe, planner.sim.macro): arrivals go round-robin (or to the
    least loaded) over the macros, and within a macro to the instance its rotating pointer names."""

    deployment: Deployment
    count: int
    role: Role = Role.serve
    policy: Policy = field(default_factory=Policy)
    contended: Deployment | None = None  # a paired decode worker while its prefill worker runs (SM partition)
    resharding: Resharding | None = None  # its prefill layout and switches (phase re-sharding; deployment: decode)


@dataclass(frozen=True)
class KvTransfer:
    """How a request's KV moves from a prefill instance to a decode instance: `bytes_per_token` of prompt, over
    the prefill instance's link at `bandwidth_bytes_s` (attained, all the lanes one transfer uses) after
    `latency_s`. `paired`: prefill worker i and decode worker i share GPUs and one KV cache (SM partition):
    a request stays with its pair and no bytes move."""

    bytes_per_token: float
    bandwidth_bytes_s: float
    latency_s: float
    paired: bool = False


PAIRED = KvTransfer(bytes_per_token=0.0, bandwidth_bytes_s=math.inf, latency_s=0.0, paired=True)


def _check_fits(drawn: DrawnRequests, config: SchedulerConfig, role: Role) -> None:
    """Every request must be able to run alone: the KV cache holds its longest context (input + output - 1
    tokens; input + output reserved under GUARANTEED_NO_EVICT; a prefill instance: the prompt), less the
    admission watermark."""
    longest = int((drawn.input_len if role is Role.prefill else drawn.input_len + drawn.output_len).max())
    held = longest if config.reserves_full_sequence or role is Role.prefill else longest - 1
    usable = config.total_blocks - config.watermark_blocks
    if -(-held // config.block_size_tokens) > usable:
        where = "one instance" if role is Role.serve else f"one {role.value} instance"
        raise PlannerError(
            f"a request of {longest} tokens needs more KV cache than the {config.kv_capacity_tokens} tokens "
            f"{where} holds per virtual engine: shorten it or give the instance more memory (raise TP/PP)"
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
    count = deployment.replicas if replicas is None else replicas
    pool = SimPool(deployment, count, Role.serve, policy or Policy())
    return simulate_pools([pool], stream, routing=routing, slo=slo, seed=seed)


def _planner(config: SchedulerConfig, role: Role) -> Planner:
    if role is Role.decode:
        return plan_decode_pool
    if config.scheduler is Scheduler.throttled:
        return plan_throttled
    if config.scheduler is Scheduler.temporal:
        return plan_temporal
    return plan_prefill_first if config.scheduler is Scheduler.prefill_first else plan_chunked


def simulate_pools(
    pools: Sequence[SimPool],
    stream: RequestStream,
    kv_transfer: KvTransfer | None = None,
    routing: Routing = Routing.round_robin,
    slo: Slo | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> SimResult:
    """Simulate `stream` on one serving pool, or on a prefill pool and a decode pool joined by `kv_transfer`.
    Arrivals are spread over the replicas of the entry pool (serve or prefill) by `routing`. `progress(done,
    total)` hears of finished requests, every 1% of them."""
    roles = [pool.role for pool in pools]
    if roles not in ([Role.serve], [Role.prefill, Role.decode]):
        raise PlannerError(f"pools must be one serve pool or a prefill and a decode pool, got {roles}", "pools")
    disaggregated = roles[0] is Role.prefill
    if disaggregated and kv_transfer is None:
        raise PlannerError("a prefill and a decode pool need a KV transfer between them", "kv_transfer")
    for pool in pools:
        if pool.count < 1:
            raise PlannerError(f"replicas must be at least 1, got {pool.count}", "replicas")
    drawn = draw_requests(stream, seed)
    total = len(drawn.input_len)
    ledger = Ledger(
        input_len=drawn.input_len,
        output_len=drawn.output_len,
        counted=np.arange(total) >= stream.warmup_requests,
        arrival_s=drawn.arrival_s.copy(),
    )
    longest = int((drawn.input_len + drawn.output_len).max())
    groups: list[list[list[Instance]]] = []  # per pool, per replica, its virtual engines
    instances: list[Instance] = []
    planners: list[Planner] = []
    configs: list[SchedulerConfig] = []

    def prefill_timer(plan: Resharding) -> IterationTimer:
        return IterationTimer(plan.prefill, 1, longest, per_stage=plan.prefill.pp_size > 1)

    def decode_timer(plan: Resharding) -> IterationTimer:
        decode = pools[0].deployment
        if decode.pp_size > 1:
            return MicroBatchedTimer(decode, plan.decode_batch, longest)
        return IterationTimer(decode, plan.decode_batch, longest)

    paired = kv_transfer is not None and kv_transfer.paired
    if paired and (pools[0].count != pools[-1].count or any(p.deployment.pp_size > 1 for p in pools)):
        raise PlannerError("paired prefill and decode workers need as many of each, with PP 1", "kv_transfer")
    pair_kv: list[KvBlocks] = []  # per pair of workers, their one KV cache
    contended_timers: dict[int, IterationTimer] = {}  # decode workers: their step while the partner runs
    for pool in pools:
        config = resolve_scheduler(pool.deployment, pool.policy, pool.role)
        _check_fits(drawn, config, pool.role)
        if pool.resharding is not None:  # a phase holds as many requests as the KV cache (a block each at least)
            config = dataclasses.replace(config, max_batch_size=min(config.total_blocks, total))
        elif config.scheduler is Scheduler.resharding:
            raise PlannerError("the phase re-sharding scheduler needs its layouts (SimPool.resharding)", "policy")
        if paired and pool.contended is not None:  # one step at a time: its price follows its partner's state
            config = dataclasses.replace(config, max_run_steps=1)
        configs.append(config)
        pp = pool.deployment.pp_size if pool.resharding is None else 1
        timer = IterationTimer(pool.deployment, config.max_batch_size, longest, per_stage=pp > 1)
        contended = IterationTimer(pool.contended, config.max_batch_size, longest) if pool.contended else None
        replicas = []
        for replica in range(pool.count):
            clock = StageClock(pp) if pp > 1 else None
            kv = KvBlocks(config.total_blocks) if config.shared else None
            if paired:
                if pool.role is Role.prefill:
                    pair_kv.append(KvBlocks(config.total_blocks))
                elif config.total_blocks != pair_kv[replica].total:
                    raise PlannerError(
                        "paired prefill and decode workers share one KV cache: give both pools the same capacity",
                        "kv_transfer",
                    )
                kv = pair_kv[replica]
                if contended:
                    contended_timers[len(instances)] = contended
            queue = WaitingQueue(ledger) if config.shared else None
            engines = [
                Instance(len(instances) + v, config, ledger, timer, pool.role, replica, clock, kv, queue)
                for v in range(pp)
            ]
            for engine in engines:
                engine.keeps_kv = paired and pool.role is Role.prefill
            if config.shared:
                join_siblings(engines, PhaseState())
            instances += engines
            if pool.resharding is not None:
                plan = pool.resharding
                planners.append(ReshardingScheduler(plan, prefill_timer(plan), decode_timer(plan)))
            else:
                planners += [_planner(config, pool.role)] * pp
            replicas.append(engines)
        groups.append(replicas)
    rotation = pools[0].policy.rotation
    macros = None
    if rotation is not None:
        if pools[0].count % rotation.size or disaggregated:
            raise PlannerError(
                f"macro instances group whole serving instances: {pools[0].count} instances do not form macros "
                f"of {rotation.size}",
                "rotation",
            )
        size = rotation.size
        macros = [Macro(m, groups[0][m * size : (m + 1) * size], rotation) for m in range(pools[0].count // size)]
    closed = stream.arrival is Arrival.closed_loop
    # A run may carry on past a finish only when no one reacts to that finish before the run ends: an open
    # stream routed round-robin to one pool (a closed loop re-issues at the finish; least-loaded routing, of
    # arrivals or of KV to decode instances, and a macro's pointer read the load).
    drain = not closed and routing is Routing.round_robin and not disaggregated and macros is None
    link_free_s = np.zeros(pools[0].count)  # per prefill instance

    heap: list[tuple[float, int, int, int, int]] = []  # (time, kind, sequence, target, version)
    sequence = itertools.count()
    issued = min(stream.clients or 0, total) if closed else 0
    for req in range(issued):
        heapq.heappush(heap, (0.0, ARRIVAL, next(sequence), req, 0))
    open_times = ledger.arrival_s if not closed else np.zeros(0)
    next_open = 0
    routed = 0

    def route(req: int) -> Instance:
        nonlocal routed
        entry = groups[0]
        routed += 1
        if macros is not None:
            if routing is Routing.round_robin:
                macro = macros[(routed - 1) % len(macros)]
            else:
                macro = min(macros, key=lambda m: (sum(load(r) for r in m.instances), m.index))
            return macro.target(req, ledger.arrival_s[req])
        if routing is Routing.round_robin:
            replica = entry[(routed - 1) % len(entry)]
        else:
            replica = min(entry, key=lambda r: (load(r), r[0].index))
        return least_loaded(replica)

    def load(engines: list[Instance]) -> int:
        """Requests waiting or running on an instance's virtual engines."""
        return sum(len(engine.waiting) + engine.num_used for engine in engines)

    def wake_idle(engines: list[Instance], time_s: float) -> None:
        for engine in engines:
            if engine.run is None and not engine.wake_pending:
                engine.wake_pending = True
                heapq.heappush(heap, (time_s, WAKE, next(sequence), engine.index, 0))

    def enqueue(instance: Instance, req: int, time_s: float) -> None:
        instance.waiting.append(req)
        instance.record(time_s)
        run = instance.run
        if run is None or len(instance.siblings) > 1:
            wake_idle(instance.siblings, time_s)
        elif len(instance.waiting) == 1 and instance.num_used < instance.config.max_batch_size:
            _cut(instance, run, time_s)

    def _cut(instance: Instance, run: Run, time_s: float) -> None:
        """End the run with the iteration in progress at time_s, so the next one can take the arrival."""
        last = int(np.searchsorted(run.ends_s, time_s, side="left"))
        if last < len(run.ends_s) - 1:
            run.ends_s = run.ends_s[: last + 1]
            instance.version += 1
            heapq.heappush(heap, (float(run.ends_s[-1]), RUN_END, next(sequence), instance.index, instance.version))

    def start(instance: Instance, time_s: float) -> None:
        contended = contended_timers.get(instance.index)
        if contended is not None:  # the decode worker's step: bandwidth shared while its prefill worker runs
            alone = timers.setdefault(instance.index, instance.timer)
            instance.timer = contended if groups[0][instance.replica][0].run is not None else alone
        run = planners[instance.index](instance, time_s, not drain)
        instance.record(time_s)
        instance.run = run
        if run is None:
            return
        end_s = float(run.ends_s[-1])
        if instance.stages is not None:  # one micro-batch through the stages (planner.sim.pipeline)
            step_s = end_s - time_s
            later_s = step_s - instance.timer.overhead_s(run.seqs)
            ready_s = time_s
            streams = instance.config.scheduler is Scheduler.temporal
            if streams and len(run.decode_slots):  # a streamed prompt's first token may not have left the pipeline
                ready_s = max(time_s, float(np.maximum.reduce(instance.last_token_s[run.decode_slots])))
            first_s, last_s = instance.stages.pass_through(ready_s, step_s, later_s)
            run.ends_s, run.busy_s, end_s = np.array([last_s]), step_s, last_s
            if streams and run.phase is Phase.prefill:
                run.free_s = first_s  # prompt micro-batches stream (planner.sim.pipeline)
        if run.free_s is not None:
            end_s = run.free_s
        instance.version += 1
        heapq.heappush(heap, (end_s, RUN_END, next(sequence), instance.index, instance.version))

    def transfer(instance: Instance, req: int, time_s: float) -> None:
        """The request's prompt KV leaves `instance` over its link, after the transfers queued before it."""
        assert kv_transfer is not None
        if kv_transfer.paired:
            heapq.heappush(heap, (time_s, KV_ARRIVAL, next(sequence), req, 0))
            return
        busy_s = float(ledger.input_len[req] + ledger.generated[req] - 1) * kv_transfer.bytes_per_token
        start_s = max(time_s, float(link_free_s[instance.replica]))
        link_free_s[instance.replica] = start_s + busy_s / kv_transfer.bandwidth_bytes_s
        done_s = float(link_free_s[instance.replica]) + kv_transfer.latency_s
        heapq.heappush(heap, (done_s, KV_ARRIVAL, next(sequence), req, 0))

    done, next_report = 0, max(total // 100, 1)  # finished requests, and when to report them next
    decoders = [engine for replica in groups[-1] for engine in replica]
    timers: dict[int, IterationTimer] = {}  # decode workers with a contended timer: their own
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
            ledger.arrival_s[target] = time_s
            instance = route(target)
            ledger.replica[target] = instance.replica
            enqueue(instance, target, time_s)
            continue
        if kind == KV_ARRIVAL:
            ledger.kv_ready[target] = True
            enqueue(groups[-1][ledger.replica[target]][0] if paired else least_loaded(decoders), target, time_s)
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
        if run.free_s is None and time_s < float(run.ends_s[-1]):  # a scheduler bug, not bad input
            raise RuntimeError(f"a run ending at {run.ends_s[-1]} s was committed at {time_s} s")
        finished = instance.commit(run, len(run.ends_s))
        if instance.kv.free < 0:  # a scheduler bug, not bad input
            raise RuntimeError(f"instance {instance.index} holds more KV blocks than its cache has")
        instance.run = None
        if progress is not None and finished:
            done += len(finished)
            if done >= next_report or done == total:
                progress(done, total)
                next_report = done + max(total // 100, 1)
        for req in instance.handed:
            transfer(instance, req, time_s)
        instance.handed.clear()
        if closed:
            for req in finished:  # its client sends the next request at once
                if issued < total:
                    heapq.heappush(heap, (float(ledger.finish_s[req]), ARRIVAL, next(sequence), issued, 0))
                    issued += 1
        # itself, and virtual engines a shared scheduler left idle: started now when nothing else is due at this
        # instant (their wake-ups would be the next events, in this order), else woken after what is due
        if (not heap or heap[0][0] > time_s) and (next_open == len(open_times) or open_times[next_open] > time_s):
            for engine in instance.siblings:
                if engine.run is None and not engine.wake_pending:
                    start(engine, time_s)
        else:
            wake_idle(instance.siblings, time_s)
        if paired:  # the blocks it freed may be what its partner in the KV cache waits for
            wake_idle(groups[1 if instance.role is Role.prefill else 0][instance.replica], time_s)

    if np.isnan(ledger.finish_s).any():  # a scheduler that stalls with work left is a bug, not bad input
        raise RuntimeError(f"{int(np.isnan(ledger.finish_s).sum())} requests never finished")
    scheduler = configs[0].scheduler.value
    replica_count = sum(p.count for p in pools)
    if paired:
        scheduler = f"SM partition: a prefill and a decode worker per instance, {scheduler}"
        replica_count = pools[0].count
    elif disaggregated:
        scheduler = f"disaggregated: {pools[0].count} prefill + {pools[1].count} decode instances, {scheduler}"
    virtual = len(groups[-1][0])  # per replica: its virtual engines' shares, or one shared cache
    kv_tokens = configs[-1].kv_capacity_tokens * (1 if configs[-1].shared else virtual)
    samples = [engine.samples for engine in instances]
    return _summarize(ledger, samples, stream, scheduler, kv_tokens, replica_count, routing, slo)


def _summarize(
    ledger: Ledger,
    samples: list[list[tuple[float, int, int]]],
    stream: RequestStream,
    scheduler: str,
    kv_capacity_tokens: int,
    replicas: int,
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
    itl_values, itl_weights = ledger.itl()
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
        scheduler=scheduler,
        stream=stream.label,
        replicas=replicas,
        routing=routing.value,
        kv_capacity_tokens=kv_capacity_tokens,
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
            reshard_s=ledger.busy_s[Phase.reshard],
        ),
        iterations=ledger.iterations,
        preemptions=int(ledger.preemptions.sum()),
        queue=sample_queue(samples, float(np.nanmax(ledger.finish_s))),
        requests=records,
    )
