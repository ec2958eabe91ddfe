"""The shipped kernel microbenchmark tables (planner/data/microbench/*.csv.gz) and the GPU facts the fit needs.

The tables are a column subset of the microbenchmarks converted from NVIDIA AIConfigurator
(aiconfigurator-core 0.12.0, Apache-2.0), written by `scripts/build_kernel_data.py`; units and subset rules are
in planner/data/microbench/README.md. Latencies are seconds per call.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from planner.errors import PlannerError
from planner.specs.hardware import GB, TERA, Frozen, GpuSpec

Columns = dict[str, NDArray[Any]]

TABLES = ("gemm", "attention_decode", "attention_prefill", "quantize", "allreduce", "systems")
_TEXT_COLUMNS = {
    "gpu", "engine", "engine_version", "dtype", "kv_dtype", "device_name", "intra_node_link", "source",
}  # fmt: skip

# Microbenchmark GPU name -> catalog GPU id (b60, an Intel XPU, has no catalog entry).
CATALOG_ID: dict[str, str] = {
    "a100-sxm-80g": "a100-sxm-80gb",
    "h100-sxm": "h100-sxm",
    "h200-sxm": "h200-sxm",
    "l40s": "l40s",
    "b200": "b200",
    "gb200": "gb200",
    "rtx-pro-6000": "rtx-pro-6000",
}

# L2 cache per microbenchmark GPU, bytes (MB = 1e6 here; the threshold below is a multiple, so the unit's
# precision does not matter). Sources: A100 40 MB, NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020);
# H100/H200 50 MB, NVIDIA H100 Tensor Core GPU Architecture whitepaper (GH100 as shipped in H100 SXM5; H200 is
# the same die); L40S 96 MB, NVIDIA Ada GPU Architecture whitepaper (AD102) and the microbenchmark README's
# caveat 3; RTX PRO 6000 128 MB, NVIDIA RTX Blackwell GPU Architecture whitepaper (GB202) and the same caveat;
# B200/GB200 126 MB, public architecture analyses (NVIDIA's datasheet states none; 128 MB used, rounding up);
# B60 18 MB, Intel Arc Pro B-series product specifications (BMG-G21).
L2_BYTES: dict[str, float] = {
    "a100-sxm-80g": 40e6,
    "h100-sxm": 50e6,
    "h200-sxm": 50e6,
    "l40s": 96e6,
    "b200": 128e6,
    "gb200": 128e6,
    "rtx-pro-6000": 128e6,
    "b60": 18e6,
}
L2_RESIDENT_MULTIPLE = 4.0  # a working set under 4x L2 may be served partly from L2 (caveat 3): not for bandwidth
GEMM_BANDWIDTH_MIN_WEIGHT_BYTES = 2.0**28  # 256 MiB: smaller weights hit L2 in part (caveat 3)


@functools.cache
def load_table(name: str) -> Columns:
    """One shipped table as columns: text columns as str arrays, the others as float64."""
    if name not in TABLES:
        raise PlannerError(f"unknown microbenchmark table '{name}': choose one of {', '.join(TABLES)}")
    raw = resources.files("planner.data").joinpath("microbench").joinpath(f"{name}.csv.gz").read_bytes()
    reader = csv.reader(io.StringIO(gzip.decompress(raw).decode("utf-8")))
    header = next(reader)
    rows = list(reader)
    out: Columns = {}
    for i, column in enumerate(header):
        values = [r[i] for r in rows]
        if column in _TEXT_COLUMNS:
            out[column] = np.array(values, dtype=str)
        else:
            out[column] = np.array([float(v) if v else np.nan for v in values], dtype=float)
    return out


def select(table: Columns, mask: NDArray[np.bool_]) -> Columns:
    """The rows of `table` where `mask` holds."""
    return {k: v[mask] for k, v in table.items()}


class FitGpu(Frozen):
    """What the fit needs to know about one microbenchmark GPU, in SI units.

    Peaks come from the catalog GPU file when there is one (the cost model divides by the same peaks), else
    from the microbenchmark's systems table (AIC's system YAML values)."""

    name: str  # microbenchmark name
    catalog_id: str | None
    memory_bw_bytes_s: float
    bf16_flops_s: float
    fp8_flops_s: float | None
    fp4_flops_s: float | None
    int8_ops_s: float | None
    link_bw_bytes_s: float  # intra-node link per GPU per direction
    l2_bytes: float

    def gemm_peak_flops_s(self, fmt: str) -> float | None:
        """Peak of the tensor-core rate a GEMM in `fmt` runs at; None if the GPU lacks it.

        W8A8 fp8 (per tensor or block scaled) runs at the fp8 rate, NVFP4 at the fp4 rate, SmoothQuant int8 at
        the int8 rate; weight-only int8/int4 dequantise to 16 bits and run at the bf16 rate."""
        return {
            "bf16": self.bf16_flops_s,
            "fp8": self.fp8_flops_s,
            "fp8_block": self.fp8_flops_s,
            "nvfp4": self.fp4_flops_s,
            "int8_sq": self.int8_ops_s,
            "int8_wo": self.bf16_flops_s,
            "int4_wo": self.bf16_flops_s,
        }.get(fmt)


def fit_gpu(name: str, catalog_gpus: dict[str, GpuSpec]) -> FitGpu:
    """Facts of microbenchmark GPU `name`, from its catalog file if any, else from the systems table."""
    catalog_id = CATALOG_ID.get(name)
    spec = catalog_gpus.get(catalog_id) if catalog_id else None
    if spec is not None:
        t = spec.dense_tflops
        return FitGpu(
            name=name,
            catalog_id=catalog_id,
            memory_bw_bytes_s=spec.memory_bw_bytes_s,
            bf16_flops_s=t.bf16 * TERA,
            fp8_flops_s=t.fp8 * TERA if t.fp8 else None,
            fp4_flops_s=t.fp4 * TERA if t.fp4 else None,
            int8_ops_s=t.int8 * TERA if t.int8 else None,
            link_bw_bytes_s=spec.interconnect.bw_bytes_s,
            l2_bytes=L2_BYTES[name],
        )
    systems = load_table("systems")
    rows = np.flatnonzero(systems["gpu"] == name)
    if rows.size != 1:
        raise PlannerError(f"GPU '{name}' is not in the microbenchmark systems table")
    i = int(rows[0])

    def peak(column: str) -> float | None:
        value = float(systems[column][i])
        return value * TERA if np.isfinite(value) else None

    bf16 = peak("bf16_dense_tflops")
    if bf16 is None:
        raise PlannerError(f"GPU '{name}' has no bf16 peak in the microbenchmark systems table")
    return FitGpu(
        name=name,
        catalog_id=None,
        memory_bw_bytes_s=float(systems["mem_bw_gb_s"][i]) * GB,
        bf16_flops_s=bf16,
        fp8_flops_s=peak("fp8_dense_tflops"),
        fp4_flops_s=peak("fp4_dense_tflops"),
        int8_ops_s=peak("int8_dense_tops"),
        link_bw_bytes_s=float(systems["intra_node_bw_gb_s_per_dir"][i]) * GB,
        l2_bytes=L2_BYTES[name],
    )


def microbench_gpus() -> tuple[str, ...]:
    """Microbenchmark GPUs with compute tables, in the systems table's order."""
    gemm_gpus = set(load_table("gemm")["gpu"].tolist())
    return tuple(g for g in load_table("systems")["gpu"].tolist() if g in gemm_gpus)
