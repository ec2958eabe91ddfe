"""`tdplan validate`: predict every published measurement the model can express and measure the error."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from planner.specs.catalog import Catalog
from planner.validation.measurements import Measurement, load_measurements
from planner.validation.predict import Prepared, predict, prepare

# What each metric is called in the summary, and whether its error is taken on the reciprocal: a batch-1
# generation speed (tokens/s) is reported as the error of the per-token latency it implies.
METRIC_LABELS = {
    "output_throughput_tok_s": "offline throughput",
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
    predicted: float

    @property
    def error_pct(self) -> float:
        """Signed error of the prediction, in percent of the measurement (latency for speeds)."""
        if self.row.metric in RECIPROCAL:
            return (self.row.value / self.predicted - 1) * 100
        return (self.predicted / self.row.value - 1) * 100


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

    def by_source(self) -> dict[tuple[str, str], Stats]:
        groups: dict[tuple[str, str], list[float]] = defaultdict(list)
        for result in self.predicted:
            groups[(result.row.source, row_kind(result.row))].append(result.error_pct)
        return {key: Stats.of(errors) for key, errors in sorted(groups.items())}

    def by_metric(self) -> dict[str, Stats]:
        groups: dict[str, list[float]] = defaultdict(list)
        for result in self.predicted:
            groups[row_kind(result.row)].append(result.error_pct)
        return {metric: Stats.of(errors) for metric, errors in sorted(groups.items())}


def validate_all(catalog: Catalog) -> ValidationResults:
    """Predict every expressible row with the catalog's calibration for its engine and GPU family."""
    predicted, skipped = [], []
    for row in load_measurements():
        if row.engine not in catalog.calibrations or row.gpu not in catalog.gpus:
            skipped.append((row, "GPU or engine not in catalog"))
            continue
        calibration, _ = catalog.calibration(row.engine).for_architecture(catalog.gpus[row.gpu].architecture)
        prepared = prepare(row, catalog, calibration)
        if isinstance(prepared, Prepared):
            predicted.append(RowResult(row=row, predicted=predict(prepared, calibration)))
        else:
            skipped.append((row, prepared))
    return ValidationResults(predicted=predicted, skipped=skipped)
