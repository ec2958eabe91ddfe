"""What a simulation reports: throughput, latency distributions, SLO attainment, busy time per phase, the
queue over time, and one record per request (writable as CSV).

Definitions (as vLLM's benchmark_serving reports them):
- TTFT: first token - arrival. E2E: finish - arrival.
- TPOT: (finish - first token) / (output_len - 1), per request with more than one output token.
- ITL: every gap between two consecutive tokens of a request, pooled over all tokens (a preempted request's
  recomputed token counts the whole gap since its previous token).
- Throughput: tokens (or requests) of the counted requests over the span from the first counted arrival to
  the last counted finish. Warm-up requests (closed loop) are simulated but appear in no statistic.
Percentiles of per-request figures interpolate linearly (numpy's default); ITL percentiles are the smallest
gap at which the cumulative share of tokens reaches the percentile.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from planner.specs.hardware import Frozen

FloatArray = NDArray[np.float64]


class LatencyStats(Frozen):
    """Seconds."""

    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values_s: FloatArray) -> LatencyStats:
        if not len(values_s):
            return cls(mean=0.0, p50=0.0, p90=0.0, p99=0.0)
        p50, p90, p99 = np.percentile(values_s, [50, 90, 99])
        return cls(mean=float(np.mean(values_s)), p50=float(p50), p90=float(p90), p99=float(p99))

    @classmethod
    def weighted(cls, values_s: FloatArray, weights: NDArray[np.int64]) -> LatencyStats:
        """Statistics of `values_s[i]` repeated `weights[i]` times."""
        keep = weights > 0
        values_s, weights = values_s[keep], weights[keep]
        if not len(values_s):
            return cls(mean=0.0, p50=0.0, p90=0.0, p99=0.0)
        order = np.argsort(values_s, kind="stable")
        values_s, cumulative = values_s[order], np.cumsum(weights[order])
        total = cumulative[-1]
        at = np.searchsorted(cumulative, np.array([0.5, 0.9, 0.99]) * total, side="left")
        p50, p90, p99 = values_s[np.minimum(at, len(values_s) - 1)]
        return cls(mean=float(values_s @ weights[order] / total), p50=float(p50), p90=float(p90), p99=float(p99))


class Slo(Frozen):
    """Latency targets a request must meet to count as good (either may be left out)."""

    ttft_s: float | None = Field(default=None, gt=0)
    tpot_s: float | None = Field(default=None, gt=0)


class PhaseBusy(Frozen):
    """Iteration seconds summed over replicas, by what the iteration held."""

    prefill_s: float  # prompt tokens only
    decode_s: float  # decode steps only
    mixed_s: float  # decodes and prompt chunks together
    reshard_s: float = 0.0  # switching layouts (phase re-sharding)


class QueueSamples(Frozen):
    """Requests waiting for admission and running, summed over replicas, at evenly spaced times."""

    time_s: tuple[float, ...]
    waiting: tuple[int, ...]
    running: tuple[int, ...]


class RequestRecords(Frozen):
    """One entry per request in issue order (warm-up included, flagged): column i of every field is request i."""

    replica: tuple[int, ...]
    warmup: tuple[bool, ...]
    arrival_s: tuple[float, ...]
    first_token_s: tuple[float, ...]
    finish_s: tuple[float, ...]
    input_len: tuple[int, ...]
    output_len: tuple[int, ...]
    preemptions: tuple[int, ...]


class SimResult(BaseModel):
    """Outcome of one simulation. Times in seconds; throughputs summed over replicas."""

    model_config = ConfigDict(frozen=True)

    scheduler: str
    stream: str
    replicas: int
    routing: str
    kv_capacity_tokens: int  # per replica
    num_requests: int  # counted (warm-up excluded)
    output_tokens: int  # tokens the counted requests generated, as the iterations produced them
    duration_s: float
    output_throughput_tok_s: float
    request_throughput_req_s: float
    ttft_s: LatencyStats
    tpot_s: LatencyStats
    itl_s: LatencyStats
    e2e_s: LatencyStats
    slo_attainment: float | None  # share of counted requests meeting every given SLO
    busy: PhaseBusy
    iterations: int
    preemptions: int
    queue: QueueSamples
    requests: RequestRecords
    notes: tuple[str, ...] = ()  # what the run should be read with (planner.simulate: the inputs it resolved)


def write_requests_csv(result: SimResult, path: Path) -> None:
    """One row per request: request_id, then RequestRecords' fields as columns."""
    records = result.requests
    columns = tuple(RequestRecords.model_fields)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("request_id", *columns))
        for i, row in enumerate(zip(*(getattr(records, column) for column in columns), strict=True)):
            writer.writerow((i, *row))


def slo_attainment(ttft_s: FloatArray, tpot_s: FloatArray, slo: Slo | None) -> float | None:
    if slo is None or not len(ttft_s):
        return None
    good = np.ones(len(ttft_s), dtype=bool)
    if slo.ttft_s is not None:
        good &= ttft_s <= slo.ttft_s
    if slo.tpot_s is not None:
        good &= tpot_s <= slo.tpot_s
    return float(good.mean())


def sample_queue(samples: list[list[tuple[float, int, int]]], end_s: float, points: int = 200) -> QueueSamples:
    """Sum each replica's last recorded (waiting, running) at `points` evenly spaced times over [0, end_s]."""
    grid = np.linspace(0.0, end_s, points)
    waiting, running = np.zeros(points, dtype=np.int64), np.zeros(points, dtype=np.int64)
    for replica in samples:
        if not replica:
            continue
        table = np.array(replica, dtype=float)
        at = np.searchsorted(table[:, 0], grid, side="right") - 1
        seen = at >= 0
        waiting[seen] += table[at[seen], 1].astype(np.int64)
        running[seen] += table[at[seen], 2].astype(np.int64)
    return QueueSamples(time_s=tuple(grid.tolist()), waiting=tuple(waiting.tolist()), running=tuple(running.tolist()))
