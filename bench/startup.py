"""Start-up time of `tdplan --help` and `tdplan hardware list` against importing tdplan's own dependencies.

    python bench/startup.py [--runs 5]

Each command runs in a fresh interpreter `--runs` times; the median wall time of each is printed with its ratio
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


def median_s(command: list[str], runs: int) -> float:
    """Median wall time of `runs` runs of `command`, seconds (output discarded; a failure aborts)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median taken)")
    runs = parser.parse_args().runs
    tdplan = shutil.which("tdplan")
    cli = [tdplan] if tdplan else [sys.executable, "-m", "planner"]
    baseline = median_s([sys.executable, "-c", "import numpy, pydantic, typer, rich"], runs)
    print(f"baseline  import numpy, pydantic, typer, rich  {baseline:.3f} s")
    worst = 0.0
    for args in (["--help"], ["hardware", "list"]):
        seconds = median_s([*cli, *args], runs)
        ratio = seconds / baseline
        worst = max(worst, ratio)
        print(f"tdplan {' '.join(args):<16}{'':>20}{seconds:.3f} s  ratio {ratio:.2f}")
    print(f"worst ratio {worst:.2f} (target <= {TARGET_RATIO})")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
