"""Copy the kernel microbenchmark columns the kernel fit needs into planner/data/microbench/ (gzip CSV).

Usage: python scripts/build_kernel_data.py SHARED_MICROBENCH_DIR

The source folder is the microbenchmark set converted from NVIDIA AIConfigurator (aiconfigurator-core 0.12.0;
Apache-2.0, see planner/data/microbench/NOTICE). Rules, applied in this order (all constants below):
- only the GPUs with compute tables (`in_compute_tables = 1` in systems.csv); b300/gb300 have only comm rows;
- only the columns the fit reads (`COLUMNS`);
- GEMM: every dtype except vLLM's fp8_block rows, which the current collector times eagerly (host launch cost
  inside, 2-20x the CUDA-graph rows of the other engines); m restricted to `GEMM_M` (the tile-boundary
  probes m = 2^i + 1 above 16 are dropped, where the grid is densest);
- decode / prefill attention: every row (the source grids are already sparse);
- quantize: only `fp8_quantize_static` (the elementwise kernel), not the derived compute-scale rows;
- all-reduce: rows on one host (`multi_node = 0`), 16-bit elements only (int8 rows of equal bytes take equal
  time), CUDA-graph rows of the engines' own paths plus the eager library benchmarks (nccl-tests, oneCCL) and
  the eager engine rows of b60, which has no graph mode.
Output is deterministic: rows keep the source order, gzip mtime is 0.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "planner" / "data" / "microbench"

COLUMNS: dict[str, tuple[str, ...]] = {
    "gemm": ("gpu", "engine", "dtype", "m", "n", "k", "latency_s"),
    "attention_decode": (
        "gpu", "engine", "kv_dtype", "batch", "context_len", "num_heads", "num_kv_heads", "head_dim", "latency_s",
    ),
    "attention_prefill": (
        "gpu", "engine", "dtype", "kv_dtype", "batch", "seq_len", "num_heads", "num_kv_heads", "head_dim", "latency_s",
    ),
    "quantize": ("gpu", "engine", "m", "k", "latency_s"),
    "allreduce": (
        "gpu", "engine", "engine_version", "cuda_graph", "num_gpus", "message_bytes", "run", "latency_s",
    ),
    "systems": (
        "gpu", "device_name", "mem_gib", "mem_bw_gb_s", "bf16_dense_tflops", "fp8_dense_tflops",
        "fp4_dense_tflops", "int8_dense_tops", "gpus_per_node", "intra_node_link", "intra_node_bw_gb_s_per_dir",
        "source",
    ),
}  # fmt: skip

# m values kept for GEMM: powers of two and the multiples between them, no 2^i + 1 tile probes above 16.
GEMM_M = {1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096,
          8192, 16384, 32768}  # fmt: skip


def _keep(table: str, row: dict[str, str], gpus: set[str]) -> bool:
    if row["gpu"] not in gpus:
        return False
    if table == "gemm":
        eager = row["engine"] == "vllm" and row["dtype"] == "fp8_block"  # timed without a CUDA graph (caveat 2)
        return int(row["m"]) in GEMM_M and not eager
    if table == "quantize":
        return row["op"] == "fp8_quantize_static"
    if table == "allreduce":
        library = row["engine"] in ("nccl", "oneccl")
        graph_or_eager_only = row["cuda_graph"] == "1" or library or row["gpu"] == "b60"
        return row["multi_node"] == "0" and row["dtype"] in ("bf16", "fp16") and graph_or_eager_only
    return True


def build(source: Path) -> dict[str, int]:
    """Write every table; return rows written per table."""
    with (source / "systems.csv").open() as f:
        gpus = {r["gpu"] for r in csv.DictReader(f) if r["in_compute_tables"] == "1"}
    OUT.mkdir(parents=True, exist_ok=True)
    written = {}
    for table, columns in COLUMNS.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        count = 0
        with (source / f"{table}.csv").open() as f:
            for row in csv.DictReader(f):
                if table == "systems" or _keep(table, row, gpus):
                    writer.writerow([row[c] for c in columns])
                    count += 1
        with (OUT / f"{table}.csv.gz").open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(buffer.getvalue().encode())
        written[table] = count
    return written


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for table, rows in build(Path(sys.argv[1])).items():
        print(f"{table}: {rows} rows")


if __name__ == "__main__":
    main()
