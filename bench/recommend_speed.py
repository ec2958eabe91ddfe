"""Planning time of `tdplan recommend` against cluster size and candidate count, and against `tdplan compare`.

    python bench/recommend_speed.py [--skip-compare]

Prints, per case: the end-to-end wall time of the command in a fresh interpreter (start-up included), the time
of `planner.recommend()` in this process, the instance types tabulated and the GPUs. Targets (the planner
issue): `tdplan recommend --model llama-70b --gpus 8xL20` under 1 s end to end; 1,024 x H100 within 2x of
8 x H100; `compare` on 8 GPUs under 2 s (today's `compare` is the exhaustive per-configuration evaluation, timed
here for reference). Prints the figures; exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from planner.comparison import build_context
from planner.recommendation import DEFAULT_WORKLOAD, recommend
from planner.search.instances import instance_types
from planner.specs.catalog import load_catalog
from planner.specs.workload import Workload
from planner.strategies.base import Context

CASES = [
    ("llama-70b", "8xL20", {}),
    ("llama-70b", "8xh100", {}),
    ("llama-70b", "64xh100", {}),
    ("llama-70b", "1024xh100", {}),
    ("llama-3.1-8b", "8xh100", {"workload": "sharegpt", "ttft": 0.5, "tpot": 0.05}),
]


def wall_s(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cli_args(model: str, gpus: str, extra: dict[str, object]) -> list[str]:
    args = ["--model", model, "--gpus", gpus]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-compare", action="store_true", help="do not time `tdplan compare`")
    args = parser.parse_args()
    tdplan = shutil.which("tdplan") or sys.exit("tdplan is not on PATH: install the package first")
    print(f"{'case':34s} {'end to end':>11s} {'planner':>9s} {'types':>6s}")
    for model, gpus, extra in CASES:
        end_to_end = wall_s([tdplan, "recommend", *cli_args(model, gpus, extra)])
        start = time.perf_counter()
        rec = recommend(model=model, gpus=gpus, **extra)  # type: ignore[arg-type]
        planner_s = time.perf_counter() - start
        types = len(instance_types(_context(model, gpus, extra), None, rec.slo)[0])
        label = f"{model} on {gpus}" + (" (SLOs)" if extra else "")
        print(f"{label:34s} {end_to_end:10.2f}s {planner_s:8.2f}s {types:6d}")
    if not args.skip_compare:
        compare_s = wall_s([tdplan, "compare", "--model", "llama-70b", "--gpus", "8xL20", "--workload", "sharegpt"])
        print(f"{'compare llama-70b on 8xL20':34s} {compare_s:10.2f}s")


def _context(model: str, gpus: str, extra: dict[str, object]) -> Context:
    """The context recommend() builds for one case (the instance types are counted on it)."""
    workload = Workload.resolve(str(extra.get("workload", DEFAULT_WORKLOAD)), None, None)
    return build_context(load_catalog(), model, gpus, workload, "bf16", None, None, None, None)


if __name__ == "__main__":
    main()
