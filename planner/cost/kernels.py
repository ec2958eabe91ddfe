"""Time of one kernel on one GPU from its FLOPs, bytes and shape: fixed latency plus roofline.

    t = fixed + max(FLOPs / (peak x eta_c(shape)), bytes / (bandwidth x eta_m))

with the constants of `planner.specs.kernels.KernelProfile`, fitted per GPU on kernel microbenchmarks
(`scripts/fit_kernels.py`). Every function takes numpy arrays (or floats) and broadcasts, so the compiled cost
model (planner.cost.compiled) evaluates thousands of batch shapes in one call, and the fit evaluates whole
tables. Each returns (fixed part, roofline part, compute-bound mask): the caller attributes time to overhead,
compute and memory from them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.specs.kernels import (
    AllReduceConstants,
    DecodeAttentionConstants,
    ElementwiseConstants,
    GemmConstants,
    PrefillAttentionConstants,
)

Array = NDArray[np.float64]


def gemm_time_s(
    c: GemmConstants, m: ArrayLike, flops: ArrayLike, bytes_moved: ArrayLike, peak_flops_s: float, bw_bytes_s: float
) -> tuple[Array, Array, NDArray[np.bool_]]:
    """A GEMM with m rows: fixed + max(FLOPs / (peak x compute_eff x m / (m + m_half)), bytes / (bw x memory_eff)).

    The saturating m / (m + m_half) is the share of tensor-core tiles a batch of m rows fills (a 64- or 128-row
    tile runs whole whatever the rows), smoothed over the tile sizes the GEMM libraries pick."""
    rows = np.maximum(np.asarray(m, dtype=float), 1e-9)
    eff = c.compute_eff * rows / (rows + c.m_half)
    compute_s = np.asarray(flops, dtype=float) / (peak_flops_s * eff)
    memory_s = np.asarray(bytes_moved, dtype=float) / (bw_bytes_s * c.memory_eff)
    return np.full_like(compute_s, c.fixed_s), np.maximum(compute_s, memory_s), compute_s >= memory_s


def decode_attention_time_s(
    c: DecodeAttentionConstants, seqs: ArrayLike, kv_bytes: ArrayLike, bw_bytes_s: float
) -> tuple[Array, Array, NDArray[np.bool_]]:
    """Generation attention: fixed + per-sequence work (block-table walks, split-K reductions) + KV bytes over
    the attention kernel's share of bandwidth. Memory bound by construction."""
    memory_s = np.asarray(kv_bytes, dtype=float) / (bw_bytes_s * c.kv_bw_eff) + c.per_seq_s * np.asarray(seqs, float)
    return np.full_like(memory_s, c.fixed_s), memory_s, np.zeros(memory_s.shape, dtype=bool)


def prefill_attention_time_s(
    c: PrefillAttentionConstants, tokens_per_seq: ArrayLike, flops: ArrayLike, peak_flops_s: float
) -> tuple[Array, Array, NDArray[np.bool_]]:
    """Causal context attention: fixed + FLOPs / (peak x compute_eff x s / (s + s_half)); short sequences fill
    few query tiles, so efficiency grows with the sequence length s."""
    s = np.maximum(np.asarray(tokens_per_seq, dtype=float), 1e-9)
    compute_s: Array = np.asarray(flops, dtype=float) / (peak_flops_s * c.compute_eff * s / (s + c.s_half))
    return np.full_like(compute_s, c.fixed_s), compute_s, np.ones(compute_s.shape, dtype=bool)


def elementwise_time_s(
    c: ElementwiseConstants, bytes_moved: ArrayLike, bw_bytes_s: float
) -> tuple[Array, Array, NDArray[np.bool_]]:
    """A memory-bound elementwise kernel: fixed + bytes / (bw x bw_eff)."""
    memory_s = np.asarray(bytes_moved, dtype=float) / (bw_bytes_s * c.bw_eff)
    return np.full_like(memory_s, c.fixed_s), memory_s, np.zeros(memory_s.shape, dtype=bool)


def allreduce_time_s(c: AllReduceConstants, message_bytes: ArrayLike, n: int, link_bw_bytes_s: float) -> Array:
    """One all-reduce over n GPUs: latency (growing with the peers each rank exchanges flags or chunks with)
    plus the bus-bandwidth term of a reduce-scatter + all-gather, 2 (n - 1) / n of the message per rank
    (Patarasuk and Yuan 2009; nccl-tests' bus bandwidth). Zero for n = 1."""
    message = np.asarray(message_bytes, dtype=float)
    if n <= 1:
        return np.zeros_like(message)
    transfer_s = 2 * (n - 1) / n * message / (link_bw_bytes_s * c.bus_bw_eff)
    latency_s: Array = c.latency_s + c.latency_per_peer_s * (n - 1) + transfer_s
    return latency_s
