"""The wheel: it carries the catalogs and the data tables, and the installed `tdplan` works from anywhere.

The wheel is built from this checkout and installed into a fresh virtual environment, and the command is run
from a folder outside the repository, so that nothing can be read from the source tree.

Isolating the wheel from the development install: the test process usually runs with this checkout installed
in editable mode, which puts the repository on `sys.path` through a `.pth` file in the outer site-packages.
The new environment is therefore created *without* system site packages (a nested venv's
`--system-site-packages` would reach the base interpreter anyway, not the venv the tests run in), the wheel is
installed into it alone (`--no-deps --no-index`), and only then is the outer environment's site-packages
appended to its `sys.path` by a plain `.pth` line. Directories named that way are not scanned for `.pth`
files, so the runtime dependencies become importable while the editable hook never runs. Nothing is downloaded
when hatchling is installed (the build then runs without isolation); otherwise `build` fetches hatchling into
an isolated build environment from the package index.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DEPENDENCIES = ("numpy", "scipy", "pulp", "pydantic", "typer", "rich", "pyyaml")
ESTIMATE = [
    "estimate",
    "--model",
    "llama-70b",
    "--gpus",
    "8xL20",
    "--input-len",
    "1024",
    "--output-len",
    "256",
    "--json",
]
WHEEL_FILES = (
    "planner/_catalog/hardware/gpus/l20.yaml",
    "planner/_catalog/models/llama-3.1-70b.yaml",
    "planner/_catalog/hardware/engines/trtllm.yaml",
    "planner/_catalog/hardware/calibration/trtllm.yaml",
    "planner/data/measurements.csv",
    "planner/data/microbenchmarks.csv",
    "planner/data/microbench/gemm.csv.gz",
    "planner/data/microbench/NOTICE",
    "planner/_catalog/hardware/kernels/h100-sxm.yaml",
)


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    command = " ".join(args)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(outdir: Path) -> Path:
    """Build the wheel with the installed hatchling (offline), else in an isolated build environment."""
    isolation = ["--no-isolation"] if importlib.util.find_spec("hatchling") else []
    _run([sys.executable, "-m", "build", "--wheel", *isolation, "--outdir", str(outdir), str(ROOT)], cwd=ROOT)
    wheels = list(outdir.glob("tdplan-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _dependency_dirs() -> list[str]:
    """Folders from which this interpreter imports the runtime dependencies (and their own dependencies,
    which pip put beside them), never the repository itself. A venv inside the checkout (`.venv`, as CI
    makes) stays: its site-packages holds the dependencies, and the editable hook there is a `.pth` file."""
    dirs = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    dirs += [str(importlib.metadata.distribution(name).locate_file("")) for name in RUNTIME_DEPENDENCIES]
    unique = dict.fromkeys(str(Path(d).resolve()) for d in dirs if Path(d).is_dir())
    return [d for d in unique if Path(d) != ROOT]


def _make_venv(venv: Path, wheel: Path) -> tuple[Path, Path]:
    """A venv holding only the wheel, with the outer dependencies appended to its path: (python, site dir)."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    # pip >= 22.3 installs into another interpreter's environment: no pip inside the venv, no ensurepip.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--force-reinstall",
            str(wheel),
        ],
        cwd=venv.parent,
    )
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=venv.parent)
    site_dir = Path(purelib.stdout.strip())
    (site_dir / "_tdplan_test_outer_deps.pth").write_text("".join(f"{d}\n" for d in _dependency_dirs()))
    return python, site_dir


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_repository(tmp_path: Path) -> None:
    """The wheel holds the catalogs and data; installed alone in a venv, `tdplan estimate` answers from a
    folder outside the checkout, with the package, catalogs and data read from the venv's site-packages."""
    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in WHEEL_FILES if name not in names]
    assert not missing, f"wheel lacks {missing}"

    python, site_dir = _make_venv(tmp_path / "venv", wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"

    where = _run(
        [
            str(python),
            "-c",
            (
                "import planner, planner.validation.measurements as m; "
                "from planner.specs.catalog import default_root; "
                "print(planner.__file__); print(default_root()); print(len(m.load_measurements()))"
            ),
        ],
        cwd=work,
        env=env,
    ).stdout.split()
    package_file, catalog_root, measurement_rows = Path(where[0]), Path(where[1]), int(where[2])
    assert package_file.is_relative_to(site_dir), f"planner imported from {package_file}, not the wheel"
    assert not package_file.resolve().is_relative_to(ROOT)
    assert catalog_root == site_dir / "planner" / "_catalog"
    assert measurement_rows > 0

    result = _run([str(python.parent / "tdplan"), *ESTIMATE], cwd=work, env=env)
    estimate = json.loads(result.stdout)
    assert estimate["model"] == "llama-3.1-70b"
    assert estimate["gpu"] == "l20"
    assert estimate["tp"] == 4
    assert estimate["output_throughput_tok_s"] > 0


def test_library_names_survive_importing_the_modules_behind_them() -> None:
    """`planner.recommend(...)` imports the modules behind estimate and compare; the names stay functions."""
    import subprocess
    import sys

    code = (
        "import planner\n"
        "planner.recommend(model='llama-3.1-8b', gpus='1xh100', input_len=256, output_len=64,"
        " strategies=['colocated'])\n"
        "assert callable(planner.estimate) and callable(planner.compare) and callable(planner.simulate)\n"
        "planner.estimate(model='llama-3.1-8b', gpus='1xh100', input_len=256, output_len=64)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
