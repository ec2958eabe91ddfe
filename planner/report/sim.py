"""Rows for the human-readable output of `tdplan simulate`; planner.cli renders them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planner.sim import LatencyStats, SimResult


def _stats(s: LatencyStats) -> str:
    return f"mean {s.mean * 1e3:,.1f} ms, p50 {s.p50 * 1e3:,.1f}, p90 {s.p90 * 1e3:,.1f}, p99 {s.p99 * 1e3:,.1f}"


def sim_rows(result: SimResult) -> list[tuple[str, str]]:
    """The figures of one simulation, formatted for reading."""
    busy = result.busy
    rows = [
        ("scheduler", f"{result.scheduler}, {result.replicas} replica(s), routing {result.routing}"),
        ("stream", f"{result.stream}, {result.num_requests} requests counted"),
        (
            "output throughput",
            f"{result.output_throughput_tok_s:,.0f} tok/s ({result.request_throughput_req_s:.3g} req/s)",
        ),
        ("TTFT", _stats(result.ttft_s)),
        ("TPOT", _stats(result.tpot_s)),
        ("inter-token latency", _stats(result.itl_s)),
        ("end to end", _stats(result.e2e_s)),
        (
            "busy (summed over replicas)",
            f"prefill {busy.prefill_s:.3g} s, decode {busy.decode_s:.3g} s, mixed {busy.mixed_s:.3g} s"
            + (f", re-sharding {busy.reshard_s:.3g} s" if busy.reshard_s else ""),
        ),
        ("iterations", f"{result.iterations:,} over {result.duration_s:.3g} s; preemptions {result.preemptions}"),
        ("KV capacity per replica", f"{result.kv_capacity_tokens:,} tokens"),
    ]
    if result.slo_attainment is not None:
        rows.append(("SLO attainment", f"{result.slo_attainment:.1%}"))
    return rows
