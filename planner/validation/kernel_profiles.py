"""Whole kernel profiles: fit every table of one microbenchmark GPU, and score a profile against the tables.

`fit_kernel_profile` is what `scripts/fit_kernels.py` runs per GPU; `profile_errors` recomputes, from a
profile's constants alone, the MdAPE of every table it records (tests check the shipped files this way).
"""

from __future__ import annotations

import numpy as np

from planner.errors import PlannerError
from planner.specs.catalog import Catalog
from planner.specs.hardware import GpuSpec
from planner.specs.kernels import (
    AllReduceConstants,
    AllReduceImpl,
    DecodeAttentionConstants,
    GemmConstants,
    KernelBasis,
    KernelProfile,
    PrefillAttentionConstants,
    derive_kernel_profile,
)
from planner.validation import kernel_fit as kf
from planner.validation.kernel_data import CATALOG_ID, FitGpu, fit_gpu, load_table, microbench_gpus

# Fit order: a format without weights >= 256 MiB on a GPU takes memory_eff from the first fitted format listed
# with it (the same weight stream through the same memory system).
GEMM_FORMATS: dict[str, tuple[str, ...]] = {
    "bf16": (),
    "fp8": ("bf16",),
    "fp8_block": ("fp8", "bf16"),
    "int8_wo": ("bf16",),
    "int8_sq": ("int8_wo", "bf16"),
    "nvfp4": ("fp8", "bf16"),  # same tensor-core path streams 4-bit weights as it does 8-bit ones
    "int4_wo": ("int8_wo", "bf16"),  # the same weight-only plugin at half the bits
}
ATTENTION_DTYPES = ("bf16", "fp8")
SOURCE = (
    "Fitted by scripts/fit_kernels.py (planner.validation.kernel_fit: soft-L1 least squares on log time, "
    "through planner.cost.kernels) on the kernel microbenchmarks derived from NVIDIA AIConfigurator "
    "(aiconfigurator-core 0.12.0, Apache-2.0) shipped in planner/data/microbench: GEMM, decode and prefill "
    "attention, static FP8 quantize (elementwise), all-reduce; engines (TensorRT-LLM, vLLM, SGLang) pooled; "
    "peaks from this GPU's catalog file."
)


def _present(table: str, column: str, gpu: str) -> set[str]:
    t = load_table(table)
    return set(t[column][t["gpu"] == gpu].tolist())


def _closest_by_bandwidth(gpu: FitGpu, others: dict[str, FitGpu]) -> str:
    """The other GPU whose memory bandwidth is closest in ratio (|log(bw / bw_other)|)."""
    return min(others, key=lambda n: abs(np.log(gpu.memory_bw_bytes_s / others[n].memory_bw_bytes_s)))


def fit_kernel_profile(name: str, catalog_gpus: dict[str, GpuSpec]) -> tuple[KernelProfile, list[kf.TableFit]]:
    """Fit every table of microbenchmark GPU `name` into one KernelProfile (basis measured).

    A GPU without quantize rows (a100-sxm-80g, b60) takes the elementwise constants of the quantize-measured
    GPU closest in memory bandwidth; the profile's source says so."""
    gpu = fit_gpu(name, catalog_gpus)
    fits: list[kf.TableFit] = []
    gemm: dict[str, GemmConstants] = {}
    formats = _present("gemm", "dtype", name)
    for fmt, fallbacks in GEMM_FORMATS.items():
        if fmt not in formats or gpu.gemm_peak_flops_s(fmt) is None:
            continue
        borrowed = next((gemm[f].memory_eff for f in fallbacks if f in gemm), None)
        gemm[fmt], fit = kf.fit_gemm(gpu, fmt, borrowed)
        fits.append(fit)
    decode: dict[str, DecodeAttentionConstants] = {}
    for kv in sorted(_present("attention_decode", "kv_dtype", name) & set(ATTENTION_DTYPES)):
        decode[kv], fit = kf.fit_decode(gpu, kv)
        fits.append(fit)
    prefill: dict[str, PrefillAttentionConstants] = {}
    for dtype in sorted(_present("attention_prefill", "dtype", name) & set(ATTENTION_DTYPES)):
        prefill[dtype], fit = kf.fit_prefill(gpu, dtype)
        fits.append(fit)
    source = SOURCE
    if name in _present("quantize", "gpu", name):
        elementwise, fit = kf.fit_elementwise(gpu)
        fits.append(fit)
    else:
        measured = {g: fit_gpu(g, catalog_gpus) for g in microbench_gpus() if g in load_table("quantize")["gpu"]}
        donor = _closest_by_bandwidth(gpu, measured)
        elementwise, _ = kf.fit_elementwise(measured[donor])
        source += f" No quantize rows: elementwise constants are {donor}'s (closest memory bandwidth)."
    allreduce: dict[AllReduceImpl, AllReduceConstants] = {}
    for impl in AllReduceImpl:
        allreduce[impl], fit = kf.fit_allreduce(gpu, impl.value)
        fits.append(fit)
    profile = KernelProfile(
        gpu=gpu.catalog_id or name,
        basis=KernelBasis.measured,
        source=source,
        gemm=gemm,
        decode_attention=decode,
        prefill_attention=prefill,
        elementwise=elementwise,
        allreduce=allreduce,
        fit_rows={f.key: f.rows for f in fits},
        fit_median_abs_pct_error={f.key: f.mdape_pct for f in fits},
    )
    return profile, fits


def profile_errors(profile: KernelProfile, gpu: FitGpu) -> dict[str, tuple[int, float]]:
    """(rows, MdAPE %) of every table `profile` records a fit error for, from its constants alone."""
    out: dict[str, tuple[int, float]] = {}
    for key in profile.fit_median_abs_pct_error:
        kind, _, variant = key.partition(".")
        if kind == "gemm":
            t = kf.gemm_rows(gpu, variant)
            predicted = kf.gemm_predict_s(profile.gemm[variant], t, variant, gpu)
        elif kind == "decode_attention":
            t = kf.decode_rows(gpu, variant)
            predicted = kf.decode_predict_s(profile.decode_attention[variant], t, variant, gpu)
        elif kind == "prefill_attention":
            t = kf.prefill_rows(gpu, variant)
            predicted = kf.prefill_predict_s(profile.prefill_attention[variant], t, gpu)
        elif kind == "elementwise":
            t = kf.elementwise_rows(gpu)
            predicted = kf.elementwise_predict_s(profile.elementwise, t, gpu)
        elif kind == "allreduce":
            t = kf.allreduce_points(gpu, variant)
            predicted = kf.allreduce_predict_s(profile.allreduce[AllReduceImpl(variant)], t, gpu)
        else:
            raise PlannerError(f"kernel profile {profile.gpu}: unknown fit table '{key}'")
        out[key] = (int(predicted.size), kf.mdape_pct(predicted, t["latency_s"]))
    return out


def kernel_error_rows(catalog_gpus: dict[str, GpuSpec], measured: dict[str, KernelProfile]) -> list[list[str]]:
    """[gpu, table, rows, MdAPE recorded %, MdAPE recomputed %] for every measured profile of the catalog."""
    by_catalog_id = {catalog_id: name for name, catalog_id in CATALOG_ID.items()}
    out = []
    for gpu_id, profile in sorted(measured.items()):
        if gpu_id not in by_catalog_id:
            continue
        errors = profile_errors(profile, fit_gpu(by_catalog_id[gpu_id], catalog_gpus))
        for key, (rows, mdape) in errors.items():
            out.append([gpu_id, key, str(rows), f"{profile.fit_median_abs_pct_error[key]:.1f}", f"{mdape:.1f}"])
    return out


def scale_to_forward_rows(catalog: Catalog, gpu_id: str) -> KernelProfile | None:
    """A derived GPU's kernel constants corrected by its own forward-time measurements, or None without any.

    A GPU without kernel microbenchmarks takes a measured GPU's constants (derive_kernel_profile). Where the
    measurements table holds forward-time profiles of that GPU (a whole model's forward pass over a prompt of
    256+ tokens: GEMM- and prefill-attention-bound), one factor s scales its compute efficiencies (GEMM
    compute_eff and prefill-attention compute_eff, capped at 0.98 of the peak) so that the median of
    predicted / measured over those rows is 1. Bandwidth efficiencies and fixed latencies stay as derived: the
    rows do not see them. The factor is found by fixed-point iteration (predicted time is about 1 / s)."""
    from planner.validation.measurements import load_measurements
    from planner.validation.predict import Prepared, predict, prepare

    rows = [
        r for r in load_measurements() if r.gpu == gpu_id and r.metric == "forward_time_s" and (r.input_len or 0) >= 256
    ]
    prepared = [p for p in (prepare(r, catalog) for r in rows) if isinstance(p, Prepared)]
    if not prepared:
        return None
    base = derive_kernel_profile(catalog.gpus[gpu_id], catalog.kernels, catalog.gpus)

    def scaled(factor: float) -> KernelProfile:
        return base.model_copy(
            update={
                "gemm": {
                    k: c.model_copy(update={"compute_eff": min(0.98, c.compute_eff * factor)})
                    for k, c in base.gemm.items()
                },
                "prefill_attention": {
                    k: c.model_copy(update={"compute_eff": min(0.98, c.compute_eff * factor)})
                    for k, c in base.prefill_attention.items()
                },
            }
        )

    def ratios(profile: KernelProfile) -> list[float]:
        return [
            predict(
                Prepared(row=p.row, deployment=p.deployment.model_copy(update={"kernels": profile}), memory=p.memory)
            )
            / p.row.value
            for p in prepared
        ]

    factor = 1.0
    for _ in range(8):
        factor *= float(np.median(ratios(scaled(factor))))
    profile = scaled(factor)
    errors = [abs(r - 1) * 100 for r in ratios(profile)]
    return profile.model_copy(
        update={
            "source": f"{base.source}; compute efficiencies x {factor:.3f} to match {len(prepared)} forward-time rows "
            f"of its own ({', '.join(sorted({p.row.source for p in prepared}))}), by "
            "planner.validation.kernel_profiles.scale_to_forward_rows",
            "fit_rows": {"forward_time": len(prepared)},
            "fit_median_abs_pct_error": {"forward_time": round(float(np.median(errors)), 2)},
        }
    )
