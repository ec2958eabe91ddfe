"""Rows for the human-readable output of `tdplan recommend`; planner.cli renders them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.recommendation import Recommendation

if TYPE_CHECKING:
    from planner.comparison import Comparison


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.1f} ms"


def instance_rows(rec: Recommendation) -> list[list[str]]:
    """One row per pool of the plan: strategy, role, layout, count, GPUs and nodes, knobs, rates."""
    rows = []
    for p in rec.plan.instances:
        nodes = ",".join(str(n) for n in p.nodes)
        knobs = " ".join(f"{k}={v:g}" for k, v in p.knobs.items()) or "-"
        rows.append(
            [
                p.strategy,
                p.role,
                f"TP{p.tp} PP{p.pp}",
                str(p.count),
                f"{p.gpus} x {p.gpu} (node {nodes})",
                knobs,
                f"{p.capacity_req_s:.3g}",
                f"{p.slo_rate_req_s:.3g}" if rec.slo is not None else "-",
            ]
        )
    return rows


INSTANCE_HEADER = ["strategy", "role", "layout", "count", "GPUs", "knobs", "req/s offline each", "req/s in SLO each"]


def predicted_rows(rec: Recommendation) -> list[tuple[str, str]]:
    """The plan's predicted figures."""
    plan, pred = rec.plan, rec.plan.predicted
    memory = plan.instances[0].memory_gib
    rows = [
        (
            "objective",
            plan.objective
            + (
                f" (SLO TTFT {rec.slo.ttft_s:g} s, TPOT {rec.slo.tpot_s:g} s at {rec.slo.attainment:.0%})"
                if rec.slo
                else ""
            ),
        ),
        ("workload", rec.workload),
        ("GPUs used", f"{plan.gpus_used} of {plan.gpus_available}"),
        ("output throughput", f"{pred.output_throughput_tok_s:,.0f} tok/s ({pred.request_throughput_req_s:.3g} req/s)"),
        ("offline capacity", f"{pred.capacity_req_s:.3g} req/s"),
        ("goodput", "-" if pred.goodput_req_s is None else f"{pred.goodput_req_s:.3g} req/s"),
        (
            f"TTFT at {pred.latency_at_req_s:.3g} req/s",
            f"mean {_ms(pred.ttft_s)}, p90 {_ms(pred.ttft_p90_s)}, p99 {_ms(pred.ttft_p99_s)}",
        ),
        (
            f"TPOT at {pred.latency_at_req_s:.3g} req/s",
            f"mean {_ms(pred.tpot_s)}, p90 {_ms(pred.tpot_p90_s)}, p99 {_ms(pred.tpot_p99_s)}",
        ),
        ("memory per GPU (GiB)", ", ".join(f"{k} {v:.1f}" for k, v in memory.items())),
        (
            "expected error",
            plan.calibration_basis
            if plan.expected_error_pct is None
            else f"about {plan.expected_error_pct:.0f}% ({plan.calibration_basis})",
        ),
    ]
    if plan.prefill_decode_ratio:
        rows.insert(3, ("prefill:decode", plan.prefill_decode_ratio))
    if plan.cost_usd_per_h is not None:
        rows.insert(3, ("cost", f"${plan.cost_usd_per_h:,.2f}/h"))
    if pred.slo_attainment is not None:
        rows.append(("SLO attainment", f"{pred.slo_attainment:.1%}"))
    return rows


def alternative_rows(rec: Recommendation) -> list[list[str]]:
    rows = []
    for a in rec.alternatives:
        if not a.feasible:
            rows.append([a.strategy, "-", "-", "-", a.reason or "infeasible"])
            continue
        margin = "-" if a.margin_pct is None else f"{a.margin_pct:+.0f}%"
        rows.append([a.strategy, a.summary, f"{a.output_throughput_tok_s:,.0f}", str(a.gpus_used), margin])
    return rows


ALTERNATIVE_HEADER = ["strategy", "its best plan", "tok/s", "GPUs", "behind by"]


VERIFY_HEADER = ["strategy", "req/s", "TTFT predicted", "TTFT simulated", "TPOT predicted", "TPOT simulated",
                 "attainment simulated", "verdict"]  # fmt: skip


def verification_rows(rec: Recommendation) -> list[list[str]]:
    return [
        [
            v.strategy,
            f"{v.rate_req_s:.3g}",
            _ms(v.predicted_ttft_s),
            _ms(v.simulated_ttft_s),
            _ms(v.predicted_tpot_s),
            _ms(v.simulated_tpot_s),
            "-" if v.simulated_attainment is None else f"{v.simulated_attainment:.1%}",
            v.reason,
        ]
        for v in rec.verification
    ]


COMPARISON_HEADER = ["strategy", "its best plan", "tok/s", "goodput req/s", "TTFT p90", "TPOT p90", "behind by"]


def comparison_rows(result: Comparison) -> list[list[str]]:
    """One row per strategy: its best plan and its predicted figures."""
    rows = []
    for entry in result.per_strategy:
        if entry.plan is None:
            rows.append([entry.strategy, "-", "-", "-", "-", "-", entry.reason or "infeasible"])
            continue
        plan, pred = entry.plan, entry.plan.predicted
        layout = ", ".join(f"{i.count} x {i.role} TP{i.tp} PP{i.pp}" for i in plan.instances)
        rows.append(
            [
                entry.strategy,
                layout,
                f"{pred.output_throughput_tok_s:,.0f}",
                "-" if pred.goodput_req_s is None else f"{pred.goodput_req_s:.3g}",
                _ms(pred.ttft_p90_s),
                _ms(pred.tpot_p90_s),
                "-" if entry.margin_pct is None else f"{entry.margin_pct:+.0f}%",
            ]
        )
    return rows


CONFIG_HEADER = ["type", "GPU", "req/s offline each", "req/s in SLO each"]


def config_rows(result: Comparison) -> list[list[str]]:
    """Every instance type the planner tabulated."""
    return [
        [
            c.label,
            c.gpu,
            " / ".join(f"{p['capacity_req_s']:.3g}" for p in c.pools),
            " / ".join(f"{p['slo_rate_req_s']:.3g}" for p in c.pools),
        ]
        for c in result.configs
    ]
