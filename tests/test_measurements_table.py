"""Checks on the shipped measurement tables (planner/data/*.csv), built by scripts/compile_measurements.py.

Only the shipped files are read; the expected literals below were read by hand from the published sources.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from planner.specs.catalog import load_catalog

DATA_DIR = Path(__file__).resolve().parent.parent / "planner" / "data"

MEASUREMENT_COLUMNS = [
    "id", "source", "source_locator", "engine", "engine_version", "gpu", "num_gpus", "tp", "pp", "model",
    "dtype", "kv_dtype", "input_len", "output_len", "dataset", "scenario", "concurrency", "metric", "value",
    "unit", "assumptions",
]  # fmt: skip
MICRO_COLUMNS = [
    "id", "source", "source_locator", "gpu", "metric", "value", "unit", "conditions", "assumptions",
]  # fmt: skip

# Every GPU and model a row names must be in the shipped catalogs, so the validator can express it.
CATALOG = load_catalog(Path(__file__).resolve().parents[1])
GPUS = set(CATALOG.gpus)
MODELS = set(CATALOG.models)
ENGINES = {"trtllm", "vllm", "sglang", "lmdeploy", "other"}
WEIGHT_DTYPES = {"bf16", "fp16", "fp8", "int8", "int4"}
KV_DTYPES = {"bf16", "fp16", "fp8", "int8"}
METRIC_UNITS = {
    "output_throughput_tok_s": "tokens/s",
    "single_output_tok_s": "tokens/s",
    "single_total_tok_s": "tokens/s",
    "ttft_s": "s",
    "tpot_s": "s",
    "itl_s": "s",
    "forward_time_s": "s",
    "batch_latency_s": "s",
}
SCENARIOS = {"offline", "static-batch", "concurrency", "single", "forward"}
MICRO_METRIC_UNITS = {
    "gemm_tflops_fp16": "TFLOPS",
    "gemm_tflops_fp8": "TFLOPS",
    "hbm_stream_copy_gb_s": "GB/s",
    "hbm_stream_triad_gb_s": "GB/s",
    "h2d_bandwidth_gb_s": "GB/s",
    "nccl_allreduce_busbw_gb_s": "GB/s",
}


def _read(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with (DATA_DIR / name).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def measurements() -> list[dict[str, str]]:
    return _read("measurements.csv")[1]


@pytest.fixture(scope="module")
def micro() -> list[dict[str, str]]:
    return _read("microbenchmarks.csv")[1]


def _by_id(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in rows}


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[1-9]\d*", text) is not None


# ---- measurements.csv: structure ------------------------------------------------------------------


def test_measurement_columns_exact() -> None:
    assert _read("measurements.csv")[0] == MEASUREMENT_COLUMNS


def test_measurement_ids_unique_and_well_formed(measurements: list[dict[str, str]]) -> None:
    ids = [row["id"] for row in measurements]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"(M|ARG)\d{4}", i) for i in ids)  # compilation rows M, Argonne rows ARG
    assert len(measurements) > 900


def test_measurement_categorical_columns(measurements: list[dict[str, str]]) -> None:
    for row in measurements:
        assert row["gpu"] in GPUS, row["id"]
        assert row["model"] in MODELS, row["id"]
        assert row["engine"] in ENGINES, row["id"]
        assert row["dtype"] in WEIGHT_DTYPES, row["id"]
        assert row["kv_dtype"] in KV_DTYPES, row["id"]
        assert row["source"] and row["source_locator"], row["id"]


def test_measurement_values_positive_and_units_match_metric(measurements: list[dict[str, str]]) -> None:
    for row in measurements:
        assert float(row["value"]) > 0, row["id"]
        assert METRIC_UNITS[row["metric"]] == row["unit"], row["id"]


def test_scenarios_and_concurrency(measurements: list[dict[str, str]]) -> None:
    for row in measurements:
        scenario = row["scenario"]
        assert scenario in SCENARIOS or re.fullmatch(r"rate:\d+(\.\d+)?", scenario), row["id"]
        if scenario in ("static-batch", "concurrency"):
            assert _is_int(row["concurrency"]), row["id"]
        elif scenario == "single":
            assert row["concurrency"] == "1", row["id"]
        else:
            assert row["concurrency"] == "", row["id"]
        if row["metric"] in ("ttft_s", "single_output_tok_s", "single_total_tok_s"):
            assert scenario == "single", row["id"]
        assert (scenario == "forward") == (row["metric"] == "forward_time_s"), row["id"]


def test_parallelism_consistent(measurements: list[dict[str, str]]) -> None:
    for row in measurements:
        assert _is_int(row["num_gpus"]) and _is_int(row["tp"]) and _is_int(row["pp"]), row["id"]
        assert int(row["tp"]) * int(row["pp"]) == int(row["num_gpus"]), row["id"]


def test_lengths_match_dataset(measurements: list[dict[str, str]]) -> None:
    for row in measurements:
        if row["dataset"] == "fixed":
            assert _is_int(row["input_len"]), row["id"]
            assert row["output_len"] == "" if row["scenario"] == "forward" else _is_int(row["output_len"])
        else:
            assert row["dataset"] in ("sharegpt", "openorca"), row["id"]
            assert row["input_len"] == row["output_len"] == "", row["id"]


def test_trtllm_fp8_kv_rule(measurements: list[dict[str, str]]) -> None:
    """KV dtype for TRT-LLM FP8 rows was not read: fp8 from v0.11 on, fp16 before, always stated."""
    for row in measurements:
        if row["engine"] != "trtllm" or row["dtype"] != "fp8":
            continue
        version = tuple(int(part) for part in row["engine_version"].split("."))
        assert row["kv_dtype"] == ("fp8" if version >= (0, 11) else "fp16"), row["id"]
        assert "KV dtype not read" in row["assumptions"], row["id"]


# ---- measurements.csv: hand-read literals ---------------------------------------------------------


def test_m0004_trtllm_v010_a100(measurements: list[dict[str, str]]) -> None:
    row = _by_id(measurements)["M0004"]
    assert (row["engine"], row["engine_version"], row["gpu"], row["model"]) == (
        "trtllm",
        "0.10.0",
        "a100-sxm-80gb",
        "llama-2-7b",
    )
    assert (row["dtype"], row["kv_dtype"], row["input_len"], row["output_len"]) == (
        "fp16",
        "fp16",
        "128",
        "128",
    )
    assert (row["num_gpus"], row["tp"], row["pp"], row["dataset"]) == ("1", "1", "1", "fixed")
    assert (row["scenario"], row["metric"], row["unit"]) == ("offline", "output_throughput_tok_s", "tokens/s")
    assert float(row["value"]) == pytest.approx(5303.5)


def test_v090_per_gpu_throughput_is_multiplied_to_group_total(measurements: list[dict[str, str]]) -> None:
    # v0.9.0 static table, H100 FP8, LLaMA 70B, BS=1024, TP=2, 128/128: 3214 out tok/s/GPU.
    row = _by_id(measurements)["M1300"]
    assert (row["gpu"], row["model"], row["tp"], row["dtype"]) == ("h100-sxm", "llama-2-70b", "2", "fp8")
    assert (row["scenario"], row["concurrency"]) == ("static-batch", "1024")
    assert float(row["value"]) == pytest.approx(2 * 3214)
    assert "multiplied by num_gpus=2" in row["assumptions"]


def test_v061_ambiguous_tables_are_marked(measurements: list[dict[str, str]]) -> None:
    # v0.6.1 A100 FP16 table (unit 'out tok/s'), LLaMA 70B BS=1280 TP=4 128/128: 670.
    rows = _by_id(measurements)
    row = rows["M1275"]
    assert "v0.6.1" in row["source"] and "ambiguous" in row["source"]
    assert "per-GPU vs total ambiguous" in row["assumptions"]
    assert float(row["value"]) == pytest.approx(4 * 670)
    assert row["gpu"] == "a100-sxm-80gb" and "assumed" in row["assumptions"]
    # The same doc's H100 table says /GPU explicitly, so it is not marked.
    assert "ambiguous" not in rows["M1263"]["source"]
    assert float(rows["M1263"]["value"]) == pytest.approx(2 * 2657)


def test_ttft_row_converted_to_seconds(measurements: list[dict[str, str]]) -> None:
    # v0.9.0 'Low Latency' table, H200 FP8, LLaMA 7B, ISL=128: 5.7 ms.
    row = _by_id(measurements)["M1320"]
    assert (row["gpu"], row["metric"], row["unit"], row["scenario"]) == ("h200-sxm", "ttft_s", "s", "single")
    assert (row["input_len"], row["output_len"]) == ("128", "1")
    assert float(row["value"]) == pytest.approx(0.0057)


def test_qwen25_speed_row(measurements: list[dict[str, str]]) -> None:
    # Qwen2.5-7B-Instruct BF16 on A100 80GB, vLLM 0.6.3, input length 1: 84.28 tokens/s.
    row = _by_id(measurements)["M1661"]
    assert row["source"] == "Qwen2.5 speed benchmark (vLLM 0.6.3)"
    assert (row["engine"], row["engine_version"], row["gpu"], row["model"]) == (
        "vllm",
        "0.6.3",
        "a100-sxm-80gb",
        "qwen2.5-7b",
    )
    assert (row["dtype"], row["kv_dtype"], row["input_len"], row["output_len"]) == (
        "bf16",
        "bf16",
        "1",
        "2048",
    )
    assert (row["metric"], row["scenario"]) == ("single_output_tok_s", "single")
    assert float(row["value"]) == pytest.approx(84.28)
    assert "SXM4 assumed" in row["assumptions"] and "formula" in row["assumptions"]


def test_lambda_latency_is_itl_with_ambiguity(measurements: list[dict[str, str]]) -> None:
    # Lambda vLLM 0.5.4, Llama-3.1-8B FP8 on 1x A100-80GB-SXM: 1517.54 tok/s / 42.85 ms.
    rows = _by_id(measurements)
    tput, lat = rows["M1575"], rows["M1576"]
    assert (tput["metric"], tput["dataset"], tput["input_len"]) == ("output_throughput_tok_s", "sharegpt", "")
    assert float(tput["value"]) == pytest.approx(1517.54)
    assert (lat["metric"], lat["unit"], lat["dtype"]) == ("itl_s", "s", "fp8")
    assert float(lat["value"]) == pytest.approx(0.04285)
    assert "mean vs median not stated" in lat["assumptions"]


def test_tdpipe_forward_rows(measurements: list[dict[str, str]]) -> None:
    rows = [row for row in measurements if row["scenario"] == "forward"]
    assert [row["id"] for row in rows] == ["M1744", "M1745", "M1746", "M1747"]
    first = rows[0]
    assert (first["gpu"], first["model"], first["engine"], first["input_len"]) == (
        "l20",
        "llama-2-13b",
        "vllm",
        "256",
    )
    assert float(first["value"]) == pytest.approx(0.06997510528564453)
    assert "ms inferred" in first["assumptions"] and "whole model" in first["assumptions"]


def test_unmappable_rows_are_absent(measurements: list[dict[str, str]]) -> None:
    ids = set(_by_id(measurements))
    assert "M1607" not in ids  # Lambda v0.5.4 vs v0.6.0 table: GPU unconfirmed
    assert "M1708" not in ids  # TRT-LLM #1144: 'LLaMa 13B', not said to be Llama-2
    assert "M1710" not in ids  # AIMultiple: H100 form factor not stated
    assert "M1731" not in ids  # Azure end-to-end: tokens/s undefined


# ---- microbenchmarks.csv --------------------------------------------------------------------------


def test_micro_columns_ids_and_units(micro: list[dict[str, str]], measurements: list[dict[str, str]]) -> None:
    assert _read("microbenchmarks.csv")[0] == MICRO_COLUMNS
    ids = [row["id"] for row in micro]
    assert len(ids) == len(set(ids)) and not set(ids) & set(_by_id(measurements))
    for row in micro:
        assert row["gpu"] in GPUS, row["id"]
        assert MICRO_METRIC_UNITS[row["metric"]] == row["unit"], row["id"]
        assert float(row["value"]) > 0, row["id"]
        if row["metric"].startswith("gemm_"):
            assert re.search(r"m=\d+,n=\d+,k=\d+", row["conditions"]), row["id"]
        if row["metric"] == "nccl_allreduce_busbw_gb_s":
            assert re.search(r"gpus=\d+; message=", row["conditions"]), row["id"]


def test_micro_literals(micro: list[dict[str, str]]) -> None:
    rows = _by_id(micro)
    gemm = rows["M1713"]  # ND A100 v4, cuBLASLt FP16 8192^3: 253.7 TFLOPS
    assert (gemm["gpu"], gemm["metric"]) == ("a100-sxm-80gb", "gemm_tflops_fp16")
    assert float(gemm["value"]) == pytest.approx(253.7) and "m=8192,n=8192,k=8192" in gemm["conditions"]
    stream = rows["M1725"]  # ND H200 v5, STREAM copy 4.01 TB/s
    assert (stream["gpu"], stream["metric"]) == ("h200-sxm", "hbm_stream_copy_gb_s")
    assert float(stream["value"]) == pytest.approx(4010)
    nccl = rows["M1704"]  # nccl #1639, 8x RTX 5090 over PCIe: 28 GB/s
    assert (nccl["gpu"], nccl["metric"]) == ("rtx-5090", "nccl_allreduce_busbw_gb_s")
    assert float(nccl["value"]) == pytest.approx(28) and "gpus=8" in nccl["conditions"]


def test_no_local_paths_in_tables(measurements: list[dict[str, str]], micro: list[dict[str, str]]) -> None:
    for row in measurements + micro:
        for cell in row.values():
            assert not re.search(r"/work/|/home/|/tmp/|/Users/", cell), row["id"]
