"""Start-up time of `tdplan --help` and `tdplan hardware list` against importing tdplan's own dependencies.

    python bench/startup.py [--runs 5]

Each command runs in a fresh interpreter `--runs` times, the three commands taking turns (so that load from
other processes hits them alike) after one warm-up round; the median wall time of each is printed with its ratio
to the baseline, `python -c "import numpy, pydantic, typer, rich"`. The target is a ratio of at most 1.5: the
CLI must not import scipy, pulp or the cost model before a command needs them. Exits 1 when a ratio exceeds it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_RATIO = 1.5


def run_s(command: list[str]) -> float:
    """Wall time of one run of `command`, seconds (output discarded; a failure aborts)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median taken)")
    runs = parser.parse_args().runs
    tdplan = shutil.which("tdplan")
    cli = [tdplan] if tdplan else [sys.executable, "-m", "planner"]
    commands = {
        "import numpy, pydantic, typer, rich": [sys.executable, "-c", "import numpy, pydantic, typer, rich"],
        "tdplan --help": [*cli, "--help"],
        "tdplan hardware list": [*cli, "hardware", "list"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, command in commands.items():
            seconds = run_s(command)
            if round_:  # round 0 warms the file cache
                times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians.pop("import numpy, pydantic, typer, rich")
    print(f"{'baseline: import numpy, pydantic, typer, rich':<48}{baseline:.3f} s")
    worst = 0.0
    for name, seconds in medians.items():
        ratio = seconds / baseline
        worst = max(worst, ratio)
        print(f"{name:<48}{seconds:.3f} s  ratio {ratio:.2f}")
    print(f"worst ratio {worst:.2f} (target <= {TARGET_RATIO})")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
