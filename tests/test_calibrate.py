"""The calibration fit recovers constants it did not see, from rows generated with them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from planner.specs.catalog import load_catalog
from planner.specs.engine import Calibration
from planner.validation.calibrate import _fit, microbenchmark_priors
from planner.validation.measurements import load_measurements
from planner.validation.predict import Prepared, predict, prepare

TRUTH = Calibration(
    compute_eff=0.72,
    gemm_ridge_scale=0.3,
    memory_bw_eff=0.83,
    attention_bw_eff=0.7,
    comm_bw_eff=0.9,
    iteration_overhead_s=0.0008,
    layer_overhead_s=20e-6,
    seq_layer_overhead_s=5e-8,
    fitted_rows=0,
)


def _synthetic_rows() -> list[Prepared]:
    """Hopper TensorRT-LLM v0.13 rows (varied lengths, TP and precisions) whose values are replaced by the
    model's own predictions under TRUTH."""
    catalog = load_catalog()
    rows = [r for r in load_measurements() if r.engine_version == "0.13.0" and r.gpu == "h100-sxm"][::2]
    prepared = [p for p in (prepare(r, catalog, TRUTH) for r in rows) if isinstance(p, Prepared)]
    return [dataclasses.replace(p, row=dataclasses.replace(p.row, value=predict(p, TRUTH))) for p in prepared]


def test_fit_recovers_the_constants_that_generated_the_rows() -> None:
    rows = _synthetic_rows()
    assert len(rows) >= 15
    prior = np.array([0.6, 100.0, 0.75, 0.75, 0.0, 0.0, 0.0])
    theta, errors = _fit(rows, prior, TRUTH.comm_bw_eff)
    fitted = dict(zip(("compute_eff", "gemm_ridge_scale", "memory_bw_eff", "attention_bw_eff"), theta, strict=False))
    assert max(errors) < 3.0  # percent: the rows are reproduced (priors and the evaluation cap keep it inexact)
    assert fitted["compute_eff"] == pytest.approx(TRUTH.compute_eff, rel=0.05)
    # The prior (0.75, worth one row) pulls bandwidth efficiency a little, as intended for sparse data.
    assert fitted["memory_bw_eff"] == pytest.approx(TRUTH.memory_bw_eff, rel=0.08)


def test_microbenchmark_priors_are_shares_of_peak() -> None:
    """Large cuBLAS GEMMs reach 60-85% of the dense peak, STREAM copy 75-85% of datasheet bandwidth
    (Azure AI-benchmarking-guide: A100 253.7 of 312 TFLOPS, 1610 of 2039 GB/s; H200 4010 of 4800 GB/s)."""
    priors = microbenchmark_priors(load_catalog())
    assert 0.6 < priors["compute_eff"] < 0.85
    assert 0.75 < priors["memory_bw_eff"] < 0.85
    assert 0.5 < priors["comm_bw_eff"] <= 1.0
