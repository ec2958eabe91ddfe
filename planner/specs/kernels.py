"""Per-GPU kernel constants: the physics of one op on one GPU, fitted on kernel microbenchmarks.

`hardware/kernels/<gpu-id>.yaml` holds, for a GPU with kernel measurements, the constants that
`planner.cost.kernels` turns into op times (written by `scripts/fit_kernels.py`, with what they were fitted on
and the fit's error per table). A GPU without measurements gets its constants from the nearest measured GPU of
its architecture by the written rule in `planner.cost.kernels.derive_kernel_profile`; the profile says which.

Every time constant is in seconds, every efficiency a share of the GPU's datasheet peak (dimensionless).
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from planner.specs.hardware import Frozen


class KernelBasis(str, Enum):
    """Where a GPU's kernel constants come from."""

    measured = "measured"  # fitted on this GPU's own kernel microbenchmarks
    derived = "derived"  # copied from a measured GPU of the same architecture, scaled by datasheet ratios
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
