"""The GPU catalog (`hardware/gpus/*.yaml`): files load, names resolve, numbers are physically sane."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.errors import PlannerError
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.hardware import GpuSpec, LinkKind

ROOT = Path(__file__).resolve().parents[1]
GPU_DIR = ROOT / "hardware" / "gpus"
GPU_FILES = sorted(GPU_DIR.glob("*.yaml"))
GPU_IDS = [path.stem for path in GPU_FILES]

REQUIRED_IDS = (
    "l20", "l40", "l40s", "l4", "a10",
    "a100-pcie-40gb", "a100-pcie-80gb", "a100-sxm-40gb", "a100-sxm-80gb",
    "a800-sxm-80gb", "a800-pcie-80gb",
    "h100-pcie", "h100-sxm", "h100-nvl", "h800-sxm", "h20", "h200-sxm", "h200-nvl", "gh200",
    "b200", "rtx-4090", "mi300x",
)  # fmt: skip

# Name -> id, checked by hand: the short defaults, natural spellings, and the `gpu_normalized` labels that the
# published measurements use.
ALIASES = {
    "a100": "a100-sxm-80gb",
    "h100": "h100-sxm",
    "h200": "h200-sxm",
    "a800": "a800-sxm-80gb",
    "h800": "h800-sxm",
    "4090": "rtx-4090",
    "a100-80gb": "a100-sxm-80gb",
    "a100-sxm4-80gb": "a100-sxm-80gb",
    "h100-sxm5-80gb": "h100-sxm",
    "h100-80gb-hbm3": "h100-sxm",
    "l40s-48gb": "l40s",
    "mi300": "mi300x",
    "h200-sxm-141gb": "h200-sxm",
    "H100-SXM-80GB": "h100-sxm",
    "A100-SXM-80GB": "a100-sxm-80gb",
    "A100-SXM-40GB": "a100-sxm-40gb",
    "H200-SXM-141GB": "h200-sxm",
    "H100-PCIe-80GB": "h100-pcie",
    "GH200": "gh200",
    "RTX-5090": "rtx-5090",
    "L40S": "l40s",
    "MI300X": "mi300x",
    "H100 80GB HBM3": "h100-sxm",
    "a100_sxm4_80gb": "a100-sxm-80gb",
}

# Datasheet memory sizes, checked by hand.
MEMORY_GIB = {
    "l20": 48,
    "l4": 24,
    "a100-pcie-40gb": 40,
    "a100-sxm-80gb": 80,
    "h100-sxm": 80,
    "h100-nvl": 94,
    "h20": 96,
    "gh200": 96,
    "h200-sxm": 141,
    "b200": 180,
    "rtx-4090": 24,
    "mi300x": 192,
}

# GPU-to-GPU bandwidth per GPU per direction, checked by hand (half the bidirectional marketing figure).
LINK_GB_S = {
    "a100-sxm-80gb": 300,
    "a800-sxm-80gb": 200,
    "h800-sxm": 200,
    "h100-sxm": 450,
    "h200-sxm": 450,
    "h20": 450,
    "b200": 900,
    "h100-nvl": 300,
    "l20": 32,
    "h100-pcie": 64,
}

FORM_FACTORS = {"pcie", "sxm", "nvl", "oam", "superchip"}


def _normalise(name: str) -> str:
    """The lookup rule: case-insensitive, with `_` and spaces read as `-`."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _suggestions(message: str) -> list[str]:
    """The names listed after `closest:` in an unknown-name error."""
    assert "closest: " in message, message
    return message.split("closest: ", 1)[1].rstrip(")").split(", ")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT)


@pytest.fixture(params=GPU_IDS)
def gpu(request: pytest.FixtureRequest, catalog: Catalog) -> GpuSpec:
    return catalog.gpus[request.param]


@pytest.mark.parametrize("path", GPU_FILES, ids=GPU_IDS)
def test_file_validates_and_is_named_after_its_id(path: Path, catalog: Catalog) -> None:
    spec = GpuSpec.model_validate(yaml.safe_load(path.read_text()))
    assert spec.id == path.stem
    assert catalog.gpus[path.stem] == spec


def test_catalog_holds_exactly_the_files(catalog: Catalog) -> None:
    assert sorted(catalog.gpus) == GPU_IDS


@pytest.mark.parametrize("gpu_id", REQUIRED_IDS)
def test_required_gpu_present(gpu_id: str, catalog: Catalog) -> None:
    assert (GPU_DIR / f"{gpu_id}.yaml").is_file()
    assert catalog.gpu(gpu_id).id == gpu_id


def test_names_are_unique_across_catalog(catalog: Catalog) -> None:
    owners: dict[str, list[str]] = {}
    for gpu in catalog.gpus.values():
        for name in (gpu.id, *gpu.aliases):
            owners.setdefault(_normalise(name), []).append(gpu.id)
    clashes = {name: ids for name, ids in owners.items() if len(ids) > 1}
    assert not clashes, f"names claimed more than once (after normalisation): {clashes}"


@pytest.mark.parametrize(("name", "gpu_id"), ALIASES.items())
def test_alias_resolves(name: str, gpu_id: str, catalog: Catalog) -> None:
    assert catalog.gpu(name).id == gpu_id


def test_lookup_ignores_case_of_every_name(gpu: GpuSpec, catalog: Catalog) -> None:
    for name in (gpu.id, *gpu.aliases):
        assert catalog.gpu(name.upper()).id == gpu.id
        assert catalog.gpu(f" {name.swapcase()} ").id == gpu.id


def test_lookup_is_case_insensitive(catalog: Catalog) -> None:
    assert catalog.gpu("L20") is catalog.gpu("l20") is catalog.gpus["l20"]


@pytest.mark.parametrize(("name", "expected"), [("h10", "h100"), ("l40x", "l40"), ("mi300y", "mi300x")])
def test_unknown_gpu_suggests_close_names(name: str, expected: str, catalog: Catalog) -> None:
    with pytest.raises(PlannerError, match=f"unknown GPU '{name}'") as err:
        catalog.gpu(name)
    assert expected in _suggestions(str(err.value))


def test_unrelated_name_raises(catalog: Catalog) -> None:
    with pytest.raises(PlannerError, match="unknown GPU 'quantum-abacus-9000'"):
        catalog.gpu("quantum-abacus-9000")


def test_narrow_formats_are_not_slower_than_bf16(gpu: GpuSpec) -> None:
    tflops = gpu.dense_tflops
    for rate in (tflops.fp8, tflops.int8):
        assert rate is None or rate >= tflops.bf16
    if tflops.fp4 is not None:
        assert tflops.fp8 is not None and tflops.fp4 >= tflops.fp8


def test_nvlink_beats_the_pcie_host_link(gpu: GpuSpec) -> None:
    if not gpu.interconnect.kind.is_pcie and gpu.host_link.kind.is_pcie:
        assert gpu.interconnect.bw_gb_s > gpu.host_link.bw_gb_s


def test_only_superchips_lack_a_pcie_host_link(gpu: GpuSpec) -> None:
    assert gpu.host_link.kind.is_pcie or gpu.form_factor == "superchip"


def test_pcie_cards_talk_over_pcie(gpu: GpuSpec) -> None:
    assert gpu.form_factor in FORM_FACTORS
    assert (gpu.form_factor == "pcie") == gpu.interconnect.kind.is_pcie
    assert (gpu.form_factor == "nvl") == (gpu.interconnect.kind == LinkKind.nvlink_bridge)


def test_only_bridges_limit_peers(gpu: GpuSpec) -> None:
    bridged = gpu.interconnect.kind == LinkKind.nvlink_bridge
    assert (gpu.interconnect.max_peers is not None) == bridged


def test_geforce_cards_have_no_p2p(gpu: GpuSpec) -> None:
    assert gpu.interconnect.p2p == ("GeForce" not in gpu.name)


def test_architecture_matches_vendor(gpu: GpuSpec) -> None:
    assert (gpu.vendor == "AMD") == (gpu.architecture.value == "cdna3")


def test_sources_are_documents_not_paths(gpu: GpuSpec) -> None:
    for source in (gpu.source, gpu.interconnect.source, gpu.host_link.source):
        assert source.strip()
        assert not source.startswith("/") and "/work/" not in source and "/tmp/" not in source


def test_every_invariant_has_cases(catalog: Catalog) -> None:
    gpus = catalog.gpus.values()
    assert any("GeForce" in g.name for g in gpus)
    assert any(g.interconnect.kind == LinkKind.nvlink_bridge for g in gpus)
    assert any(not g.interconnect.kind.is_pcie and g.host_link.kind.is_pcie for g in gpus)
    assert any(g.dense_tflops.fp4 is not None for g in gpus)


@pytest.mark.parametrize(("gpu_id", "gib"), MEMORY_GIB.items())
def test_memory_size(gpu_id: str, gib: float, catalog: Catalog) -> None:
    assert catalog.gpus[gpu_id].memory_gib == gib


@pytest.mark.parametrize(("gpu_id", "gb_s"), LINK_GB_S.items())
def test_link_bandwidth_is_per_direction(gpu_id: str, gb_s: float, catalog: Catalog) -> None:
    assert catalog.gpus[gpu_id].interconnect.bw_gb_s == gb_s
