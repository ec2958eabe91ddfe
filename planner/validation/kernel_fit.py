"""Fit the per-GPU kernel constants (planner.specs.kernels) on the shipped kernel microbenchmarks.

Every fit goes through the timing functions of planner.cost.kernels, so the constants mean exactly what the
cost model does with them. Residuals are relative (log of predicted over measured time) under a robust soft-L1
loss (scipy.optimize.least_squares), parameters are bounded and fitted in log space, and a parameter that ends
at its bound raises PlannerError: the form or the data is wrong there, and a silent clamp would hide it.

Bandwidth terms are set only by rows whose working set is well above the L2 cache (microbenchmark README
caveat 3): GEMM weights >= 256 MiB, decode KV and elementwise traffic >= 4x L2. The fit alternates between
(1) the bandwidth efficiency on those rows, the other constants held, and (2) the other constants on every row,
the bandwidth efficiency held, until the constants settle.

The error reported per table is the MdAPE, median of |predicted / measured - 1| in per cent, over every row of
that table for that GPU (engines pooled), and separately over the rows that are not L2-resident.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from pydantic import Field
from scipy.optimize import least_squares

from planner.cost.kernels import (
    allreduce_time_s,
    decode_attention_time_s,
    elementwise_time_s,
    gemm_time_s,
    prefill_attention_time_s,
)
from planner.errors import PlannerError
from planner.specs.hardware import Frozen
from planner.specs.kernels import (
    AllReduceConstants,
    DecodeAttentionConstants,
    ElementwiseConstants,
    GemmConstants,
    PrefillAttentionConstants,
)
from planner.validation.kernel_data import (
    GEMM_BANDWIDTH_MIN_WEIGHT_BYTES,
    L2_RESIDENT_MULTIPLE,
    Columns,
    FitGpu,
    load_table,
    select,
)

Array = NDArray[np.float64]
Mask = NDArray[np.bool_]

# Bytes per weight element, scales included: NVFP4 stores one FP8 scale per 16 elements (0.5 + 1/16); the
# 128x128 fp32 block scales of fp8_block (4 / 16384 byte per weight) and per-channel scales are negligible.
GEMM_WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "nvfp4": 0.5 + 1 / 16, "int8_wo": 1.0,
                     "int4_wo": 0.5, "int8_sq": 1.0}  # fmt: skip
KV_BYTES = {"bf16": 2.0, "fp8": 1.0}
_SOFT_L1_SCALE = 0.05  # residuals (log ratios) beyond ~5 % count linearly, not quadratically
_ALTERNATIONS = 4


class TableFit(Frozen):
    """How well one fitted table reproduces its measurements."""

    key: str  # "gemm.bf16", "decode_attention.fp8", "prefill_attention.bf16", "elementwise", "allreduce.nccl"
    rows: int
    mdape_pct: float  # over every row
    l2_rows: int = 0  # rows whose working set is under the L2 threshold (not used for bandwidth)
    mdape_non_l2_pct: float | None  # over the rows that are not L2-resident (None: every row is)
    engine_bias_pct: dict[str, float] = Field(default_factory=dict)  # median (measured / predicted - 1) %
    note: str = ""


def mdape_pct(predicted: Array, measured: Array) -> float:
    """Median absolute percentage error, per cent."""
    return float(np.median(np.abs(predicted / measured - 1.0)) * 100) if measured.size else float("nan")


def _summary(key: str, t: Columns, predicted: Array, l2: Mask, note: str = "") -> TableFit:
    measured = t["latency_s"]
    bias = {
        str(e): round(float(np.median(measured[t["engine"] == e] / predicted[t["engine"] == e] - 1) * 100), 2)
        for e in sorted(set(t["engine"].tolist()))
    }
    return TableFit(
        key=key,
        rows=int(measured.size),
        mdape_pct=mdape_pct(predicted, measured),
        l2_rows=int(l2.sum()),
        mdape_non_l2_pct=mdape_pct(predicted[~l2], measured[~l2]) if (~l2).any() else None,
        engine_bias_pct=bias,
        note=note,
    )


def _solve(
    residual: Callable[[Array], Array], x0: Array, lower: Array, upper: Array, names: tuple[str, ...], what: str
) -> Array:
    """Robust least squares in log-parameter space; raise if a parameter ends at a bound.

    A lower bound of 0 is the physical limit of a non-negative quantity (no per-peer latency, full tiles at
    every m), not a clamp: the solver works down to 1e-9 of the upper bound there, and a parameter that ends
    on that floor is returned as exactly 0 (the caller notes it)."""
    floor = np.where(lower > 0, lower, upper * 1e-9)
    lo, hi = np.log(floor), np.log(upper)
    start = np.clip(np.log(np.maximum(x0, floor)), lo + 1e-3, hi - 1e-3)
    result = least_squares(
        lambda z: residual(np.exp(z)), start, bounds=(lo, hi), loss="soft_l1", f_scale=_SOFT_L1_SCALE
    )
    z = np.asarray(result.x, dtype=float)
    x: Array = np.exp(z)
    for i, (name, value, a, b) in enumerate(zip(names, z, lo, hi, strict=True)):
        if value - a < 1e-3 and lower[i] == 0:
            x[i] = 0.0
        elif value - a < 1e-3 or b - value < 1e-3:
            bounds = f"[{float(np.exp(a)):.3g}, {float(np.exp(b)):.3g}]"
            raise PlannerError(f"{what}: {name} = {float(np.exp(value)):.4g} ends at its bound {bounds}")
    return x


def _zero_note(names: tuple[str, ...], x: Array) -> str:
    return "; ".join(f"{n} = 0 (the physical limit)" for n, v in zip(names, x, strict=True) if v == 0)


def _log_residual(predicted: Array, measured: Array) -> Array:
    return np.log(predicted) - np.log(measured)


def _alternate(
    full: Callable[[Array], Array],
    x0: Array,
    lower: Array,
    upper: Array,
    names: tuple[str, ...],
    bw_index: int,
    bw_rows: Mask,
    what: str,
) -> Array:
    """Fit with parameter `bw_index` (a bandwidth efficiency) set only by `bw_rows`, the others by every row.

    `full(x)` returns the log residual of every row for parameters x."""
    if not bw_rows.any():
        raise PlannerError(f"{what}: no row is large enough to set {names[bw_index]}")
    x = x0.astype(float)
    others = [i for i in range(len(x)) if i != bw_index]
    for _ in range(_ALTERNATIONS):

        def with_bw(bw: Array, x: Array = x) -> Array:
            y = x.copy()
            y[bw_index] = bw[0]
            return full(y)[bw_rows]

        x[bw_index] = _solve(with_bw, x[[bw_index]], lower[[bw_index]], upper[[bw_index]], (names[bw_index],), what)[0]

        def with_others(v: Array, x: Array = x) -> Array:
            y = x.copy()
            y[others] = v
            return full(y)

        x[others] = _solve(with_others, x[others], lower[others], upper[others], tuple(names[i] for i in others), what)
    return x


# GEMM ------------------------------------------------------------------------------------------------------


def gemm_rows(gpu: FitGpu, fmt: str) -> Columns:
    t = load_table("gemm")
    return select(t, (t["gpu"] == gpu.name) & (t["dtype"] == fmt))


def gemm_predict_s(c: GemmConstants, t: Columns, fmt: str, gpu: FitGpu) -> Array:
    """Time of each GEMM row: FLOPs = 2 m n k; bytes = n k x bytes per weight + 2 m (n + k) (bf16 X in, Y out)."""
    m, n, k = t["m"], t["n"], t["k"]
    peak = gpu.gemm_peak_flops_s(fmt)
    if peak is None:
        raise PlannerError(f"{gpu.name} has no {fmt} peak: its GEMM rows cannot be fitted")
    bytes_moved = n * k * GEMM_WEIGHT_BYTES[fmt] + 2 * m * (n + k)
    fixed, roofline, _ = gemm_time_s(c, m, 2 * m * n * k, bytes_moved, peak, gpu.memory_bw_bytes_s)
    return fixed + roofline


def gemm_small_weight(t: Columns, fmt: str) -> Mask:
    """Rows whose weights are under 256 MiB (may be L2-resident in part: never set memory_eff)."""
    mask: Mask = t["n"] * t["k"] * GEMM_WEIGHT_BYTES[fmt] < GEMM_BANDWIDTH_MIN_WEIGHT_BYTES
    return mask


def fit_gemm(gpu: FitGpu, fmt: str, memory_eff: float | None = None) -> tuple[GemmConstants, TableFit]:
    """Fit (compute_eff, m_half, memory_eff, fixed_s) for one format, engines pooled. A format without rows of
    >= 256 MiB weights (nvfp4, int4) takes `memory_eff` given (another format's on this GPU)."""
    t = gemm_rows(gpu, fmt)
    measured, small = t["latency_s"], gemm_small_weight(t, fmt)
    names = ("compute_eff", "m_half", "memory_eff", "fixed_s")

    def full(x: Array) -> Array:
        c = GemmConstants(compute_eff=x[0], m_half=x[1], memory_eff=x[2], fixed_s=x[3])
        return _log_residual(gemm_predict_s(c, t, fmt, gpu), measured)

    lower, upper = np.array([0.02, 0.0, 0.05, 1e-7]), np.array([1.0, 1e5, 1.2, 1e-3])
    what = f"GEMM {gpu.name} {fmt}"
    note = ""
    if small.all():
        if memory_eff is None:
            raise PlannerError(f"{what}: no weights >= 256 MiB and no memory_eff given")

        def three(v: Array) -> Array:
            return full(np.array([v[0], v[1], memory_eff, v[2]]))

        free = [0, 1, 3]
        free_names = ("compute_eff", "m_half", "fixed_s")
        v = _solve(three, np.array([0.6, 64.0, 3e-6]), lower[free], upper[free], free_names, what)
        x = np.array([v[0], v[1], memory_eff, v[2]])
        note = "memory_eff taken from another format of this GPU (no weights >= 256 MiB)"
    else:
        x = _alternate(full, np.array([0.6, 64.0, 0.8, 3e-6]), lower, upper, names, 2, ~small, what)
    c = GemmConstants(compute_eff=x[0], m_half=x[1], memory_eff=x[2], fixed_s=x[3])
    note = "; ".join(n for n in (note, _zero_note(names, x)) if n)
    return c, _summary(f"gemm.{fmt}", t, gemm_predict_s(c, t, fmt, gpu), small, note)


# Decode attention ------------------------------------------------------------------------------------------


def decode_rows(gpu: FitGpu, kv_dtype: str) -> Columns:
    t = load_table("attention_decode")
    return select(t, (t["gpu"] == gpu.name) & (t["kv_dtype"] == kv_dtype))


def decode_kv_bytes(t: Columns, kv_dtype: str) -> Array:
    """KV bytes read: batch x context x KV heads x head_dim x 2 (K and V) x bytes per element."""
    kv: Array = t["batch"] * t["context_len"] * t["num_kv_heads"] * t["head_dim"] * 2 * KV_BYTES[kv_dtype]
    return kv


def decode_predict_s(c: DecodeAttentionConstants, t: Columns, kv_dtype: str, gpu: FitGpu) -> Array:
    fixed, memory, _ = decode_attention_time_s(c, t["batch"], decode_kv_bytes(t, kv_dtype), gpu.memory_bw_bytes_s)
    return fixed + memory


def fit_decode(gpu: FitGpu, kv_dtype: str) -> tuple[DecodeAttentionConstants, TableFit]:
    """Fit (kv_bw_eff, per_seq_s, fixed_s); kv_bw_eff only from KV >= 4x L2, the rest from every row."""
    t = decode_rows(gpu, kv_dtype)
    l2 = decode_kv_bytes(t, kv_dtype) < L2_RESIDENT_MULTIPLE * gpu.l2_bytes

    def full(x: Array) -> Array:
        c = DecodeAttentionConstants(kv_bw_eff=x[0], per_seq_s=x[1], fixed_s=x[2])
        return _log_residual(decode_predict_s(c, t, kv_dtype, gpu), t["latency_s"])

    names = ("kv_bw_eff", "per_seq_s", "fixed_s")
    lower, upper = np.array([0.05, 0.0, 1e-7]), np.array([1.2, 1e-4, 1e-3])
    x = _alternate(full, np.array([0.8, 1e-7, 8e-6]), lower, upper, names, 0, ~l2, f"decode {gpu.name} {kv_dtype}")
    c = DecodeAttentionConstants(kv_bw_eff=x[0], per_seq_s=x[1], fixed_s=x[2])
    return c, _summary(
        f"decode_attention.{kv_dtype}", t, decode_predict_s(c, t, kv_dtype, gpu), l2, _zero_note(names, x)
    )


# Prefill attention -----------------------------------------------------------------------------------------


def prefill_rows(gpu: FitGpu, dtype: str) -> Columns:
    t = load_table("attention_prefill")
    return select(t, (t["gpu"] == gpu.name) & (t["dtype"] == dtype))


def prefill_predict_s(c: PrefillAttentionConstants, t: Columns, gpu: FitGpu) -> Array:
    """Causal FLOPs = 2 batch heads s^2 head_dim: 2 per FMA x 2 matmuls (QK^T, PV) x 1/2 for the causal mask.
    The peak is the 16-bit one for both FMHA dtypes (as planner.specs.kernels states)."""
    s = t["seq_len"]
    flops = 2 * t["batch"] * t["num_heads"] * s**2 * t["head_dim"]
    fixed, compute, _ = prefill_attention_time_s(c, s, flops, gpu.bf16_flops_s)
    return fixed + compute


def fit_prefill(gpu: FitGpu, dtype: str) -> tuple[PrefillAttentionConstants, TableFit]:
    t = prefill_rows(gpu, dtype)

    def full(x: Array) -> Array:
        c = PrefillAttentionConstants(compute_eff=x[0], s_half=x[1], fixed_s=x[2])
        return _log_residual(prefill_predict_s(c, t, gpu), t["latency_s"])

    names = ("compute_eff", "s_half", "fixed_s")
    lower, upper = np.array([0.02, 0.0, 1e-7]), np.array([1.0, 1e5, 1e-3])
    x = _solve(full, np.array([0.5, 512.0, 1e-5]), lower, upper, names, f"prefill {gpu.name} {dtype}")
    c = PrefillAttentionConstants(compute_eff=x[0], s_half=x[1], fixed_s=x[2])
    none = np.zeros(t["latency_s"].shape, dtype=bool)
    return c, _summary(f"prefill_attention.{dtype}", t, prefill_predict_s(c, t, gpu), none, _zero_note(names, x))


# Elementwise (static FP8 quantize) -------------------------------------------------------------------------


def elementwise_rows(gpu: FitGpu) -> Columns:
    t = load_table("quantize")
    return select(t, t["gpu"] == gpu.name)


def elementwise_predict_s(c: ElementwiseConstants, t: Columns, gpu: FitGpu) -> Array:
    """bytes = 3 m k: each element read as bf16 (2 B) and written as fp8 (1 B)."""
    fixed, memory, _ = elementwise_time_s(c, 3 * t["m"] * t["k"], gpu.memory_bw_bytes_s)
    return fixed + memory


def fit_elementwise(gpu: FitGpu) -> tuple[ElementwiseConstants, TableFit]:
    t = elementwise_rows(gpu)
    l2 = 3 * t["m"] * t["k"] < L2_RESIDENT_MULTIPLE * gpu.l2_bytes

    def full(x: Array) -> Array:
        c = ElementwiseConstants(bw_eff=x[0], fixed_s=x[1])
        return _log_residual(elementwise_predict_s(c, t, gpu), t["latency_s"])

    lower, upper = np.array([0.05, 1e-7]), np.array([1.2, 1e-3])
    x = _alternate(full, np.array([0.8, 2e-6]), lower, upper, ("bw_eff", "fixed_s"), 0, ~l2, f"elementwise {gpu.name}")
    c = ElementwiseConstants(bw_eff=x[0], fixed_s=x[1])
    return c, _summary("elementwise", t, elementwise_predict_s(c, t, gpu), l2)


# All-reduce ------------------------------------------------------------------------------------------------


def _version_key(version: str) -> tuple[tuple[int, ...], int]:
    """Order version labels: 1.3.0rc10 < 1.3.0rc20 < 1.3.0; 0.5.6.post2 > 0.5.6."""
    base, _, rc = version.partition("rc")
    return tuple(int(p) for p in re.findall(r"\d+", base)), int(rc) if rc.isdigit() else 10**6


def allreduce_points(gpu: FitGpu, impl: str) -> Columns:
    """The all-reduce curve of one implementation, one point per (GPU count, message size).

    nccl: the library benchmark (nccl-tests; oneCCL on b60), newest version folder holding that GPU count,
    median over its runs. engine: per engine (trtllm, vllm, sglang) the newest version holding that GPU count,
    median over its runs, then per point the median over engines. Engine rows are CUDA-graph replays except on
    b60 (eager only). The `engine` column of the result says which engines a point pools."""
    t = load_table("allreduce")
    t = select(t, t["gpu"] == gpu.name)
    library = np.isin(t["engine"], ["nccl", "oneccl"])
    t = select(t, library if impl == "nccl" else ~library)
    per_engine: dict[tuple[float, float], list[float]] = {}
    engines_at: dict[tuple[float, float], list[str]] = {}
    for engine in sorted(set(t["engine"].tolist())):
        for n in sorted(set(t["num_gpus"][t["engine"] == engine].tolist())):
            rows = select(t, (t["engine"] == engine) & (t["num_gpus"] == n))
            newest = max(set(rows["engine_version"].tolist()), key=_version_key)
            rows = select(rows, rows["engine_version"] == newest)
            for size in sorted(set(rows["message_bytes"].tolist())):
                key = (n, size)
                median_s = float(np.median(rows["latency_s"][rows["message_bytes"] == size]))
                per_engine.setdefault(key, []).append(median_s)
                engines_at.setdefault(key, []).append(engine)
    keys = sorted(per_engine)
    return {
        "num_gpus": np.array([k[0] for k in keys], dtype=float),
        "message_bytes": np.array([k[1] for k in keys], dtype=float),
        "latency_s": np.array([float(np.median(per_engine[k])) for k in keys], dtype=float),
        "engine": np.array(["+".join(engines_at[k]) for k in keys], dtype=str),
    }


def allreduce_predict_s(c: AllReduceConstants, t: Columns, gpu: FitGpu) -> Array:
    out = np.empty(t["latency_s"].shape, dtype=float)
    for n in set(t["num_gpus"].tolist()):
        rows = t["num_gpus"] == n
        out[rows] = allreduce_time_s(c, t["message_bytes"][rows], int(n), gpu.link_bw_bytes_s)
    return out


def fit_allreduce(gpu: FitGpu, impl: str) -> tuple[AllReduceConstants, TableFit]:
    t = allreduce_points(gpu, impl)
    if not t["latency_s"].size:
        raise PlannerError(f"all-reduce {gpu.name} {impl}: no rows")

    def full(x: Array) -> Array:
        c = AllReduceConstants(latency_s=x[0], latency_per_peer_s=x[1], bus_bw_eff=x[2])
        return _log_residual(allreduce_predict_s(c, t, gpu), t["latency_s"])

    names = ("latency_s", "latency_per_peer_s", "bus_bw_eff")
    lower, upper = np.array([1e-7, 0.0, 0.005]), np.array([1e-2, 1e-3, 2.0])
    x = _solve(full, np.array([5e-6, 1e-6, 0.7]), lower, upper, names, f"all-reduce {gpu.name} {impl}")
    c = AllReduceConstants(latency_s=x[0], latency_per_peer_s=x[1], bus_bw_eff=x[2])
    none = np.zeros(t["latency_s"].shape, dtype=bool)
    return c, _summary(f"allreduce.{impl}", t, allreduce_predict_s(c, t, gpu), none, _zero_note(names, x))
