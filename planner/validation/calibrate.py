"""Fit each engine's two host-side constants on latency rows (`tdplan calibrate`), with the kernel constants of
every GPU held fixed (they come from kernel microbenchmarks, planner.specs.kernels).

Fitted per engine: `iteration_overhead_s` and `per_seq_overhead_s` (planner.specs.engine.EngineConstants), on
the rows that time latency rather than saturated throughput (`is_latency_row`): single-request TTFT and decode
speed, and static batches timed end to end at batch sizes 1-64. Max-throughput tables are validation, never
fitting data.

Every prediction, written as a time, is linear in the two constants (planner.validation.predict.time_design), so
the fit is a bounded robust linear least squares on relative error (scipy `least_squares`, soft-L1 loss with a
10% scale) and takes milliseconds; leave-one-source-out refits are as cheap. A constant that ends at a bound
(zero) raises: the data would be saying the host does no work, which points at a missing kernel term instead.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from planner.errors import PlannerError
from planner.specs.catalog import Catalog
from planner.specs.engine import CalibrationProfile, EngineConstants
from planner.validation.measurements import Measurement, load_measurements
from planner.validation.predict import RATE_METRICS, Prepared, as_time, prepare, time_design

PARAMS = ("iteration_overhead_s", "per_seq_overhead_s")
UPPER = np.array([0.05, 1e-3])  # 50 ms per iteration, 1 ms per sequence: beyond any engine's host work
SCALE = np.array([1e-3, 1e-5])  # typical sizes, for the solver's step control


def is_latency_row(row: Measurement) -> bool:
    """Rows that pin host-side overheads: one request at a time, or static batches timed end to end at many
    batch sizes. Static-batch *throughput* tables (one batch per setting, picked for throughput) are
    validation, as the max-throughput tables are."""
    return row.scenario == "single" or row.metric == "batch_latency_s"


@dataclass(frozen=True)
class FitResult:
    constants: EngineConstants
    uncertainty: dict[str, float]
    rows: int
    median_abs_pct_error: float
    sources: tuple[str, ...]


@dataclass(frozen=True)
class EngineRows:
    """An engine's predictable rows with their linear time forms, for fitting and validation."""

    rows: list[Prepared]
    base_s: np.ndarray
    design_s: np.ndarray
    measured_s: np.ndarray

    @classmethod
    def build(cls, rows: list[Prepared]) -> EngineRows:
        base, design = time_design(rows) if rows else (np.zeros(0), np.zeros((0, 2)))
        measured = np.array([as_time(p.row.metric, p.row.value) for p in rows])
        return cls(rows=rows, base_s=base, design_s=design, measured_s=measured)

    def predicted_s(self, theta: np.ndarray) -> np.ndarray:
        return np.asarray(self.base_s + self.design_s @ theta)

    def subset(self, keep: np.ndarray) -> EngineRows:
        return EngineRows(
            rows=[p for p, k in zip(self.rows, keep, strict=True) if k],
            base_s=self.base_s[keep],
            design_s=self.design_s[keep],
            measured_s=self.measured_s[keep],
        )


def fit_constants(data: EngineRows, engine: str, per_seq_overhead_s: float | None = None) -> FitResult:
    """Robust least squares of predicted / measured - 1 over `data` (time form), constants >= 0.
    `per_seq_overhead_s` given: only the per-iteration constant is fitted (rows of one request each cannot
    tell the two apart)."""
    from scipy.optimize import least_squares

    if len(data.rows) < 3:
        raise PlannerError(f"engine '{engine}' has {len(data.rows)} latency rows: too few to fit its constants")

    free = [0, 1] if per_seq_overhead_s is None else [0]

    def full(x: np.ndarray) -> np.ndarray:
        return x if per_seq_overhead_s is None else np.array([x[0], per_seq_overhead_s])

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.asarray(data.predicted_s(full(x)) / data.measured_s - 1.0)

    result = least_squares(
        residuals, SCALE[free].copy(), bounds=(np.zeros(len(free)), UPPER[free]), loss="soft_l1", f_scale=0.1,
        x_scale=SCALE[free],
    )  # fmt: skip
    theta = full(result.x)
    at_bound = [PARAMS[k] for k in free if theta[k] <= 1e-3 * SCALE[k] or theta[k] >= 0.999 * UPPER[k]]
    if at_bound:
        raise PlannerError(
            f"engine '{engine}': {', '.join(at_bound)} fitted to a bound ({theta}); the latency rows do not "
            "support a physical value: check the kernel constants or the rows"
        )
    jacobian = (data.design_s / data.measured_s[:, None])[:, free]
    dof = max(len(data.rows) - len(free), 1)
    sigma2 = float(np.sum(residuals(result.x) ** 2) / dof)
    covariance = np.linalg.pinv(jacobian.T @ jacobian) * sigma2
    sigma = dict.fromkeys(PARAMS, 0.0)
    for position, k in enumerate(free):
        sigma[PARAMS[k]] = float(np.sqrt(covariance[position, position]))
    errors = np.abs(residuals(result.x)) * 100
    return FitResult(
        constants=EngineConstants(**dict(zip(PARAMS, (float(x) for x in theta), strict=True))),
        uncertainty=sigma,
        rows=len(data.rows),
        median_abs_pct_error=float(np.median(errors)),
        sources=tuple(sorted({p.row.source for p in data.rows})),
    )


def engine_rows(catalog: Catalog, engine: str) -> tuple[EngineRows, list[tuple[Measurement, str]]]:
    """Every predictable row of `engine` (latency and throughput), and the rows skipped with their reason."""
    prepared, skipped = [], []
    for row in load_measurements():
        if row.engine != engine:
            continue
        result = prepare(row, catalog)
        if isinstance(result, Prepared):
            prepared.append(result)
        else:
            skipped.append((row, result))
    return EngineRows.build(prepared), skipped


def fit_rows_mask(data: EngineRows) -> np.ndarray:
    return np.array([is_latency_row(p.row) for p in data.rows], dtype=bool)


def leave_one_source_out_s(data: EngineRows, engine: str) -> np.ndarray:
    """Predicted time of every row by a fit that never saw the row's source: fitted sources are refitted
    without themselves (the per-iteration constant alone where the rest cannot pin per-sequence work); rows of
    sources that were never fitted on are predicted by the full fit."""
    fit_mask = fit_rows_mask(data)
    full = fit_constants(data.subset(fit_mask), engine)
    theta_full = np.array([getattr(full.constants, name) for name in PARAMS])
    predicted = data.predicted_s(theta_full)
    sources = np.array([p.row.source for p in data.rows])
    for source in sorted(set(sources[fit_mask])):
        keep = fit_mask & (sources != source)
        held_out = sources == source
        try:
            result = fit_constants(data.subset(keep), engine)
        except PlannerError:
            # The other sources cannot pin the per-sequence work (one request at a time): fit the per-iteration
            # constant alone, with no per-sequence work.
            result = fit_constants(data.subset(keep), engine, per_seq_overhead_s=0.0)
        theta = np.array([getattr(result.constants, name) for name in PARAMS])
        predicted[held_out] = data.predicted_s(theta)[held_out]
    return np.asarray(predicted)


def metric_errors_pct(data: EngineRows, predicted_s: np.ndarray) -> np.ndarray:
    """Signed error of each row in its own metric, as `tdplan validate` reports it: (predicted / measured - 1)
    of the metric, except for batch-1 generation speed, whose error is that of the per-token latency."""
    from planner.validation.validate import RECIPROCAL

    rates = np.array([p.row.metric in RATE_METRICS and p.row.metric not in RECIPROCAL for p in data.rows], dtype=bool)
    ratio = predicted_s / data.measured_s  # time form: latency over latency
    return np.asarray(np.where(rates, 1 / ratio, ratio) - 1) * 100


def expected_errors_pct(catalog: Catalog, data: EngineRows, engine: str) -> dict[str, float]:
    """Median absolute leave-one-source-out error of the engine's serving rows (forward-time profiles run no
    engine) per GPU architecture family, and `all`."""
    predicted = leave_one_source_out_s(data, engine)
    errors = np.abs(metric_errors_pct(data, predicted))
    serving = np.array([p.row.metric != "forward_time_s" for p in data.rows], dtype=bool)  # profiles: no engine
    errors = errors[serving]
    by_family: dict[str, list[float]] = defaultdict(list)
    for prepared, error in zip([p for p, s in zip(data.rows, serving, strict=True) if s], errors, strict=True):
        by_family[catalog.gpus[prepared.row.gpu].architecture.value].append(float(error))
    out = {family: round(statistics.median(values), 1) for family, values in sorted(by_family.items())}
    out["all"] = round(float(np.median(errors)), 1) if len(errors) else 0.0
    return out


def fit_engine(catalog: Catalog, engine: str) -> CalibrationProfile:
    """Fit one engine's constants and record its expected error per GPU family."""
    data, _ = engine_rows(catalog, engine)
    result = fit_constants(data.subset(fit_rows_mask(data)), engine)
    return CalibrationProfile(
        engine=engine,
        generated_by="tdplan calibrate --write",
        fitted_on="latency rows (single request, static batch) of planner/data/measurements.csv "
        "(planner.validation.calibrate.is_latency_row), with the GPUs' kernel constants held fixed",
        constants=result.constants,
        uncertainty=result.uncertainty,
        fitted_rows=result.rows,
        fitted_median_abs_pct_error=round(result.median_abs_pct_error, 2),
        fitted_sources=result.sources,
        expected_error_pct=expected_errors_pct(catalog, data, engine),
    )


def fit_all(catalog: Catalog) -> list[CalibrationProfile]:
    return [fit_engine(catalog, engine) for engine in sorted(catalog.engines)]


def write_profiles(profiles: list[CalibrationProfile], root: Path) -> list[Path]:
    """Write each profile to hardware/calibration/<engine>.yaml under the catalog root."""
    paths = []
    for profile in profiles:
        path = root / "hardware" / "calibration" / f"{profile.engine}.yaml"
        data = profile.model_dump(mode="json")
        for section in ("constants", "uncertainty"):
            data[section] = {key: float(f"{value:.4g}") for key, value in data[section].items()}
        header = "# Written by `tdplan calibrate --write`; do not edit by hand.\n"
        path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=110))
        paths.append(path)
    return paths
