"""Kernel constants: the shipped hardware/kernels/*.yaml validate, reproduce the packaged microbenchmarks within
the errors they record, GPUs without measurements derive theirs by the written rule, bad files are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from planner.errors import PlannerError
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.kernels import KernelBasis
from planner.validation.kernel_data import CATALOG_ID, fit_gpu, load_table, microbench_gpus
from planner.validation.kernel_fit import _solve
from planner.validation.kernel_profiles import fit_kernel_profile, profile_errors

ROOT = Path(__file__).resolve().parents[1]
MICROBENCH_NAME = {catalog_id: name for name, catalog_id in CATALOG_ID.items()}
ALL_FILES = sorted((ROOT / "hardware" / "kernels").glob("*.yaml"))
KERNEL_FILES = [p for p in ALL_FILES if p.stem in MICROBENCH_NAME]  # fitted on kernel microbenchmarks
OWN_ROW_FILES = [p for p in ALL_FILES if p.stem not in MICROBENCH_NAME]  # derived, scaled to their own rows


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT)


def test_every_microbench_gpu_with_a_catalog_entry_has_a_file(catalog: Catalog) -> None:
    measured = sorted(g for g, p in catalog.kernels.items() if p.basis is KernelBasis.measured)
    assert measured == sorted(c for c in CATALOG_ID.values() if c in catalog.gpus)
    assert len(KERNEL_FILES) == 7


@pytest.mark.parametrize("path", OWN_ROW_FILES, ids=lambda p: p.stem)
def test_derived_file_scaled_to_its_own_rows(path: Path, catalog: Catalog) -> None:
    """The L20 has no kernel microbenchmarks but forward-time profiles of its own: its file is the derivation
    from the L40S with compute efficiencies scaled to those rows, and says so."""
    profile = catalog.kernels[path.stem]
    assert profile.basis is KernelBasis.derived and profile.derived_from
    assert "forward-time rows of its own" in profile.source
    assert profile.fit_median_abs_pct_error["forward_time"] < 5.0


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.stem)
def test_file_is_generated_and_measured(path: Path, catalog: Catalog) -> None:
    assert path.read_text().startswith("# Written by scripts/fit_kernels.py; do not edit by hand.")
    profile = catalog.kernels[path.stem]
    assert profile.basis == KernelBasis.measured
    assert profile.fit_rows.keys() == profile.fit_median_abs_pct_error.keys()
    assert {"gemm.bf16", "decode_attention.bf16", "prefill_attention.bf16"} <= set(profile.fit_rows)
    # all-reduce fitted on the GPU's own tables, or (tables inconsistent across collections) taken from a donor
    assert "allreduce.nccl" in profile.fit_rows or "all-reduce constants of" in profile.source


def test_l40s_takes_consistent_allreduce_constants(catalog: Catalog) -> None:
    """The L40S all-reduce tables disagree tenfold at 4 and 8 GPUs between collections: its all-reduce
    constants are the consistent PCIe system's (rtx-pro-6000), and its file says why."""
    l40s = catalog.kernels["l40s"]
    assert l40s.allreduce == catalog.kernels["rtx-pro-6000"].allreduce
    assert "disagree between collections" in l40s.source


@pytest.mark.parametrize("gpu_id", [p.stem for p in KERNEL_FILES])
def test_shipped_constants_reproduce_the_packaged_tables(gpu_id: str, catalog: Catalog) -> None:
    """Each table's MdAPE, recomputed from the shipped (4-digit) constants, is within 0.5 pp of the recorded
    one, over the same number of rows."""
    profile = catalog.kernels[gpu_id]
    errors = profile_errors(profile, fit_gpu(MICROBENCH_NAME[gpu_id], catalog.gpus))
    for key, (rows, mdape) in errors.items():
        assert rows == profile.fit_rows[key], key
        assert mdape <= profile.fit_median_abs_pct_error[key] + 0.5, key


def test_bandwidth_rows_exist_for_every_gpu() -> None:
    """The L2 rule leaves rows to set the decode bandwidth: KV footprints of >= 1 GB on every GPU."""
    t = load_table("attention_decode")
    kv = t["batch"] * t["context_len"] * t["num_kv_heads"] * t["head_dim"] * 2 * 2
    for gpu in set(t["gpu"].tolist()):
        assert (kv[t["gpu"] == gpu] >= 1e9).any(), gpu


class TestDerivedRule:
    def test_l20_derives_from_l40s(self, catalog: Catalog) -> None:
        profile = catalog.kernel_profile("l20")
        assert (profile.basis, profile.derived_from) == (KernelBasis.derived, "l40s")
        # PCIe like the L40S, but the L40S all-reduce tables disagree between collections (fit misses its aim):
        # the consistent PCIe system's constants serve instead.
        assert profile.allreduce == catalog.kernels["rtx-pro-6000"].allreduce

    def test_l20_has_no_fp8_gemm(self, catalog: Catalog) -> None:
        """The catalog L20 has no fp8 rate: the L40S's fp8 constants are not carried over."""
        assert set(catalog.kernel_profile("l20").gemm) == {"bf16"}

    @pytest.mark.parametrize("gpu_id", ["h20", "h800-sxm", "gh200"])
    def test_hopper_parts_derive_from_an_h100_class_gpu(self, gpu_id: str, catalog: Catalog) -> None:
        profile = catalog.kernel_profile(gpu_id)
        assert profile.basis == KernelBasis.derived
        assert profile.derived_from in {"h100-sxm", "h200-sxm"}
        assert profile.allreduce == catalog.kernels["h100-sxm"].allreduce  # NVLink4

    def test_mi300x_is_extrapolated(self, catalog: Catalog) -> None:
        profile = catalog.kernel_profile("mi300x")
        assert profile.basis == KernelBasis.extrapolated
        assert profile.derived_from in catalog.kernels

    def test_pcie5_takes_the_pcie5_all_reduce(self, catalog: Catalog) -> None:
        assert catalog.kernel_profile("h100-pcie").allreduce == catalog.kernels["rtx-pro-6000"].allreduce

    def test_measured_gpu_keeps_its_own(self, catalog: Catalog) -> None:
        assert catalog.kernel_profile("H100") is catalog.kernels["h100-sxm"]


def test_fit_raises_when_a_parameter_ends_at_its_bound() -> None:
    """A residual that wants x = 10 with x bounded by [0.1, 1] ends at 1: refused, not clamped."""
    with pytest.raises(PlannerError, match="ends at its bound"):
        _solve(lambda x: np.log(x) - np.log(10.0), np.array([0.5]), np.array([0.1]), np.array([1.0]), ("x",), "t")


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    for folder in ("hardware", "models"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


class TestBadKernelFiles:
    @pytest.mark.parametrize(
        ("name", "edit", "message"),
        [
            ("l40.yaml", lambda text: text, "differs from the file name"),
            ("l40s.yaml", lambda text: text.replace("gpu: l40s", "gpu: l99"), "differs from the file name"),
            ("l99.yaml", lambda text: text.replace("gpu: l40s", "gpu: l99"), "not in the GPU catalog"),
            ("l40s.yaml", lambda text: text + "colour: green\n", "colour"),
        ],
        ids=["stem-mismatch", "gpu-renamed", "unknown-gpu", "extra-key"],
    )
    def test_refused(self, name: str, edit: object, message: str, catalog_copy: Path) -> None:
        kernels = catalog_copy / "hardware" / "kernels"
        text = (kernels / "l40s.yaml").read_text()
        (kernels / "l40s.yaml").unlink()
        assert callable(edit)
        (kernels / name).write_text(edit(text))
        with pytest.raises(PlannerError, match=message) as err:
            load_catalog(catalog_copy)
        assert name in str(err.value)


def test_kernels_page_is_what_the_fit_writes() -> None:
    """docs/kernels.md is the report `python scripts/fit_kernels.py --markdown docs/kernels.md` writes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_kernels", ROOT / "scripts" / "fit_kernels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = [(name, *fit_kernel_profile(name, load_catalog(ROOT).gpus)) for name in microbench_gpus()]
    assert (ROOT / "docs" / "kernels.md").read_text() == module.markdown(results)
