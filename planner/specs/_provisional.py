"""Provisional kernel constants while the fitted hardware/kernels/ files are being produced (removed at merge)."""

from __future__ import annotations

from planner.specs.hardware import GpuSpec
from planner.specs.kernels import (
    AllReduceConstants,
    AllReduceImpl,
    DecodeAttentionConstants,
    ElementwiseConstants,
    GemmConstants,
    KernelBasis,
    KernelProfile,
    PrefillAttentionConstants,
)


def provisional_kernel_profile(gpu: GpuSpec) -> KernelProfile:
    return KernelProfile(
        gpu=gpu.id,
        basis=KernelBasis.derived,
        source="provisional",
        gemm={
            "bf16": GemmConstants(compute_eff=0.78, m_half=48, memory_eff=0.85, fixed_s=4e-6),
            "fp8": GemmConstants(compute_eff=0.58, m_half=48, memory_eff=0.76, fixed_s=5e-6),
        },
        decode_attention={
            "bf16": DecodeAttentionConstants(kv_bw_eff=0.85, per_seq_s=2e-8, fixed_s=7e-6),
            "fp8": DecodeAttentionConstants(kv_bw_eff=0.72, per_seq_s=2e-8, fixed_s=7e-6),
        },
        prefill_attention={"bf16": PrefillAttentionConstants(compute_eff=0.6, s_half=256, fixed_s=8e-6)},
        elementwise=ElementwiseConstants(bw_eff=0.85, fixed_s=2e-6),
        allreduce={
            AllReduceImpl.engine: AllReduceConstants(latency_s=2.5e-6, latency_per_peer_s=0.5e-6, bus_bw_eff=0.8),
            AllReduceImpl.nccl: AllReduceConstants(latency_s=6e-6, latency_per_peer_s=2e-6, bus_bw_eff=0.8),
        },
    )
