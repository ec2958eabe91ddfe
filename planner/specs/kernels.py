"""Per-GPU kernel constants: the physics of one op on one GPU, fitted on kernel microbenchmarks.

`hardware/kernels/<gpu-id>.yaml` holds, for a GPU with kernel measurements, the constants that
`planner.cost.kernels` turns into op times (written by `scripts/fit_kernels.py`, with what they were fitted on
and the fit's error per table). A GPU without measurements gets its constants from the nearest measured GPU of
its architecture by the written rule in `derive_kernel_profile` below; the profile says which.

Every time constant is in seconds, every efficiency a share of the GPU's datasheet peak (dimensionless).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum

from pydantic import Field

from planner.errors import PlannerError
from planner.specs.hardware import Frozen, GpuSpec, LinkKind


class KernelBasis(str, Enum):
    """Where a GPU's kernel constants come from."""

    measured = "measured"  # fitted on this GPU's own kernel microbenchmarks
    derived = "derived"  # efficiencies of a measured GPU of the same architecture, on this GPU's own peaks
    extrapolated = "extrapolated"  # no measured GPU of the architecture: copied across architectures


class GemmConstants(Frozen):
    """A linear layer Y[m, n] = X[m, k] W[n, k]^T in one weight format.

    time = fixed_s + max(2 m n k / (peak x compute_eff x m / (m + m_half)), bytes / (bandwidth x memory_eff))
    compute_eff: share of the format's dense peak a large GEMM reaches.
    m_half: rows at which the compute efficiency is half of compute_eff (small m leaves tensor-core tiles idle).
    memory_eff: share of the datasheet memory bandwidth reached while streaming the weights (small m).
    fixed_s: GPU-side floor of one call (CUDA-graph replay), activation quantization included for 8-bit formats.
    """

    compute_eff: float = Field(gt=0, le=1)
    m_half: float = Field(ge=0)
    memory_eff: float = Field(gt=0, le=1.2)
    fixed_s: float = Field(ge=0)


class DecodeAttentionConstants(Frozen):
    """Generation attention over a paged KV cache in one KV format.

    time = fixed_s + per_seq_s x sequences + KV bytes / (bandwidth x kv_bw_eff)
    """

    kv_bw_eff: float = Field(gt=0, le=1.2)
    per_seq_s: float = Field(ge=0)
    fixed_s: float = Field(ge=0)


class PrefillAttentionConstants(Frozen):
    """Causal context attention (FlashAttention-style), no cached prefix in the measurements.

    time = fixed_s + causal FLOPs / (16-bit peak x compute_eff x s / (s + s_half)), s = tokens per sequence.
    """

    compute_eff: float = Field(gt=0, le=1)
    s_half: float = Field(ge=0)
    fixed_s: float = Field(ge=0)


class ElementwiseConstants(Frozen):
    """A memory-bound elementwise kernel (norm, rotary, activation, residual, quantize).

    time = fixed_s + bytes / (bandwidth x bw_eff)
    """

    bw_eff: float = Field(gt=0, le=1.2)
    fixed_s: float = Field(ge=0)


class AllReduceConstants(Frozen):
    """One all-reduce of `message` bytes per rank over n GPUs by one implementation.

    time = latency_s + latency_per_peer_s x (n - 1) + 2 (n - 1) / n x message / (link bandwidth x bus_bw_eff)
    The link bandwidth is the GPU's intra-node link per direction (catalog `interconnect.bw_gb_s`).
    """

    latency_s: float = Field(ge=0)
    latency_per_peer_s: float = Field(ge=0)
    bus_bw_eff: float = Field(gt=0, le=2.0)  # NVLink SHARP reduces in the switch: busbw can exceed line rate


class AllReduceImpl(str, Enum):
    """Who runs the tensor-parallel all-reduce."""

    engine = "engine"  # the engine's own path: custom one-/two-shot kernels for small messages, NCCL above
    nccl = "nccl"  # the collective library (nccl-tests; oneCCL on Intel)


class KernelProfile(Frozen):
    """Kernel constants of one GPU. Keys of `gemm`, `decode_attention`, `prefill_attention` are formats
    (bf16, fp8, ...); a format without its own entry runs as the nearest one (planner.cost.kernels)."""

    gpu: str
    basis: KernelBasis
    derived_from: str | None = None
    source: str
    gemm: dict[str, GemmConstants]
    decode_attention: dict[str, DecodeAttentionConstants]
    prefill_attention: dict[str, PrefillAttentionConstants]
    elementwise: ElementwiseConstants
    allreduce: dict[AllReduceImpl, AllReduceConstants]
    fit_rows: dict[str, int] = Field(default_factory=dict)
    fit_median_abs_pct_error: dict[str, float] = Field(default_factory=dict)

    @property
    def basis_label(self) -> str:
        """Where the constants come from: `measured`, `derived from <gpu>` or `extrapolated from <gpu>`."""
        if self.derived_from is None:
            return self.basis.value
        return f"{self.basis.value} from {self.derived_from}"

    def __hash__(self) -> int:
        """Hashable despite its mappings, so a Deployment holding it can key the compiled-stage cache."""
        return hash(
            (
                self.gpu,
                self.basis,
                tuple(self.gemm.items()),
                tuple(self.decode_attention.items()),
                tuple(self.prefill_attention.items()),
                self.elementwise,
                tuple(self.allreduce.items()),
            )
        )


# GEMM formats whose constants only apply where the GPU has the matching tensor-core rate (DenseTflops field);
# bf16 and the weight-only formats (int8_wo, int4_wo) run at the 16-bit rate every GPU has.
_GEMM_FORMAT_PEAK = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4", "int8_sq": "int8"}


def _bandwidth_per_flop(gpu: GpuSpec) -> float:
    """Memory bandwidth over 16-bit dense compute, bytes per FLOP: where a GPU sits between compute- and
    memory-bound, hence which measured GPU's efficiencies (shares of either peak) transfer best."""
    return gpu.memory_bw_gb_s * 1e9 / (gpu.dense_tflops.bf16 * 1e12)


# NVLink generation of each architecture's bridge (A100/A800 PCIe: NVLink3; H100/H200 NVL: NVLink4).
_BRIDGE_NVLINK_GENERATION = {"ampere": 3, "hopper": 4, "blackwell": 5}


def _link_family(gpu: GpuSpec) -> tuple[str, int]:
    """(family, generation) of a GPU's intra-node link: pcie5 -> (pcie, 5), nvlink4 -> (nvlink, 4), an NVLink
    bridge -> (nvlink, its architecture's generation); other kinds are a family of their own."""
    kind = gpu.interconnect.kind
    if kind == LinkKind.nvlink_bridge and gpu.architecture.value in _BRIDGE_NVLINK_GENERATION:
        return "nvlink", _BRIDGE_NVLINK_GENERATION[gpu.architecture.value]
    for family in ("pcie", "nvlink"):
        generation = kind.value.removeprefix(family)
        if kind.value.startswith(family) and generation.isdigit():
            return family, int(generation)
    return kind.value, 0


ALLREDUCE_FIT_AIM_PCT = 15.0  # a measured all-reduce curve that misses this is inconsistent across collections


def _allreduce_consistent(profile: KernelProfile) -> bool:
    """Whether the GPU's all-reduce constants reproduce its own measurements within the aim: the L40S tables,
    for one, disagree tenfold between collections at 4 and 8 GPUs (machines with and without a PCIe switch)."""
    errors = [v for k, v in profile.fit_median_abs_pct_error.items() if k.startswith("allreduce")]
    return bool(errors) and max(errors) <= ALLREDUCE_FIT_AIM_PCT


def _link_distance(gpu: GpuSpec, other: GpuSpec, profile: KernelProfile) -> tuple[int, int, int, float, str]:
    """Order measured GPUs by how well their all-reduce constants fit `gpu`'s link: same family (PCIe, NVLink)
    first, then consistent measurements (`_allreduce_consistent`), then the nearest generation, then the
    nearest link bandwidth, then the id (deterministic)."""
    family, generation = _link_family(gpu)
    other_family, other_generation = _link_family(other)
    same = family == other_family
    bandwidth = abs(math.log(gpu.interconnect.bw_gb_s / other.interconnect.bw_gb_s))
    consistent = _allreduce_consistent(profile)
    return (
        0 if same else 1,
        0 if consistent else 1,
        abs(generation - other_generation) if same else 0,
        bandwidth,
        other.id,
    )


def allreduce_donor(gpu: GpuSpec, measured: Mapping[str, KernelProfile], gpus: Mapping[str, GpuSpec]) -> str:
    """The measured GPU (other than `gpu`) whose all-reduce constants best fit `gpu`'s link (`_link_distance`)."""
    candidates = {
        g: gpus[g] for g, p in measured.items() if g in gpus and g != gpu.id and p.basis is KernelBasis.measured
    }
    if not candidates:
        raise PlannerError(f"no measured kernel profile to take {gpu.id}'s all-reduce from: add hardware/kernels/")
    return min(candidates, key=lambda g: _link_distance(gpu, candidates[g], measured[g]))


def with_consistent_allreduce(
    profile: KernelProfile, measured: Mapping[str, KernelProfile], gpus: Mapping[str, GpuSpec]
) -> KernelProfile:
    """A measured profile whose own all-reduce tables are inconsistent (`_allreduce_consistent` false: the fit
    misses its aim because collections on different machines disagree) takes the all-reduce constants of the
    donor `allreduce_donor` picks, as a derived GPU would; its fit record keeps only the tables it still uses."""
    if _allreduce_consistent(profile) or not any(k.startswith("allreduce") for k in profile.fit_rows):
        return profile
    donor = allreduce_donor(gpus[profile.gpu], measured, gpus)
    missed = ", ".join(
        f"{k} {v:.1f}%" for k, v in profile.fit_median_abs_pct_error.items() if k.startswith("allreduce")
    )
    return profile.model_copy(
        update={
            "allreduce": dict(measured[donor].allreduce),
            "source": f"{profile.source}; all-reduce constants of {donor}: this GPU's own all-reduce tables disagree "
            f"between collections (fit {missed}, aim {ALLREDUCE_FIT_AIM_PCT:g}%)",
            "fit_rows": {k: v for k, v in profile.fit_rows.items() if not k.startswith("allreduce")},
            "fit_median_abs_pct_error": {
                k: v for k, v in profile.fit_median_abs_pct_error.items() if not k.startswith("allreduce")
            },
        }
    )


def derive_kernel_profile(
    gpu: GpuSpec, measured: Mapping[str, KernelProfile], gpus: Mapping[str, GpuSpec]
) -> KernelProfile:
    """Kernel constants for a GPU without its own measurements, from the measured ones (keyed by GPU id).

    1. Compute donor: among the measured GPUs of `gpu`'s architecture, the one closest in memory bandwidth per
       16-bit FLOP, |log(B/F of gpu) - log(B/F of donor)| smallest (basis `derived`). With no measured GPU of the
       architecture, the closest by the same distance over all measured GPUs (basis `extrapolated`).
    2. Copied from the compute donor as they are: the dimensionless efficiencies (compute_eff, memory_eff,
       kv_bw_eff, bw_eff: shares of *this* GPU's datasheet peaks, so the peaks scale the times), the shape
       constants (m_half in rows, s_half in tokens) and the fixed latencies (fixed_s, per_seq_s: GPU-side
       floors of one kernel, which depend on the architecture more than on the part). GEMM formats are kept
       only where this GPU has the tensor-core rate they run at (fp8, fp8_block: fp8; nvfp4: fp4; int8_sq:
       int8); formats the donor lacks are not invented: the cost model maps a missing format to the nearest
       present one.
    3. All-reduce donor: the measured GPU whose intra-node link matches best: same family (NVLink or PCIe;
       an NVLink bridge counts as its architecture's NVLink generation), then the nearest generation
       (NVLink4 -> an NVLink4 GPU; PCIe 4 -> PCIe 4, else the nearest PCIe generation), preferring GPUs whose
       all-reduce fit meets its aim (`_allreduce_consistent`) over closer generations, then the nearest link
       bandwidth (also the only criterion for a link of another family, e.g. Infinity Fabric). Its latency_s,
       latency_per_peer_s and bus_bw_eff are copied; bus_bw_eff multiplies this GPU's own link bandwidth. A
       GPU without PCIe peer-to-peer (`interconnect.p2p: false`) keeps the constants too: the cost model
       halves its bandwidth already.
    """
    candidates = {
        g: gpus[g] for g, p in measured.items() if g in gpus and g != gpu.id and p.basis is KernelBasis.measured
    }
    if not candidates:
        raise PlannerError(f"no measured kernel profile to derive {gpu.id}'s from: add hardware/kernels/*.yaml")
    same_arch = {g: spec for g, spec in candidates.items() if spec.architecture == gpu.architecture}
    pool = same_arch or candidates
    ratio = math.log(_bandwidth_per_flop(gpu))
    donor = min(pool, key=lambda g: (abs(ratio - math.log(_bandwidth_per_flop(pool[g]))), g))
    link_donor = allreduce_donor(gpu, measured, gpus)
    source = measured[donor]
    present = gpu.dense_tflops.model_dump()
    gemm = {f: c for f, c in source.gemm.items() if f not in _GEMM_FORMAT_PEAK or present[_GEMM_FORMAT_PEAK[f]]}
    basis = KernelBasis.derived if same_arch else KernelBasis.extrapolated
    why = "same architecture" if same_arch else f"no measured {gpu.architecture.value} GPU"
    return KernelProfile(
        gpu=gpu.id,
        basis=basis,
        derived_from=donor,
        source=(
            f"planner.specs.kernels.derive_kernel_profile: GEMM, attention and elementwise constants of {donor} "
            f"({why}; closest memory bandwidth per 16-bit FLOP), all-reduce constants of {link_donor} "
            f"({gpus[link_donor].interconnect.kind.value} link for this GPU's {gpu.interconnect.kind.value})"
        ),
        gemm=gemm,
        decode_attention=dict(source.decode_attention),
        prefill_attention=dict(source.prefill_attention),
        elementwise=source.elementwise,
        allreduce=dict(measured[link_donor].allreduce),
    )
