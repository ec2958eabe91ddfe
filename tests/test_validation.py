"""Accuracy against published measurements: today's figures, guarded against regressions.

The bounds sit a little above what `tdplan validate` printed when they were set (see docs/validation.md);
they are not targets. Tighten them when the model improves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.specs.catalog import load_catalog
from planner.specs.hardware import Cluster
from planner.specs.precision import Dtype
from planner.validation.profiles import compare_forward_profile, load_forward_profile, median_abs_error_pct
from planner.validation.report import markdown_page
from planner.validation.validate import ValidationResults, validate_all

TDPIPE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tdpipe_l20"


@pytest.fixture(scope="module")
def results() -> ValidationResults:
    return validate_all(load_catalog())


@pytest.mark.parametrize(
    ("kind", "today_pct", "bound_pct"),
    [
        # held-out figures: never fitted (throughput tables) or leave-one-source-out (latency rows)
        ("output_throughput_tok_s", 15.4, 17.0),  # offline throughput, TensorRT-LLM v0.10-v0.14, 871 rows
        ("static_batch_throughput", 23.7, 26.0),  # static-batch throughput tables, TensorRT-LLM v0.5-v0.9
        ("batch_latency_s", 9.7, 11.0),  # Argonne static batches on A100, vLLM and TensorRT-LLM, batch 1-64
        ("single_output_tok_s", 4.7, 6.0),  # batch-1 decode latency, Qwen2.5 on A100 (vLLM)
        ("ttft_s", 8.1, 10.0),  # batch-1 TTFT, TensorRT-LLM v0.5/v0.9
        ("forward_time_s", 1.7, 3.0),  # TD-Pipe L20 forward-time rows (the L20 compute scale is fitted on them)
    ],
)
def test_median_error_per_metric_stays_at_todays_level(
    results: ValidationResults, kind: str, today_pct: float, bound_pct: float
) -> None:
    _, held_out, _ = results.by_metric()[kind]
    assert held_out.median_abs_pct <= bound_pct, f"today {today_pct}%, now {held_out.median_abs_pct:.1f}%"
    assert abs(held_out.bias_pct) <= bound_pct


def test_every_row_with_known_lengths_and_metric_is_predicted(results: ValidationResults) -> None:
    """Only rows whose dataset has no fixed lengths, or whose metric is not modelled, are skipped; a
    configuration that was measured is never predicted not to fit."""
    reasons = results.skip_reasons()
    assert "predicted not to fit in memory" not in reasons
    assert set(reasons) <= {
        "variable-length dataset (sharegpt) without lengths",
        "metric itl_s not modelled",
        "static batch larger than the predicted KV cache",
    }
    assert reasons.get("static batch larger than the predicted KV cache", 0) <= 40
    assert len(results.predicted) >= 1500


def test_markdown_page_has_a_row_per_source(results: ValidationResults) -> None:
    page = markdown_page(results)
    for source, _ in results.by_source():
        assert f"| {source} |" in page


@pytest.mark.skipif(not TDPIPE.is_dir(), reason="TD-Pipe L20 profiles not present beside the repository")
@pytest.mark.parametrize(
    ("model", "file", "bound_pct", "growth"),
    [
        ("llama-2-13b", "tdpipe-L20-Llama-13B.csv", 4.5, 8.0),  # today 3.7%
        ("qwen2.5-32b", "tdpipe-L20-Qwen2.5-32B.csv", 4.5, 8.0),  # today 3.6%
        ("opt-125m", "tdpipe-L20-opt-125m.csv", 25.0, 2.0),  # today 22.8%: per-pass host costs dominate 125M
    ],
)
def test_l20_forward_time_follows_the_tdpipe_profile(model: str, file: str, bound_pct: float, growth: float) -> None:
    """Whole-model forward time on one L20 against TD-Pipe's profiler results (1..2048 batched tokens)."""
    catalog = load_catalog()
    cluster = Cluster(gpu=catalog.gpu("l20"), num_gpus=1, gpus_per_node=8)
    engine = catalog.engine("vllm")
    deployment = catalog.deployment(catalog.models[model], cluster, 1, 1, Dtype.fp16, Dtype.fp16, engine)
    points = compare_forward_profile(deployment, load_forward_profile(TDPIPE / file))
    assert len(points) >= 2000
    assert median_abs_error_pct(points) <= bound_pct
    # The curve is flat while weights stream and linear once compute-bound: 2048 tokens take `growth` times
    # what 1 token takes or more, measured and predicted alike.
    first, last = points[0], points[-1]
    assert last.prefill_s / first.prefill_s > growth and last.measured_s / first.measured_s > growth


def test_validation_page_is_what_validate_writes(results: ValidationResults) -> None:
    """docs/validation.md is `tdplan validate --markdown docs/validation.md`, today."""
    from planner.validation.kernel_profiles import kernel_error_rows

    catalog = load_catalog()
    page = markdown_page(results, kernel_error_rows(catalog.gpus, catalog.kernels))
    docs = Path(__file__).resolve().parents[1] / "docs" / "validation.md"
    assert docs.read_text() == page, "run tdplan validate --markdown docs/validation.md"
