"""Plain rows (label, value) for the human-readable output of each command; planner.cli renders them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.specs.hardware import GpuSpec
from planner.specs.kernels import KernelProfile
from planner.specs.model import ModelSpec, active_params, total_params

if TYPE_CHECKING:
    from planner.estimation import Estimate


def _ms(seconds: float | None) -> str:
    return "unbounded (over capacity)" if seconds is None else f"{seconds * 1e3:,.1f} ms"


def estimate_rows(est: Estimate) -> list[tuple[str, str]]:
    """The numbers of an Estimate, formatted for reading."""
    scenario = est.scenario.value
    if est.concurrency is not None:
        scenario += f" (C = {est.concurrency:g})"
    if est.rate_req_s is not None:
        scenario += f" ({est.rate_req_s:g} req/s, Poisson)"
    if est.num_requests is not None:
        scenario += f" ({est.num_requests} requests queued)"
    if est.scenario.value == "static-batch":
        scenario += f" (B = {est.batch_size:g})"
    memory = ", ".join(f"{part} {gib:.1f}" for part, gib in est.memory_gib.items())
    rows = [
        ("model", f"{est.model_name} ({est.model})"),
        ("GPUs", f"{est.num_gpus} x {est.gpu_name} in {est.num_nodes} node(s), network {est.network}"),
        ("layout", f"TP {est.tp} x PP {est.pp}, {est.replicas} replica(s)"),
        ("precision", f"weights {est.dtype}, KV cache {est.kv_dtype}"),
        ("engine profile", f"{est.engine} (kernel constants {est.kernel_basis})"),
        ("request", f"{est.input_len} input + {est.output_len} output tokens"),
        ("scenario", scenario),
        (
            "method",
            est.method
            + (
                " (discrete-event simulation; formulas: TTFT "
                + _ms((est.analytic or {}).get("ttft_s"))
                + ", TPOT "
                + _ms((est.analytic or {}).get("tpot_s"))
                + ")"
                if est.analytic
                else ""
            ),
        ),
        ("output throughput", f"{est.output_throughput_tok_s:,.0f} tok/s"),
        ("request throughput", f"{est.request_throughput_req_s:,.3f} req/s"),
        ("TTFT (mean)", _ms(est.ttft_s) + _tail(est.ttft_p90_s, est.ttft_p99_s)),
        ("TPOT (mean)", _ms(est.tpot_s) + _tail(est.tpot_p90_s, est.tpot_p99_s)),
        ("decode batch per replica", f"{est.batch_size:,.1f}"),
        ("KV capacity per replica", f"{est.kv_capacity_tokens:,} tokens"),
        ("prefill of one request", _ms(est.prefill_time_s)),
        ("decode step at that batch", _ms(est.decode_step_time_s)),
        ("memory per GPU (GiB)", memory),
        ("bottleneck", est.bottleneck),
        ("expected error", _expected(est)),
    ]
    if est.latency_s is not None:
        rows.insert(rows.index(("TTFT (mean)", _ms(est.ttft_s))), ("batch latency", _ms(est.latency_s)))
        rows.insert(
            rows.index(("request throughput", f"{est.request_throughput_req_s:,.3f} req/s")),
            ("total throughput", f"{est.total_throughput_tok_s or 0:,.0f} tok/s (input + output)"),
        )
    return rows


def _tail(p90_s: float | None, p99_s: float | None) -> str:
    return "" if p90_s is None or p99_s is None else f", p90 {_ms(p90_s)}, p99 {_ms(p99_s)}"


def _expected(est: Estimate) -> str:
    if est.expected_error_pct is None:
        return est.calibration_basis
    return f"about {est.expected_error_pct:.0f}% ({est.calibration_basis})"


def gpu_rows(gpu: GpuSpec) -> list[tuple[str, str]]:
    tflops = gpu.dense_tflops
    rates = ", ".join(f"{k} {v:g}" for k, v in tflops.model_dump().items() if v is not None)
    link = gpu.interconnect
    peers = f", groups of {link.max_peers}" if link.max_peers else ""
    p2p = "" if not link.kind.is_pcie else (", peer-to-peer" if link.p2p else ", no peer-to-peer")
    return [
        ("id", gpu.id),
        ("name", gpu.name),
        ("aliases", ", ".join(gpu.aliases) or "-"),
        ("architecture", f"{gpu.architecture.value}, {gpu.form_factor}"),
        ("memory", f"{gpu.memory_gib:g} GiB at {gpu.memory_bw_gb_s:g} GB/s"),
        ("dense TFLOPS", rates),
        ("SMs", str(gpu.sm_count or "-")),
        ("power", f"{gpu.tdp_w:g} W" if gpu.tdp_w else "-"),
        ("GPU link", f"{link.kind.value}, {link.bw_gb_s:g} GB/s per direction{peers}{p2p}"),
        ("host link", f"{gpu.host_link.kind.value}, {gpu.host_link.bw_gb_s:g} GB/s per direction"),
        ("GPUs per node", str(gpu.gpus_per_node)),
        ("source", gpu.source),
        ("notes", gpu.notes or "-"),
    ]


def kernel_rows(profile: KernelProfile) -> list[tuple[str, str]]:
    """The main kernel constants of one GPU, one line per op kind and format."""
    rows = [("kernel basis", profile.basis_label)]
    for fmt, g in profile.gemm.items():
        rows.append(
            (
                f"GEMM {fmt}",
                f"compute {g.compute_eff:.0%} (m_half {g.m_half:.0f}), memory {g.memory_eff:.0%}, "
                f"fixed {g.fixed_s * 1e6:.1f} us",
            )
        )
    for kv, d in profile.decode_attention.items():
        rows.append(
            (
                f"decode attention KV {kv}",
                f"bandwidth {d.kv_bw_eff:.0%}, {d.per_seq_s * 1e9:.0f} ns per sequence, fixed {d.fixed_s * 1e6:.1f} us",
            )
        )
    for dtype, p in profile.prefill_attention.items():
        rows.append(
            (
                f"prefill attention {dtype}",
                f"compute {p.compute_eff:.0%} (s_half {p.s_half:.0f}), fixed {p.fixed_s * 1e6:.1f} us",
            )
        )
    e = profile.elementwise
    rows.append(("elementwise", f"bandwidth {e.bw_eff:.0%}, fixed {e.fixed_s * 1e6:.1f} us"))
    for impl, a in profile.allreduce.items():
        rows.append(
            (
                f"all-reduce {impl.value}",
                f"{a.latency_s * 1e6:.1f} us + {a.latency_per_peer_s * 1e6:.2f} us per peer, "
                f"bus bandwidth {a.bus_bw_eff:.0%} of the link",
            )
        )
    errors = ", ".join(f"{k} {v:.1f}%" for k, v in profile.fit_median_abs_pct_error.items())
    rows.append(("kernel fit MdAPE", errors or "-"))
    rows.append(("kernel source", profile.source))
    return rows


def model_rows(model: ModelSpec) -> list[tuple[str, str]]:
    total = total_params(model)
    rows = [
        ("id", model.id),
        ("name", model.name),
        ("aliases", ", ".join(model.aliases) or "-"),
        ("type", model.model_type + (" (MoE)" if model.is_moe else "")),
        ("parameters", f"{total / 1e9:.2f} B (published {model.published_params_b or '-'} B)"),
        ("layers x hidden", f"{model.num_hidden_layers} x {model.hidden_size}"),
        (
            "attention",
            f"{model.num_attention_heads} heads, {model.num_key_value_heads} KV heads, head_dim {model.head_dim}",
        ),
        ("MLP width", str(model.intermediate_size)),
        ("vocabulary", str(model.vocab_size)),
        ("context", str(model.max_position_embeddings)),
    ]
    if model.is_moe:
        rows.insert(5, ("active parameters", f"{active_params(model) / 1e9:.2f} B"))
        rows.append(("experts", f"{model.num_experts}, {model.num_experts_per_tok} per token"))
    rows.append(("source", model.source or "-"))
    return rows
