"""Request streams for the simulator: when requests arrive and how long they are.

A `RequestStream` is a frozen description; `draw_requests` turns it into arrays with a seeded generator, so one
(stream, seed) pair always gives the same requests.

- closed loop: C clients start together at t = 0; each sends its next request the moment its previous one
  finishes (zero think time), as serving benchmarks run a fixed concurrency. The first `warmup_requests`
  requests issued are simulated but not counted.
- poisson: exponential inter-arrival times at `rate_req_s`, the first request at t = 0.
- bursty: gamma inter-arrival times with mean 1 / rate and coefficient of variation `cv` (shape 1 / cv^2);
  cv = 1 is Poisson, cv > 1 burstier.
- offline: every request queued at t = 0.
- static batch: B requests at t = 0 and no others.
- trace: a CSV of arrival_time_s, input_len, output_len (one request per row), or a trace shipped with tdplan
  by name (SHIPPED_TRACES: one hour of each of Azure's two LLM inference services in 2023, planner/data/workloads).

Lengths come from a Workload: fixed lengths, or drawn uniformly with replacement from its samples.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from planner.errors import PlannerError
from planner.specs.hardware import Frozen
from planner.specs.inputs import MAX_WORKLOAD_BYTES, read_text
from planner.specs.workload import Workload


class Arrival(str, Enum):
    closed_loop = "closed-loop"
    poisson = "poisson"
    bursty = "bursty"
    offline = "offline"
    static_batch = "static-batch"
    trace = "trace"


class RequestStream(Frozen):
    """What arrives at the deployment. Build one with the functions below rather than by hand."""

    arrival: Arrival
    num_requests: int = Field(ge=1)  # requests counted in the results (warm-up excluded)
    workload: Workload | None = None  # lengths; None for a trace, which carries its own
    clients: int | None = Field(default=None, ge=1)  # closed loop
    rate_req_s: float | None = Field(default=None, gt=0)  # poisson, bursty
    cv: float | None = Field(default=None, gt=0)  # bursty
    warmup_requests: int = Field(default=0, ge=0)  # closed loop: issued first, not counted
    trace_arrival_s: tuple[float, ...] = ()
    trace_input_lens: tuple[int, ...] = ()
    trace_output_lens: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> RequestStream:
        needs = {
            Arrival.closed_loop: self.clients is not None,
            Arrival.poisson: self.rate_req_s is not None,
            Arrival.bursty: self.rate_req_s is not None and self.cv is not None,
            Arrival.trace: len(self.trace_arrival_s) == self.num_requests,
        }
        if not needs.get(self.arrival, True):
            raise PlannerError(f"a {self.arrival.value} stream is missing its parameters")
        if self.arrival is not Arrival.trace and self.workload is None:
            raise PlannerError(f"a {self.arrival.value} stream needs a workload for its request lengths")
        if self.warmup_requests and self.arrival is not Arrival.closed_loop:
            raise PlannerError("warm-up requests apply to a closed loop only")
        return self

    @property
    def total_requests(self) -> int:
        """Requests simulated, warm-up included."""
        return self.num_requests + self.warmup_requests

    @property
    def label(self) -> str:
        if self.arrival is Arrival.closed_loop:
            params = f" ({self.clients} clients)"
        elif self.arrival is Arrival.poisson:
            params = f" ({self.rate_req_s:g} req/s)"
        elif self.arrival is Arrival.bursty:
            params = f" ({self.rate_req_s:g} req/s, cv {self.cv:g})"
        else:
            params = ""
        what = self.workload.name if self.workload else "trace lengths"
        return f"{self.arrival.value}{params}, {self.num_requests} requests of {what}"


def closed_loop(clients: int, num_requests: int, workload: Workload, warmup_requests: int = 0) -> RequestStream:
    """`clients` concurrent clients issuing `warmup_requests` + `num_requests` requests in all."""
    return RequestStream(
        arrival=Arrival.closed_loop,
        num_requests=num_requests,
        workload=workload,
        clients=clients,
        warmup_requests=warmup_requests,
    )


def poisson(rate_req_s: float, num_requests: int, workload: Workload) -> RequestStream:
    return RequestStream(arrival=Arrival.poisson, num_requests=num_requests, workload=workload, rate_req_s=rate_req_s)


def bursty(rate_req_s: float, cv: float, num_requests: int, workload: Workload) -> RequestStream:
    return RequestStream(
        arrival=Arrival.bursty, num_requests=num_requests, workload=workload, rate_req_s=rate_req_s, cv=cv
    )


def offline(num_requests: int, workload: Workload) -> RequestStream:
    return RequestStream(arrival=Arrival.offline, num_requests=num_requests, workload=workload)


def static_batch(batch_size: int, workload: Workload) -> RequestStream:
    return RequestStream(arrival=Arrival.static_batch, num_requests=batch_size, workload=workload)


SHIPPED_TRACES = ("azure-conv", "azure-code")  # in planner/data/workloads/traces.csv.gz


def trace_stream(trace: str | Path, requests: int | None = None) -> RequestStream:
    """A trace shipped with tdplan (a name of SHIPPED_TRACES) or a CSV file (load_trace); with `requests`, its
    first that many requests by arrival time."""
    name = str(trace).strip().lower()
    stream = _shipped_trace(name) if name in SHIPPED_TRACES else load_trace(Path(trace))
    if requests is None or requests == stream.num_requests:
        return stream
    if requests > stream.num_requests:
        raise PlannerError(
            f"the trace holds {stream.num_requests:,} requests: give --requests up to that, or leave it out to "
            "replay them all",
            "requests",
        )
    return stream.model_copy(
        update={
            "num_requests": requests,
            "trace_arrival_s": stream.trace_arrival_s[:requests],
            "trace_input_lens": stream.trace_input_lens[:requests],
            "trace_output_lens": stream.trace_output_lens[:requests],
        }
    )


@functools.cache
def _shipped_trace(name: str) -> RequestStream:
    """One of SHIPPED_TRACES, in arrival order (scripts/build_workload_data.py wrote them so)."""
    raw = resources.files("planner.data").joinpath("workloads").joinpath("traces.csv.gz").read_bytes()
    rows = [line.split(",") for line in gzip.decompress(raw).decode("utf-8").splitlines()[1:]]
    mine = [row for row in rows if row[0] == name]
    return RequestStream(
        arrival=Arrival.trace,
        num_requests=len(mine),
        trace_arrival_s=tuple(float(row[1]) for row in mine),
        trace_input_lens=tuple(int(row[2]) for row in mine),
        trace_output_lens=tuple(int(row[3]) for row in mine),
    )


def load_trace(path: Path) -> RequestStream:
    """Read a CSV with columns arrival_time_s, input_len, output_len (one request per row, any order)."""
    if not path.exists():
        raise PlannerError(
            f"no trace file at {path}: give a CSV of arrival_time_s,input_len,output_len or a shipped trace "
            f"({', '.join(SHIPPED_TRACES)})",
            "trace",
        )
    text = read_text(path, "trace", "trace CSV", MAX_WORKLOAD_BYTES)
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        arrivals = [float(row["arrival_time_s"]) for row in rows]
        inputs = [int(row["input_len"]) for row in rows]
        outputs = [int(row["output_len"]) for row in rows]
    except (KeyError, ValueError, TypeError):
        raise PlannerError(
            f"{path}: expected columns arrival_time_s, input_len, output_len in every row", "trace"
        ) from None
    if not rows or min(inputs) < 1 or min(outputs) < 1 or min(arrivals) < 0:
        raise PlannerError(f"{path}: needs at least one request, lengths of at least 1 and arrival times >= 0", "trace")
    order = np.argsort(arrivals, kind="stable")
    return RequestStream(
        arrival=Arrival.trace,
        num_requests=len(rows),
        trace_arrival_s=tuple(float(arrivals[i]) for i in order),
        trace_input_lens=tuple(inputs[i] for i in order),
        trace_output_lens=tuple(outputs[i] for i in order),
    )


@dataclass(frozen=True)
class DrawnRequests:
    """Request i: arrives at arrival_s[i] (NaN for a closed loop: it arrives when its client's previous request
    finishes), with input_len[i] prompt tokens and output_len[i] generated tokens."""

    arrival_s: NDArray[np.float64]
    input_len: NDArray[np.int64]
    output_len: NDArray[np.int64]


def draw_requests(stream: RequestStream, seed: int = 0) -> DrawnRequests:
    """The stream's requests, warm-up included, reproducibly drawn from `seed`."""
    rng = np.random.default_rng(seed)
    n = stream.total_requests
    if stream.arrival is Arrival.trace:
        return DrawnRequests(
            arrival_s=np.array(stream.trace_arrival_s, dtype=float),
            input_len=np.array(stream.trace_input_lens, dtype=np.int64),
            output_len=np.array(stream.trace_output_lens, dtype=np.int64),
        )
    assert stream.workload is not None  # checked by the validator
    samples = len(stream.workload.input_lens)
    pick = np.zeros(n, dtype=np.int64) if stream.workload.is_fixed else rng.integers(0, samples, size=n)
    inputs = np.asarray(stream.workload.input_lens, dtype=np.int64)[pick]
    outputs = np.asarray(stream.workload.output_lens, dtype=np.int64)[pick]
    if stream.arrival is Arrival.closed_loop:
        arrival_s = np.full(n, np.nan)
    elif stream.arrival is Arrival.poisson:
        assert stream.rate_req_s is not None
        arrival_s = _arrival_times(rng.exponential(1.0 / stream.rate_req_s, size=n))
    elif stream.arrival is Arrival.bursty:
        assert stream.rate_req_s is not None and stream.cv is not None
        shape = 1.0 / stream.cv**2  # gamma: mean = shape x scale, cv = 1 / sqrt(shape)
        arrival_s = _arrival_times(rng.gamma(shape, 1.0 / (stream.rate_req_s * shape), size=n))
    else:
        arrival_s = np.zeros(n)
    return DrawnRequests(arrival_s=arrival_s, input_len=inputs, output_len=outputs)


def _arrival_times(gaps_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cumulative arrival times with the first request at t = 0."""
    return np.concatenate([[0.0], np.cumsum(gaps_s[:-1])])
