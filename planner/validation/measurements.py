"""The published measurements shipped with the package (`planner/data/*.csv`).

`measurements.csv` is compiled by `scripts/compile_measurements.py` from our compilation of public sources
(TensorRT-LLM performance docs, vLLM and Qwen benchmark reports, the TD-Pipe profiler results); every row keeps
its source, locator and the assumptions made to express it.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Measurement:
    """One published number and the conditions it was measured under."""

    id: str
    source: str
    source_locator: str
    engine: str
    engine_version: str
    gpu: str
    num_gpus: int
    tp: int
    pp: int
    model: str
    dtype: str
    kv_dtype: str
    input_len: int | None
    output_len: int | None
    dataset: str
    scenario: str
    concurrency: float | None
    metric: str
    value: float
    unit: str
    assumptions: str


def _int(text: str) -> int | None:
    return int(float(text)) if text.strip() else None


def _read(name: str) -> list[dict[str, str]]:
    text = resources.files("planner.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


@functools.cache
def load_measurements() -> tuple[Measurement, ...]:
    """Every row of the shipped measurements table."""
    rows = []
    for raw in _read("measurements.csv"):
        rows.append(
            Measurement(
                id=raw["id"],
                source=raw["source"],
                source_locator=raw["source_locator"],
                engine=raw["engine"],
                engine_version=raw["engine_version"],
                gpu=raw["gpu"],
                num_gpus=int(raw["num_gpus"]),
                tp=int(raw["tp"] or 1),
                pp=int(raw["pp"] or 1),
                model=raw["model"],
                dtype=raw["dtype"],
                kv_dtype=raw["kv_dtype"],
                input_len=_int(raw["input_len"]),
                output_len=_int(raw["output_len"]),
                dataset=raw["dataset"],
                scenario=raw["scenario"],
                concurrency=float(raw["concurrency"]) if raw["concurrency"].strip() else None,
                metric=raw["metric"],
                value=float(raw["value"]),
                unit=raw["unit"],
                assumptions=raw["assumptions"],
            )
        )
    return tuple(rows)


@functools.cache
def engine_gpu_metrics() -> tuple[tuple[str, str, str], ...]:
    """(engine, gpu, metric) of every row of the measurements table: what choosing the default engine counts
    (planner.estimation.default_engine), read without building every row (a third of the time)."""
    reader = csv.reader(
        io.StringIO(
            resources.files("planner.data").joinpath("measurements.csv").read_text(encoding="utf-8"), newline=""
        )
    )
    header = next(reader)
    engine, gpu, metric = header.index("engine"), header.index("gpu"), header.index("metric")
    return tuple((row[engine], row[gpu], row[metric]) for row in reader)
