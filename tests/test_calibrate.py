"""The engine fit (`planner.validation.calibrate`): predictions are linear in the two engine constants, the fit
recovers constants it did not see from rows generated with them, and fails loudly at a bound."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from planner.errors import PlannerError
from planner.specs.catalog import load_catalog
from planner.specs.engine import EngineConstants
from planner.validation.calibrate import EngineRows, fit_constants, is_latency_row
from planner.validation.measurements import load_measurements
from planner.validation.predict import Prepared, predict, predicted_time_s, prepare

TRUTH = EngineConstants(iteration_overhead_s=1.5e-3, per_seq_overhead_s=20e-6)


def _latency_rows(engine: str, every: int = 6) -> list[Prepared]:
    catalog = load_catalog()
    rows = [r for r in load_measurements() if r.engine == engine and is_latency_row(r)][::every]
    return [p for p in (prepare(r, catalog) for r in rows) if isinstance(p, Prepared)]


def _synthetic(rows: list[Prepared], constants: EngineConstants) -> list[Prepared]:
    """The rows with their values replaced by the model's own predictions under `constants`."""
    return [dataclasses.replace(p, row=dataclasses.replace(p.row, value=predict(p, constants))) for p in rows]


def test_predicted_times_are_linear_in_the_constants() -> None:
    """time(a, b) = base + a x d_a + b x d_b: the design read off at unit steps predicts any other point."""
    rows = _latency_rows("trtllm", every=20)
    data = EngineRows.build(rows)
    theta = np.array([TRUTH.iteration_overhead_s, TRUTH.per_seq_overhead_s])
    direct = np.array([predicted_time_s(p, TRUTH) for p in rows])
    np.testing.assert_allclose(data.predicted_s(theta), direct, rtol=1e-9)


@pytest.mark.parametrize("engine", ["trtllm", "vllm"])
def test_fit_recovers_the_constants_that_generated_the_rows(engine: str) -> None:
    data = EngineRows.build(_synthetic(_latency_rows(engine), TRUTH))
    result = fit_constants(data, engine)
    assert result.constants.iteration_overhead_s == pytest.approx(TRUTH.iteration_overhead_s, rel=1e-3)
    assert result.constants.per_seq_overhead_s == pytest.approx(TRUTH.per_seq_overhead_s, rel=1e-3)
    assert result.median_abs_pct_error < 1e-3


def test_a_constant_at_its_bound_fails_loudly() -> None:
    """Rows generated with no per-sequence work drive that constant to zero: the fit refuses."""
    zero_per_seq = EngineConstants(iteration_overhead_s=1e-3, per_seq_overhead_s=0.0)
    data = EngineRows.build(_synthetic(_latency_rows("trtllm"), zero_per_seq))
    with pytest.raises(PlannerError, match="per_seq_overhead_s fitted to a bound"):
        fit_constants(data, "trtllm")
