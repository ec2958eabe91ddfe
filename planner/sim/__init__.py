"""Discrete-event simulation of serving engines: their schedulers run iteration by iteration on a request
stream, with iteration times from the compiled cost model (docs/simulator.md).

>>> from planner.sim import simulate, closed_loop
>>> result = simulate(deployment, closed_loop(clients=64, num_requests=1000, workload=Workload.fixed(1024, 256)))
"""

from planner.sim.policy import Policy, Routing, Scheduler
from planner.sim.result import LatencyStats, PhaseBusy, QueueSamples, RequestRecords, SimResult, Slo, write_requests_csv
from planner.sim.simulate import simulate
from planner.sim.streams import (
    Arrival,
    RequestStream,
    bursty,
    closed_loop,
    draw_requests,
    load_trace,
    offline,
    poisson,
    static_batch,
    trace_stream,
)

__all__ = [
    "Arrival",
    "LatencyStats",
    "PhaseBusy",
    "Policy",
    "QueueSamples",
    "RequestRecords",
    "RequestStream",
    "Routing",
    "Scheduler",
    "SimResult",
    "Slo",
    "bursty",
    "closed_loop",
    "draw_requests",
    "load_trace",
    "offline",
    "poisson",
    "simulate",
    "static_batch",
    "trace_stream",
    "write_requests_csv",
]
