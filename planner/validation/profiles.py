"""Compare the model's forward time with a measured forward-time profile (tokens in a batch -> milliseconds).

TD-Pipe (MLSysU/TD-Pipe, profiler-results) ships such profiles for an NVIDIA L20: `Total Length, Execute Time`
with the whole model's forward time in ms for 1..2048 batched tokens; TD-Pipe uses the same table for prefill
(tokens = prompt length) and decode (tokens = batch size). The files are a third party's: tdplan reads them
where the user keeps them and never ships copies.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

from planner.cost.iteration import stage_cost
from planner.cost.ops import BatchShape
from planner.specs.deployment import Deployment


@dataclass(frozen=True, slots=True)
class ProfilePoint:
    tokens: int
    measured_s: float
    prefill_s: float  # predicted: one prompt of `tokens` tokens
    decode_s: float  # predicted: a decode step of `tokens` sequences at a short context

    @property
    def prefill_error_pct(self) -> float:
        return (self.prefill_s / self.measured_s - 1) * 100


def load_forward_profile(path: Path) -> list[tuple[int, float]]:
    """(tokens, seconds) pairs from a `Total Length, Execute Time` CSV in milliseconds."""
    with path.open(newline="") as handle:
        return [(int(row["Total Length"]), float(row["Execute Time"]) / 1e3) for row in csv.DictReader(handle)]


def compare_forward_profile(
    deployment: Deployment, profile: list[tuple[int, float]], decode_context: int = 128
) -> list[ProfilePoint]:
    """Predicted forward time (model layers and head, no engine overhead) at each profiled token count."""
    return [
        ProfilePoint(
            tokens=tokens,
            measured_s=seconds,
            prefill_s=stage_cost(deployment, BatchShape.prefill(tokens)).time_s,
            decode_s=stage_cost(deployment, BatchShape.decode(tokens, decode_context)).time_s,
        )
        for tokens, seconds in profile
    ]


def median_abs_error_pct(points: list[ProfilePoint]) -> float:
    return statistics.median(abs(p.prefill_error_pct) for p in points)
