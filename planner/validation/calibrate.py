"""Fit the efficiency and overhead constants per engine and GPU architecture family (`tdplan calibrate`).

For each engine profile, the rows of the measurements table that belong to its fitting era (`FIT_ROWS`) are
grouped by the GPU's architecture family. Each family with at least `MIN_FAMILY_ROWS` rows gets its own fit;
a `default` entry is fitted on all of the engine's rows pooled, and serves every family without data.

Fitted per entry: compute_eff, gemm_ridge_scale, memory_bw_eff, attention_bw_eff, iteration_overhead_s,
layer_overhead_s and seq_layer_overhead_s (see planner.specs.engine.Calibration), by
robust least squares (scipy `least_squares`, soft-L1 loss) on log(predicted / measured). Weak priors keep
constants the rows do not constrain near the microbenchmarks: the share of peak that large cuBLAS GEMMs reach
and the share of datasheet bandwidth that STREAM copy reaches (Azure AI-benchmarking-guide), each weighted as
one row. comm_bw_eff is not fitted to serving rows: it is the median NCCL all-reduce bus bandwidth over link
bandwidth for large messages, capped at 1.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from scipy.optimize import least_squares

from planner.specs.catalog import Catalog
from planner.specs.engine import Calibration, CalibrationProfile
from planner.validation.measurements import Measurement, load_measurements, load_microbenchmarks
from planner.validation.predict import Prepared, predict, prepare

MIN_FAMILY_ROWS = 8

FIT_ROWS: dict[str, Callable[[Measurement], bool]] = {
    # Throughput: in-flight batching with trtllm-bench / gptManagerBenchmark without streaming (v0.11-v0.14),
    # one methodology; v0.10 (streaming, max_utilization) and the static-batching throughput of v0.5-v0.9 are
    # validated, not fitted, as the source notes advise against mixing methodologies. Batch-1 TTFT rows
    # (v0.5, v0.9) are fitted: they are the only rows that isolate prefill latency.
    "trtllm": lambda row: row.engine_version in ("0.11.0", "0.12.0", "0.13.0", "0.14.0") or row.metric == "ttft_s",
    "vllm": lambda row: True,
}

PARAMS = (
    "compute_eff",
    "gemm_ridge_scale",
    "memory_bw_eff",
    "attention_bw_eff",
    "iteration_overhead_s",
    "layer_overhead_s",
    "seq_layer_overhead_s",
)
LOWER = np.array([0.2, 0.01, 0.3, 0.2, 0.0, 0.0, 0.0])
UPPER = np.array([1.0, 10.0, 1.0, 1.0, 0.05, 1e-3, 1e-5])
# Prior spread (one standard deviation) of each constant, in its own units.
PRIOR_SCALE = np.array([0.1, 0.5, 0.1, 0.1, 0.005, 50e-6, 1e-7])


def microbenchmark_priors(catalog: Catalog) -> dict[str, float]:
    """Median achieved/peak of large GEMMs and of STREAM copy, and of large-message NCCL all-reduce."""
    gemm, stream, comm = [], [], []
    for bench in load_microbenchmarks():
        gpu = catalog.gpus.get(bench.gpu)
        if gpu is None:
            continue
        if bench.metric.startswith("gemm_tflops") and "8192" in bench.conditions:
            peak = gpu.dense_tflops.fp8 if bench.metric.endswith("fp8") else gpu.dense_tflops.fp16
            if peak:
                gemm.append(bench.value / peak)
        elif bench.metric == "hbm_stream_copy_gb_s":
            stream.append(bench.value / gpu.memory_bw_gb_s)
        elif bench.metric == "nccl_allreduce_busbw_gb_s" and ("GB" in bench.conditions or "GiB" in bench.conditions):
            comm.append(min(1.0, bench.value / gpu.interconnect.bw_gb_s))
    return {
        "compute_eff": statistics.median(gemm),
        "memory_bw_eff": statistics.median(stream),
        "comm_bw_eff": statistics.median(comm),
    }


def _calibration(theta: np.ndarray, comm_bw_eff: float, **record: object) -> Calibration:
    return Calibration(**dict(zip(PARAMS, (float(x) for x in theta), strict=True)), comm_bw_eff=comm_bw_eff, **record)


def _fit(rows: list[Prepared], prior: np.ndarray, comm_bw_eff: float) -> tuple[np.ndarray, list[float]]:
    measured = np.array([p.row.value for p in rows])

    def residuals(theta: np.ndarray) -> np.ndarray:
        cal = _calibration(theta, comm_bw_eff, fitted_rows=0)
        predicted = np.array([predict(p, cal) for p in rows])
        return np.concatenate([np.log(predicted / measured), (theta - prior) / PRIOR_SCALE * 0.05])

    result = least_squares(
        residuals,
        np.clip(prior, LOWER, UPPER),
        bounds=(LOWER, UPPER),
        loss="soft_l1",
        f_scale=0.1,
        x_scale=PRIOR_SCALE,
        diff_step=1e-3,
        max_nfev=40,
    )
    cal = _calibration(result.x, comm_bw_eff, fitted_rows=0)
    errors = [abs(predict(p, cal) / p.row.value - 1) * 100 for p in rows]
    return result.x, errors


def fit_engine(catalog: Catalog, engine: str) -> CalibrationProfile:
    """Fit one engine's profile: a `default` entry on all its rows, and one per family with enough rows."""
    priors = microbenchmark_priors(catalog)
    prior = np.array([priors["compute_eff"], 0.5, priors["memory_bw_eff"], priors["memory_bw_eff"], 0.0, 0.0, 0.0])
    placeholder = _calibration(prior, priors["comm_bw_eff"], fitted_rows=0)
    by_family: dict[str, list[Prepared]] = defaultdict(list)
    for row in load_measurements():
        if row.engine != engine or not FIT_ROWS[engine](row):
            continue
        prepared = prepare(row, catalog, placeholder)
        if isinstance(prepared, Prepared):
            by_family[catalog.gpus[row.gpu].architecture.value].append(prepared)
    groups = {"default": [p for rows in by_family.values() for p in rows]}
    groups.update({family: rows for family, rows in sorted(by_family.items()) if len(rows) >= MIN_FAMILY_ROWS})
    families = {}
    for family, rows in groups.items():
        theta, errors = _fit(rows, prior, priors["comm_bw_eff"])
        families[family] = _calibration(
            theta,
            priors["comm_bw_eff"],
            fitted_rows=len(rows),
            fitted_median_abs_pct_error=round(statistics.median(errors), 2),
            fitted_sources=tuple(sorted({p.row.source for p in rows})),
        )
    return CalibrationProfile(
        engine=engine,
        generated_by="tdplan calibrate --write",
        fitted_on="rows of planner/data/measurements.csv selected by planner.validation.calibrate.FIT_ROWS; "
        "priors and comm_bw_eff from planner/data/microbenchmarks.csv",
        families=families,
    )


def fit_all(catalog: Catalog) -> list[CalibrationProfile]:
    return [fit_engine(catalog, engine) for engine in sorted(catalog.engines)]


def write_profiles(profiles: list[CalibrationProfile], root: Path) -> list[Path]:
    """Write each profile to hardware/calibration/<engine>.yaml under the catalog root."""
    paths = []
    for profile in profiles:
        path = root / "hardware" / "calibration" / f"{profile.engine}.yaml"
        data = profile.model_dump(mode="json")
        for cal in data["families"].values():
            for key, value in cal.items():
                if isinstance(value, float):
                    cal[key] = float(f"{value:.4g}")
        header = "# Written by `tdplan calibrate --write`; do not edit by hand.\n"
        path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=110))
        paths.append(path)
    return paths
