"""The figures of docs/cost-model.md, computed by the cost model itself.

Usage:
    python scripts/cost_breakdown.py                 print every block (Markdown)
    python scripts/cost_breakdown.py --block decode  print one block
    python scripts/cost_breakdown.py --write docs/cost-model.md
                                                     refresh the generated blocks of the page in place

The page holds each block between `<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`;
tests/test_cost_model_doc.py recomputes every block and compares it with the page, number by number within the
rounding shown, so the page cannot drift from the code.

Blocks:
    decode       one decode step of the worked example, per op (the reference path, planner.cost.compiled.op_cost)
    kernels      the kernel constants of the worked example's GPU that the step uses
    tp           the worked example at TP 4 and TP 8 (`tdplan estimate --batch-size 16`)
    facts        the engine facts the cost model reads (hardware/engines/*.yaml)
    engine       the fitted engine constants and their expected error (hardware/calibration/*.yaml)
    bases        where each catalog GPU's kernel constants come from (measured, derived, extrapolated)
    validation   the validation figures the page quotes (`tdplan validate`, leave-one-source-out)
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generated_blocks import with_blocks

from planner.cost.compiled import _format_key, _gemm, op_cost
from planner.cost.iteration import engine_overhead
from planner.cost.ops import BatchShape, OpKind, op_load, stage_ops
from planner.estimation import estimate
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.deployment import Deployment
from planner.specs.kernels import AllReduceImpl
from planner.specs.precision import Dtype, resolve_dtypes
from planner.strategies import continuous

# The worked example: Llama-3.1-70B, fp8 weights (fp8 KV cache: the TensorRT-LLM default with fp8 weights),
# 8 x H200 SXM, TensorRT-LLM profile, a static batch of 16 requests of 2048 + 256 tokens.
MODEL, GPUS, DTYPE, ENGINE = "llama-3.1-70b", "8xH200", "fp8", "trtllm"
BATCH, INPUT_LEN, OUTPUT_LEN = 16, 2048, 256
MEAN_CONTEXT = INPUT_LEN + OUTPUT_LEN / 2  # the static-batch decode step runs at the mean context
TP_SIZES = (4, 8)

LAW = {
    OpKind.gemm: "GEMM",
    OpKind.decode_attention: "decode attention",
    OpKind.prefill_attention: "prefill attention",
    OpKind.elementwise: "elementwise",
    OpKind.allreduce: "all-reduce",
    OpKind.p2p: "send",
}


def deployment(tp: int, catalog: Catalog | None = None) -> Deployment:
    """The worked example's deployment at tensor-parallel size `tp` (PP 1), resolved as `tdplan estimate` does."""
    catalog = catalog or load_catalog()
    engine = catalog.engine(ENGINE)
    weights, kv = resolve_dtypes(DTYPE, None, engine.fp8_kv_cache_with_fp8_weights)
    cluster = catalog.cluster(GPUS)
    return catalog.deployment(catalog.model(MODEL), cluster, tp, 1, weights, kv, engine)


@dataclass(frozen=True)
class OpRow:
    """One op of one decode step, times in seconds for the whole step (count included)."""

    name: str
    law: str
    count: float
    gflop: float  # per step, all repetitions
    mbytes: float  # per step, all repetitions (all-reduce: message per rank)
    fixed_s: float
    compute_s: float
    memory_s: float
    communication_s: float

    @property
    def total_s(self) -> float:
        return self.fixed_s + self.compute_s + self.memory_s + self.communication_s

    @property
    def bound(self) -> str:
        parts = {
            "overhead": self.fixed_s,
            "compute": self.compute_s,
            "memory": self.memory_s,
            "communication": self.communication_s,
        }
        return max(parts, key=lambda k: parts[k])


def decode_rows(d: Deployment) -> list[OpRow]:
    """Every op of one decode step of BATCH sequences at MEAN_CONTEXT (PP 1), through the reference path, then
    the engine's host-side overhead."""
    if d.pp_size != 1:
        raise ValueError("the breakdown covers PP 1 only")
    batch = BatchShape.decode(BATCH, MEAN_CONTEXT)
    rows = []
    for op in stage_ops(d):
        load = op_load(op, batch)
        if not load.runs:
            continue
        cost = op_cost(d, op, batch)
        rows.append(
            OpRow(
                name=op.name,
                law=LAW[op.kind],
                count=op.count,
                gflop=load.flops * op.count / 1e9,
                mbytes=load.bytes * op.count / 1e6,
                fixed_s=float(cost.overhead_s[0]),
                compute_s=float(cost.compute_s[0]),
                memory_s=float(cost.memory_s[0]),
                communication_s=float(cost.communication_s[0]),
            )
        )
    host = engine_overhead(d, batch.seqs)
    rows.append(OpRow("engine host work", "engine constants", 1, 0.0, 0.0, host.overhead_s, 0.0, 0.0, 0.0))
    return rows


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def render_decode(catalog: Catalog | None = None) -> str:
    d = deployment(8, catalog)
    rows = decode_rows(d)
    step_s = continuous.decode_step(d, BATCH, MEAN_CONTEXT).time_s
    lines = [
        "| op | law | per step | GFLOP | MB moved | fixed ms | compute ms | memory ms | comm ms | total ms | bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.law} | {r.count:g} | {r.gflop:.2f} | {r.mbytes:.1f} | {_ms(r.fixed_s)} | "
            f"{_ms(r.compute_s)} | {_ms(r.memory_s)} | {_ms(r.communication_s)} | {_ms(r.total_s)} | {r.bound} |"
        )
    total = OpRow(
        "total", "", 0, sum(r.gflop for r in rows), sum(r.mbytes for r in rows),
        sum(r.fixed_s for r in rows), sum(r.compute_s for r in rows), sum(r.memory_s for r in rows),
        sum(r.communication_s for r in rows),
    )  # fmt: skip
    lines.append(
        f"| **decode step** | | | {total.gflop:.2f} | {total.mbytes:.1f} | {_ms(total.fixed_s)} | "
        f"{_ms(total.compute_s)} | {_ms(total.memory_s)} | {_ms(total.communication_s)} | **{_ms(step_s)}** | "
        f"{total.bound} |"
    )
    kernel_fixed = sum(r.fixed_s for r in rows if r.law != "engine constants")
    host = rows[-1].fixed_s
    ar = d.kernels.allreduce.get(d.engine.allreduce) or d.kernels.allreduce[AllReduceImpl.nccl]
    allreduces = next(r for r in rows if r.law == "all-reduce")
    ar_latency_s = allreduces.count * (ar.latency_s + ar.latency_per_peer_s * (d.tp_size - 1))
    compute = (
        f"no op is compute bound at {BATCH} rows"
        if total.compute_s == 0
        else f"{_ms(total.compute_s)} ms compute-bound work"
    )
    lines += [
        "",
        f"Of the {_ms(step_s)} ms step, {_ms(kernel_fixed)} ms are kernel fixed latencies (the GPU-side floor of "
        f"each launch), {_ms(host)} ms the engine's host-side work, {_ms(total.memory_s)} ms memory traffic and "
        f"{_ms(total.communication_s)} ms all-reduces; {compute}. Of the all-reduce time, {_ms(ar_latency_s)} ms "
        f"is latency ({allreduces.count:g} x {(ar.latency_s + ar.latency_per_peer_s * (d.tp_size - 1)) * 1e6:.2f} "
        f"us) and {_ms(allreduces.communication_s - ar_latency_s)} ms transfer.",
    ]
    return "\n".join(lines)


def render_kernels(catalog: Catalog | None = None) -> str:
    """The constants of the example's GPU that its decode step uses (`tdplan hardware show h200-sxm`)."""
    d = deployment(8, catalog)
    gpu, k = d.cluster.gpu, d.kernels
    g = _gemm(d, d.dtype)
    lm = _gemm(d, Dtype.bf16)
    att = k.decode_attention[_format_key(dict(k.decode_attention), d.kv_dtype)]
    e = k.elementwise
    ar = k.allreduce.get(d.engine.allreduce) or k.allreduce[AllReduceImpl.nccl]
    us = 1e6
    lines = [
        "| kernel law | constants (`hardware/kernels/h200-sxm.yaml`, basis " + k.basis.value + ") | peak it divides |",
        "|---|---|---|",
        f"| GEMM fp8 (body) | compute_eff {g.compute_eff:.4g}, m_half {g.m_half:.4g} rows, memory_eff "
        f"{g.memory_eff:.4g}, fixed {g.fixed_s * us:.2f} us | fp8 {gpu.dense_tflops.fp8:g} TFLOPS, "
        f"{gpu.memory_bw_gb_s:g} GB/s |",
        f"| GEMM bf16 (LM head) | compute_eff {lm.compute_eff:.4g}, m_half {lm.m_half:.4g} rows, memory_eff "
        f"{lm.memory_eff:.4g}, fixed {lm.fixed_s * us:.2f} us | bf16 {gpu.dense_tflops.bf16:g} TFLOPS, "
        f"{gpu.memory_bw_gb_s:g} GB/s |",
        f"| decode attention, KV {d.kv_dtype.value} | kv_bw_eff {att.kv_bw_eff:.4g}, per_seq "
        f"{att.per_seq_s * 1e9:.1f} ns, fixed {att.fixed_s * us:.2f} us | {gpu.memory_bw_gb_s:g} GB/s |",
        f"| elementwise | bw_eff {e.bw_eff:.4g}, fixed {e.fixed_s * us:.2f} us per launch, "
        f"{d.engine.elementwise_kernels_per_layer} launches per layer ({d.engine.id}) | {gpu.memory_bw_gb_s:g} GB/s |",
        f"| all-reduce ({d.engine.allreduce.value}) | latency {ar.latency_s * us:.2f} us + "
        f"{ar.latency_per_peer_s * us:.3f} us per peer, bus_bw_eff {ar.bus_bw_eff:.4g} | "
        f"{gpu.interconnect.kind.value} {gpu.interconnect.bw_gb_s:g} GB/s per direction |",
    ]
    return "\n".join(lines)


def render_tp(catalog: Catalog | None = None) -> str:
    """The example at each TP size, as `tdplan estimate --batch-size` prints it, with the step split by bound."""
    catalog = catalog or load_catalog()
    lines = [
        "| TP | decode step ms | compute ms | memory ms | comm ms | overhead ms | bound | TTFT ms | batch latency s "
        "| output tok/s | output tok/s per GPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    throughput: dict[int, float] = {}
    for tp in TP_SIZES:
        est = estimate(MODEL, GPUS, tp=tp, dtype=DTYPE, engine=ENGINE, input_len=INPUT_LEN, output_len=OUTPUT_LEN,
                       batch_size=BATCH, catalog=catalog)  # fmt: skip
        step = continuous.decode_step(deployment(tp, catalog), BATCH, MEAN_CONTEXT)
        if abs(step.time_s - est.decode_step_time_s) > 1e-12:
            raise AssertionError("the decode step differs from what `tdplan estimate` prints")
        assert est.latency_s is not None and est.ttft_s is not None
        throughput[tp] = est.output_throughput_tok_s
        lines.append(
            f"| {tp} | {_ms(step.time_s)} | {_ms(step.compute_s)} | {_ms(step.memory_s)} | "
            f"{_ms(step.communication_s)} | {_ms(step.overhead_s)} | {est.bottleneck} | {est.ttft_s * 1e3:.1f} | "
            f"{est.latency_s:.3f} | {est.output_throughput_tok_s:.0f} | {est.output_throughput_tok_s / tp:.0f} |"
        )
    steps = {tp: continuous.decode_step(deployment(tp, catalog), BATCH, MEAN_CONTEXT) for tp in TP_SIZES}
    low, high = steps[min(TP_SIZES)], steps[max(TP_SIZES)]

    def change(part: str) -> str:
        a, b = getattr(low, part), getattr(high, part)
        return "stays" if abs(a - b) <= 1e-3 * max(a, b, 1e-12) else ("shrinks" if b < a else "grows")

    lines += [
        "",
        f"TP {max(TP_SIZES)} makes a decode step {low.time_s / high.time_s:.2f}x faster than TP {min(TP_SIZES)}, "
        f"on {max(TP_SIZES) // min(TP_SIZES)}x the GPUs: the memory part {change('memory_s')}, the fixed overhead "
        f"{change('overhead_s')} and the all-reduce time {change('communication_s')}.",
    ]
    per_gpu = {tp: tok_s / tp for tp, tok_s in throughput.items()}
    if per_gpu[max(TP_SIZES)] < per_gpu[min(TP_SIZES)]:
        lines[-1] += " Here more TP buys latency and costs output throughput per GPU."
    else:
        lines[-1] += " Here more TP buys latency without costing output throughput per GPU."
    return "\n".join(lines)


def render_facts(catalog: Catalog | None = None) -> str:
    """The engine facts the cost model reads (hardware/engines/*.yaml)."""
    catalog = catalog or load_catalog()
    fields = (
        ("mixed_batching", "prefill shares iterations with decodes"),
        ("max_batch_size", "sequences per iteration, at most"),
        ("max_num_tokens", "tokens per iteration, at most"),
        ("memory_utilization", "share of GPU memory for the engine"),
        ("kv_fraction_of_free", "that share applies to memory left after weights"),
        ("reserves_full_sequence", "KV reserved for input + output at admission"),
        ("runtime_reserve_gib", "GiB never used for KV"),
        ("allreduce", "TP all-reduce constants used"),
        ("elementwise_kernels_per_layer", "elementwise launches per layer"),
        ("fp8_kv_cache_with_fp8_weights", "fp8 weights imply an fp8 KV cache"),
    )
    engines = sorted(catalog.engines)
    lines = ["| fact | meaning | " + " | ".join(engines) + " |", "|---|---|" + "---|" * len(engines)]
    for name, meaning in fields:
        cells = []
        for engine_id in engines:
            value = getattr(catalog.engines[engine_id], name)
            cells.append(str(value.value if hasattr(value, "value") else value).lower())
        lines.append(f"| `{name}` | {meaning} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_engine(catalog: Catalog | None = None) -> str:
    """The engine constants as `tdplan calibrate --write` stored them, and the expected error per family."""
    catalog = catalog or load_catalog()
    lines = [
        "| engine | iteration_overhead_s | per_seq_overhead_s | fitted rows | in-sample MdAPE | "
        "expected error by family (held-out) |",
        "|---|---|---|---|---|---|",
    ]
    for engine_id in sorted(catalog.calibrations):
        p = catalog.calibrations[engine_id]
        c, u = p.constants, p.uncertainty
        families = ", ".join(f"{family} {pct:.1f}%" for family, pct in p.expected_error_pct.items())
        lines.append(
            f"| {engine_id} | {c.iteration_overhead_s * 1e3:.3f} ms ± {u['iteration_overhead_s'] * 1e3:.3f} | "
            f"{c.per_seq_overhead_s * 1e6:.1f} us ± {u['per_seq_overhead_s'] * 1e6:.1f} | {p.fitted_rows} | "
            f"{p.fitted_median_abs_pct_error:.1f}% | {families} |"
        )
    return "\n".join(lines)


def render_validation(catalog: Catalog | None = None) -> str:
    """The `tdplan validate` figures the page's limitations quote: held-out median |error| and bias."""
    from planner.validation.validate import RowResult, row_kind, validate_all

    catalog = catalog or load_catalog()
    results = validate_all(catalog).predicted
    Keep = Callable[[RowResult], bool]

    def stats(keep: Keep) -> tuple[int, float, float]:
        errors = [r.held_out_error_pct for r in results if keep(r)]
        return len(errors), statistics.median(abs(e) for e in errors), statistics.median(errors)

    def rows(kind: str, gpu: str | None = None, multi_gpu: bool | None = None) -> Keep:
        """Rows of one kind, optionally on one GPU and on one GPU only (False) or on several (True)."""

        def keep(r: RowResult) -> bool:
            several = r.row.tp * r.row.pp > 1
            return (
                row_kind(r.row) == kind
                and (gpu is None or r.row.gpu == gpu)
                and (multi_gpu is None or several == multi_gpu)
            )

        return keep

    groups: list[tuple[str, Keep]] = [
        ("offline throughput, all sources", rows("output_throughput_tok_s")),
        ("static-batch throughput, all sources", rows("static_batch_throughput")),
        ("static-batch latency (fitted on)", rows("batch_latency_s")),
        ("TTFT at batch 1 (fitted on)", rows("ttft_s")),
        ("offline throughput, L40S, 1 GPU", rows("output_throughput_tok_s", "l40s", False)),
        ("offline throughput, L40S, 2+ GPUs", rows("output_throughput_tok_s", "l40s", True)),
        ("TTFT at batch 1, L40S, 2+ GPUs", rows("ttft_s", "l40s", True)),
        ("offline throughput, H200, 2+ GPUs", rows("output_throughput_tok_s", "h200-sxm", True)),
    ]
    lines = ["| rows | count | held-out median abs error | held-out bias |", "|---|---|---|---|"]
    for label, keep in groups:
        n, mdape, bias = stats(keep)
        lines.append(f"| {label} | {n} | {mdape:.1f}% | {bias:+.1f}% |")
    # The expected error (hardware/calibration) is a median of |predicted time / measured time - 1|; the same
    # serving rows in the metric's own form (throughput for throughput rows), as `tdplan validate` counts them.
    lines += ["", "| engine, GPU family | serving rows | expected error (time form) | held-out median abs error "
              "(metric form) |", "|---|---|---|---|"]  # fmt: skip
    for engine_id in sorted(catalog.calibrations):
        for family, pct in catalog.calibrations[engine_id].expected_error_pct.items():
            if family == "all":
                continue
            errors = [
                abs(r.held_out_error_pct)
                for r in results
                if r.row.engine == engine_id
                and r.row.metric != "forward_time_s"
                and catalog.gpus[r.row.gpu].architecture.value == family
            ]
            lines.append(f"| {engine_id}, {family} | {len(errors)} | {pct:.1f}% | {statistics.median(errors):.1f}% |")
    return "\n".join(lines)


def render_bases(catalog: Catalog | None = None) -> str:
    """Where each catalog GPU's kernel constants come from (planner.specs.kernels.derive_kernel_profile)."""
    catalog = catalog or load_catalog()
    lines = [
        "| GPU | architecture | basis | GEMM, attention, elementwise from | all-reduce from |",
        "|---|---|---|---|---|",
    ]
    for gpu_id in sorted(catalog.gpus):
        p = catalog.kernel_profile(gpu_id)
        if p.basis.value == "measured":
            compute, link = "own microbenchmarks", "own microbenchmarks"
        else:
            match = re.search(r"all-reduce constants of (\S+)", p.source)
            compute, link = str(p.derived_from), match.group(1) if match else "?"
            if "forward-time rows" in p.source:
                scaled = re.search(r"compute efficiencies x ([0-9.]+) to match (\d+) forward-time rows", p.source)
                factor, rows = (scaled.group(1), scaled.group(2)) if scaled else ("?", "?")
                compute += f", compute efficiencies x {factor} to match {rows} forward-time rows of its own"
        arch = catalog.gpus[gpu_id].architecture.value
        lines.append(f"| {gpu_id} | {arch} | {p.basis.value} | {compute} | {link} |")
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[Catalog | None], str]] = {
    "decode": render_decode,
    "kernels": render_kernels,
    "tp": render_tp,
    "facts": render_facts,
    "engine": render_engine,
    "bases": render_bases,
    "validation": render_validation,
}


def write_blocks(path: Path) -> None:
    catalog = load_catalog()
    rendered = {name: render(catalog) for name, render in BLOCKS.items()}
    path.write_text(with_blocks(path.read_text(), rendered, str(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", choices=sorted(BLOCKS), help="print only this block")
    parser.add_argument("--write", type=Path, help="refresh the generated blocks of this page in place")
    args = parser.parse_args()
    if args.write:
        write_blocks(args.write)
        print(f"wrote {args.write}")
        return
    catalog = load_catalog()
    for name, render in BLOCKS.items():
        if args.block in (None, name):
            print(f"## {name}\n\n{render(catalog)}\n")


if __name__ == "__main__":
    main()
