"""A model as a flat list of operations (FLOPs and bytes) for one engine iteration on one GPU.

An iteration processes a `BatchShape`: some prefill tokens (new prompt tokens, possibly chunks of longer prompts)
and some decode sequences (one new token each, reading their whole KV cache). The same builder serves prefill,
decode and mixed iterations: the phase is in the shape, not in the code.

Per-GPU sizes follow Megatron-LM tensor parallelism (Shoeybi et al. 2019, section 3): the q/k/v and gate/up
projections are split by columns, the output and down projections by rows, so each GPU holds 1/tp of every
matrix and the activations between the two halves stay local. KV heads are split across GPUs; when there are
fewer KV heads than GPUs each GPU keeps one head (replicated), as vLLM and TensorRT-LLM do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from planner.specs.deployment import Deployment

ACT_BYTES = 2.0  # activations are 16-bit in every supported precision mode
LOGIT_BYTES = 4.0  # logits are materialised in fp32 for sampling
EMBED_BYTES = 2.0  # embedding and LM head stay 16-bit when the body is quantised (vLLM, TensorRT-LLM defaults)


@dataclass(frozen=True, slots=True)
class BatchShape:
    """What one iteration computes, as sufficient statistics.

    prefill_tokens: new prompt tokens in the iteration (all prefill sequences together).
    prefill_seqs: sequences whose prompt (or a chunk of it) is in the iteration.
    prefill_attn_pairs: causal (query, key) pairs of the prefill tokens: a chunk of s tokens after c cached
        tokens has s*c + s*(s+1)/2 pairs.
    prefill_context_tokens: tokens already cached for the prefill sequences (non-zero for later chunks).
    decode_seqs: sequences generating one token each.
    decode_context_tokens: KV-cache tokens the decode sequences attend to, summed.
    Counts may be fractional: steady-state means. A plain dataclass: the model builds thousands per fit.
    """

    prefill_tokens: float = 0.0
    prefill_seqs: float = 0.0
    prefill_attn_pairs: float = 0.0
    prefill_context_tokens: float = 0.0
    decode_seqs: float = 0.0
    decode_context_tokens: float = 0.0

    @classmethod
    def prefill(cls, prompt_len: float, num_seqs: float = 1.0, cached_len: float = 0.0) -> BatchShape:
        """`num_seqs` prompts (or chunks) of `prompt_len` new tokens after `cached_len` cached ones."""
        pairs = prompt_len * cached_len + prompt_len * (prompt_len + 1) / 2
        return cls(
            prefill_tokens=prompt_len * num_seqs,
            prefill_seqs=num_seqs,
            prefill_attn_pairs=pairs * num_seqs,
            prefill_context_tokens=cached_len * num_seqs,
        )

    @classmethod
    def decode(cls, num_seqs: float, mean_context_len: float) -> BatchShape:
        """`num_seqs` sequences each generating one token after `mean_context_len` tokens on average."""
        return cls(decode_seqs=num_seqs, decode_context_tokens=num_seqs * mean_context_len)

    def __add__(self, other: BatchShape) -> BatchShape:
        return BatchShape(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(BatchShape)))

    @property
    def tokens(self) -> float:
        """Rows of every GEMM: prefill tokens plus one per decode sequence."""
        return self.prefill_tokens + self.decode_seqs

    @property
    def seqs(self) -> float:
        return self.prefill_seqs + self.decode_seqs


@dataclass(frozen=True, slots=True)
class Op:
    """One kernel (or a fused group) on one GPU: FLOPs and bytes moved, repeated `count` times per iteration.

    kind: "gemm" (tensor-core matmul whose efficiency depends on `rows`), "attention", "elementwise",
    "allreduce" (bytes = message size per GPU) or "p2p" (bytes sent to the next pipeline stage).
    """

    name: str
    kind: str
    count: float
    flops: float
    bytes: float
    rows: float = 0.0  # GEMM M dimension (tokens through the matmul)


def _kv_heads_per_gpu(deployment: Deployment) -> int:
    return math.ceil(deployment.model.num_key_value_heads / deployment.tp_size)


def kv_bytes_per_token_per_layer(deployment: Deployment) -> float:
    """KV-cache bytes one token occupies in one layer on one GPU: key and value (2) x local kv heads x
    head_dim x bytes per element."""
    model = deployment.model
    return 2 * _kv_heads_per_gpu(deployment) * model.head_dim * deployment.kv_dtype.bytes_per_element


def layer_ops(deployment: Deployment, batch: BatchShape) -> list[Op]:
    """Operations of one transformer layer on one GPU, for one iteration of `batch`."""
    model, tp = deployment.model, deployment.tp_size
    h, hd = model.hidden_size, model.head_dim
    w = deployment.dtype.bytes_per_element
    rows = batch.tokens
    q_local = model.q_size / tp
    kv_local = _kv_heads_per_gpu(deployment) * hd
    qkv_out = q_local + 2 * kv_local
    inter_local = model.intermediate_size / tp
    mats = model.mlp_matrices
    kv_token_bytes = kv_bytes_per_token_per_layer(deployment)

    ops = [
        # q, k, v projection: 2 FLOPs per multiply-add x rows x h x (q + 2 kv) outputs; reads the weights once
        # and the input rows, writes the outputs.
        Op(
            "qkv_proj",
            "gemm",
            1,
            2 * rows * h * qkv_out,
            h * qkv_out * w + rows * (h + qkv_out) * ACT_BYTES,
            rows,
        ),
        # attention output projection: (H*d / tp) x h
        Op(
            "o_proj",
            "gemm",
            1,
            2 * rows * q_local * h,
            q_local * h * w + rows * (q_local + h) * ACT_BYTES,
            rows,
        ),
    ]
    if batch.prefill_tokens:
        # Prefill attention (FlashAttention): QK^T and PV are 2 matmuls of 2 FLOPs per multiply-add per head dim
        # per causal (query, key) pair: 4 * d * pairs per query head, 4 * (H*d / tp) * pairs per GPU. Reads Q and
        # the K/V of the chunk and its cached context once, writes K/V of the new tokens into the cache and the
        # output.
        kv_read = (batch.prefill_context_tokens + batch.prefill_tokens) * kv_token_bytes
        kv_write = batch.prefill_tokens * kv_token_bytes
        q_io = 2 * batch.prefill_tokens * q_local * ACT_BYTES
        ops.append(
            Op(
                "prefill_attention",
                "attention",
                1,
                4 * q_local * batch.prefill_attn_pairs,
                kv_read + kv_write + q_io,
            )
        )
    if batch.decode_seqs:
        # Decode attention: every sequence reads its whole KV cache (memory bound); 4 * d FLOPs per head per
        # cached token; writes the new token's K/V.
        ops.append(
            Op(
                "decode_attention",
                "attention",
                1,
                4 * q_local * batch.decode_context_tokens,
                (batch.decode_context_tokens + batch.decode_seqs) * kv_token_bytes
                + 2 * batch.decode_seqs * q_local * ACT_BYTES,
            )
        )
    if model.is_moe:
        e, k = model.num_experts, model.num_experts_per_tok
        # Experts a batch touches: each token picks k of e; with uniform routing an expert is missed by all
        # `rows` tokens with probability (1 - k/e)^rows, so e * (1 - (1 - k/e)^rows) experts are read.
        touched = e * (1 - (1 - k / e) ** rows) if rows else 0.0
        expert_rows = rows * k / max(touched, 1.0)
        ops.append(Op("router", "gemm", 1, 2 * rows * h * e, h * e * EMBED_BYTES + rows * (h + e) * ACT_BYTES, rows))
        ops.append(
            Op(
                "experts",
                "gemm",
                1,
                2 * rows * k * mats * h * inter_local,
                touched * mats * h * inter_local * w + rows * k * (2 * h + mats * inter_local) * ACT_BYTES,
                expert_rows,
            )
        )
    else:
        # MLP: gate+up (h -> 2 I) and down (I -> h) when gated, fc1/fc2 otherwise; mats x h x I weights.
        ops.append(
            Op(
                "mlp",
                "gemm",
                1,
                2 * rows * mats * h * inter_local,
                mats * h * inter_local * w + rows * (2 * h + mats * inter_local) * ACT_BYTES,
                rows,
            )
        )
    # Norms (2 per layer: read + write h), residual adds (2: read 2 h, write h), activation/gating
    # (read 2 I, write I when gated): all memory bound.
    elementwise_bytes = rows * (2 * 2 * h + 2 * 3 * h + 3 * inter_local) * ACT_BYTES
    ops.append(Op("elementwise", "elementwise", 1, 0.0, elementwise_bytes))
    if tp > 1:
        # Two all-reduces per layer (after attention and after the MLP) of the rows x h activations.
        ops.append(Op("tp_allreduce", "allreduce", 2, 0.0, rows * h * ACT_BYTES))
    return ops


def head_ops(deployment: Deployment, batch: BatchShape) -> list[Op]:
    """Embedding lookup (first stage) and LM head (last stage) on one GPU.

    Only the last position of each sequence needs logits, so the LM head has `seqs` rows, not `tokens`
    (vLLM and TensorRT-LLM gather the last hidden state before the head). The vocabulary is split over TP.
    """
    model, tp = deployment.model, deployment.tp_size
    h, vocab = model.hidden_size, model.vocab_size
    seqs = batch.seqs
    return [
        Op("embedding", "elementwise", 1, 0.0, 2 * batch.tokens * h * EMBED_BYTES),
        Op(
            "lm_head",
            "gemm",
            1,
            2 * seqs * h * vocab / tp,
            h * vocab / tp * EMBED_BYTES + seqs * (h * ACT_BYTES + vocab / tp * LOGIT_BYTES),
            seqs,
        ),
    ]


def stage_send_op(deployment: Deployment, batch: BatchShape) -> Op:
    """Activations one pipeline stage sends to the next: rows x h in 16 bits."""
    return Op("pp_send", "p2p", 1, 0.0, batch.tokens * deployment.model.hidden_size * ACT_BYTES)
