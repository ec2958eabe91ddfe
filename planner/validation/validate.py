"""`tdplan validate`: predict every published measurement the model can express and measure the error, in-sample
(with the shipped engine constants) and leave-one-source-out (each fitted source predicted by a fit without it)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from planner.specs.catalog import Catalog
from planner.validation.calibrate import engine_rows, fit_rows_mask, leave_one_source_out_s
from planner.validation.measurements import Measurement, load_measurements
from planner.validation.predict import as_time

# What each metric is called in the summary, and whether its error is taken on the reciprocal: a batch-1
# generation speed (tokens/s) is reported as the error of the per-token latency it implies.
METRIC_LABELS = {
    "output_throughput_tok_s": "offline throughput",
    "batch_latency_s": "static-batch latency",
    "static_batch_throughput": "static-batch throughput",
    "ttft_s": "TTFT (batch 1)",
    "single_output_tok_s": "single-request decode latency",
    "forward_time_s": "forward time",
}
RECIPROCAL = {"single_output_tok_s"}


def row_kind(row: Measurement) -> str:
    """The summary group of a row: its metric, with static-batch throughput kept apart from offline."""
    if row.metric == "output_throughput_tok_s" and row.scenario == "static-batch":
        return "static_batch_throughput"
    return row.metric


@dataclass(frozen=True, slots=True)
class RowResult:
    row: Measurement
    predicted: float  # with the shipped engine constants
    held_out: float  # by a fit that never saw the row's source (equal to `predicted` for unfitted sources)
    fitted: bool  # the row's source is among the engine fit's sources

    @property
    def error_pct(self) -> float:
        """Signed error of the prediction, in percent of the measurement (latency for speeds)."""
        return _error_pct(self.row, self.predicted)

    @property
    def held_out_error_pct(self) -> float:
        return _error_pct(self.row, self.held_out)


def _error_pct(row: Measurement, predicted: float) -> float:
    if row.metric in RECIPROCAL:
        return (row.value / predicted - 1) * 100
    return (predicted / row.value - 1) * 100


@dataclass(frozen=True, slots=True)
class Stats:
    rows: int
    median_abs_pct: float
    bias_pct: float  # median signed error: positive = predictions too high
    within_10_pct: float  # share of rows, percent
    within_25_pct: float

    @classmethod
    def of(cls, errors: list[float]) -> Stats:
        absolute = [abs(e) for e in errors]
        return cls(
            rows=len(errors),
            median_abs_pct=statistics.median(absolute),
            bias_pct=statistics.median(errors),
            within_10_pct=100 * sum(a <= 10 for a in absolute) / len(errors),
            within_25_pct=100 * sum(a <= 25 for a in absolute) / len(errors),
        )


@dataclass(frozen=True)
class ValidationResults:
    predicted: list[RowResult]
    skipped: list[tuple[Measurement, str]] = field(default_factory=list)

    def skip_reasons(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.skipped).most_common())

    def by_source(self) -> dict[tuple[str, str], tuple[Stats, Stats, bool]]:
        """(in-sample stats, leave-one-source-out stats, fitted) per (source, metric)."""
        groups: dict[tuple[str, str], list[RowResult]] = defaultdict(list)
        for result in self.predicted:
            groups[(result.row.source, row_kind(result.row))].append(result)
        return {key: _both(results) for key, results in sorted(groups.items())}

    def by_metric(self) -> dict[str, tuple[Stats, Stats, bool]]:
        groups: dict[str, list[RowResult]] = defaultdict(list)
        for result in self.predicted:
            groups[row_kind(result.row)].append(result)
        return {metric: _both(results) for metric, results in sorted(groups.items())}


def _both(results: list[RowResult]) -> tuple[Stats, Stats, bool]:
    return (
        Stats.of([r.error_pct for r in results]),
        Stats.of([r.held_out_error_pct for r in results]),
        any(r.fitted for r in results),
    )


def validate_all(catalog: Catalog) -> ValidationResults:
    """Predict every expressible row with the catalog's constants, and again by leave-one-source-out fits."""
    predicted: list[RowResult] = []
    skipped: list[tuple[Measurement, str]] = []
    engines = sorted({row.engine for row in load_measurements()})
    for engine in engines:
        if engine not in catalog.engines or engine not in catalog.calibrations:
            skipped += [(row, f"engine {engine} has no profile") for row in load_measurements() if row.engine == engine]
            continue
        data, engine_skipped = engine_rows(catalog, engine)
        skipped += engine_skipped
        if not data.rows:
            continue
        constants = catalog.calibration(engine).constants
        shipped = data.predicted_s(np.array([constants.iteration_overhead_s, constants.per_seq_overhead_s]))
        held_out = leave_one_source_out_s(data, engine)
        fitted = fit_rows_mask(data)
        for prepared, in_sample_s, held_s, was_fitted in zip(data.rows, shipped, held_out, fitted, strict=True):
            row = prepared.row
            predicted.append(
                RowResult(
                    row=row,
                    predicted=as_time(row.metric, in_sample_s),
                    held_out=as_time(row.metric, held_s),
                    fitted=bool(was_fitted),
                )
            )
    return ValidationResults(predicted=predicted, skipped=skipped)
