"""Planning time of `tdplan recommend` against cluster size and candidate count, and against `tdplan compare`.

    python bench/recommend_speed.py [--skip-compare] [--repeat N]

Prints, per case: the end-to-end wall time of the command in a fresh interpreter (start-up included), the time
of `planner.recommend()` in a fresh interpreter (imports excluded), and the instance types tabulated. Each
figure is the median of `--repeat` runs (default 3): the machine may be busy with other work, and a fresh
interpreter per run keeps one case's warm caches from flattering the next. Targets (the planner issue):
`tdplan recommend --model llama-70b --gpus 8xL20` under 1 s end to end; 1,024 x H100 within 2x of 8 x H100;
`compare` on 8 GPUs under 2 s. Prints the figures; exits 0 whatever they are.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

CASES = [
    ("llama-70b", "8xL20", {}),
    ("llama-70b", "8xh100", {}),
    ("llama-70b", "64xh100", {}),
    ("llama-70b", "1024xh100", {}),
    ("llama-3.1-8b", "8xh100", {"workload": "sharegpt", "ttft": 0.5, "tpot": 0.05}),
]

# Run in a fresh interpreter: times planner.recommend() alone, then prints the seconds and the types tabulated.
PLANNER_TIMER = """
import json, sys, time
from planner.recommendation import recommend
start = time.perf_counter()
rec = recommend(**json.loads(sys.argv[1]))
print(time.perf_counter() - start, len(rec.evaluated))
"""


def wall_s(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def planner_s(model: str, gpus: str, extra: dict[str, object]) -> tuple[float, int]:
    """(seconds in planner.recommend(), instance types) in a fresh interpreter."""
    args = json.dumps({"model": model, "gpus": gpus, **extra})
    done = subprocess.run([sys.executable, "-c", PLANNER_TIMER, args], check=True, capture_output=True, text=True)
    seconds, types = done.stdout.split()
    return float(seconds), int(types)


def cli_args(model: str, gpus: str, extra: dict[str, object]) -> list[str]:
    args = ["--model", model, "--gpus", gpus]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-compare", action="store_true", help="do not time `tdplan compare`")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is printed (3)")
    args = parser.parse_args()
    tdplan = shutil.which("tdplan") or sys.exit("tdplan is not on PATH: install the package first")
    repeat = max(1, args.repeat)
    print(f"{'case':34s} {'end to end':>11s} {'planner':>9s} {'types':>6s}   (medians of {repeat} runs)")
    for model, gpus, extra in CASES:
        end_to_end = statistics.median(
            wall_s([tdplan, "recommend", *cli_args(model, gpus, extra)]) for _ in range(repeat)
        )
        runs = [planner_s(model, gpus, extra) for _ in range(repeat)]
        label = f"{model} on {gpus}" + (" (SLOs)" if extra else "")
        print(f"{label:34s} {end_to_end:10.2f}s {statistics.median(s for s, _ in runs):8.2f}s {runs[0][1]:6d}")
    if not args.skip_compare:
        command = [tdplan, "compare", "--model", "llama-70b", "--gpus", "8xL20", "--workload", "sharegpt"]
        compare_s = statistics.median(wall_s(command) for _ in range(repeat))
        print(f"{'compare llama-70b on 8xL20':34s} {compare_s:10.2f}s")


if __name__ == "__main__":
    main()
