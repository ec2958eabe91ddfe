"""A model as a flat list of kernels for one engine iteration on one GPU, each a linear form over the batch.

An iteration processes a `BatchShape`: some prefill tokens (new prompt tokens, possibly chunks of longer prompts)
and some decode sequences (one new token each, reading their whole KV cache). The same builder serves prefill,
decode and mixed iterations: the phase is in the shape, not in the code.

Every quantity an op needs (FLOPs, bytes, GEMM rows, sequences) is linear in the shape's sufficient statistics
`FEATURES`, so an op stores the coefficients of those linear forms once per deployment; `planner.cost.compiled`
stacks them into matrices and evaluates thousands of shapes at once. The one non-linear term, the experts a MoE
batch touches, is kept as its own field.

Per-GPU sizes follow Megatron-LM tensor parallelism (Shoeybi et al. 2019, section 3): the q/k/v and gate/up
projections are split by columns, the output and down projections by rows, so each GPU holds 1/tp of every
matrix and the activations between the two halves stay local. KV heads are split across GPUs; when there are
fewer KV heads than GPUs each GPU keeps one head (replicated), as vLLM and TensorRT-LLM do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum

import numpy as np
from numpy.typing import NDArray

from planner.specs.deployment import Deployment
from planner.specs.precision import Dtype

ACT_BYTES = 2.0  # activations are 16-bit in every supported precision mode
LOGIT_BYTES = 4.0  # logits are materialised in fp32 for sampling
EMBED_BYTES = 2.0  # embedding and LM head stay 16-bit when the body is quantised (vLLM, TensorRT-LLM defaults)

# The sufficient statistics of a batch, in the order of a feature vector; "one" carries constant terms.
FEATURES = (
    "one",
    "prefill_tokens",
    "prefill_seqs",
    "prefill_attn_pairs",
    "prefill_context_tokens",
    "decode_seqs",
    "decode_context_tokens",
)
Linear = NDArray[np.float64]  # coefficients over FEATURES


def linear(**coefficients: float) -> Linear:
    """A linear form over FEATURES from named coefficients, e.g. linear(prefill_tokens=2.0, one=5.0)."""
    vector = np.zeros(len(FEATURES))
    for name, value in coefficients.items():
        vector[FEATURES.index(name)] = value
    return vector


ROWS = linear(prefill_tokens=1.0, decode_seqs=1.0)  # GEMM rows: every prefill token and one per decode sequence
SEQS = linear(prefill_seqs=1.0, decode_seqs=1.0)  # sequences in the iteration (rows of the LM head)
ZERO = linear()
ONE = linear(one=1.0)


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
    Counts may be fractional: steady-state means.
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

    def features(self) -> NDArray[np.float64]:
        """The shape as a vector over FEATURES."""
        return np.array([1.0, *(getattr(self, name) for name in FEATURES[1:])])


class OpKind(str, Enum):
    """Kernel families, each with its own timing law (planner.cost.kernels)."""

    gemm = "gemm"
    prefill_attention = "prefill_attention"
    decode_attention = "decode_attention"
    elementwise = "elementwise"
    allreduce = "allreduce"
    p2p = "p2p"


@dataclass(frozen=True, slots=True)
class Op:
    """One kernel (or a group of like kernels) on one GPU, repeated `count` times per iteration.

    flops, bytes: linear forms of the op's FLOPs and bytes moved (allreduce: the message per rank; p2p: bytes
        sent to the next pipeline stage).
    size: linear form of the size that sets the op's efficiency: GEMM rows m, prefill attention query tokens
        (divided by `size_per`, the prefill sequences, to give tokens per sequence s).
    items: linear form of the per-sequence work of decode attention.
    gate: the op runs (and pays its fixed latency) only where this linear form is positive.
    kernels: launches the op stands for (its fixed latency counts this many times).
    dtype: GEMM weight format (the LM head and router stay 16-bit when the body is quantised).
    moe_experts, moe_topk, moe_weight_bytes: routed-expert GEMMs read only the experts the batch touches.
    """

    name: str
    kind: OpKind
    count: float
    flops: Linear
    bytes: Linear
    size: Linear = field(default_factory=linear)
    size_per: Linear = field(default_factory=lambda: ONE)
    items: Linear = field(default_factory=linear)
    gate: Linear = field(default_factory=lambda: ROWS)
    kernels: float = 1.0
    dtype: Dtype = Dtype.bf16
    moe_experts: int = 0
    moe_topk: int = 0
    moe_weight_bytes: float = 0.0


@dataclass(frozen=True, slots=True)
class OpLoad:
    """An op's work at one batch shape: what its kernel law takes."""

    flops: float
    bytes: float
    size: float  # GEMM rows per weight matrix; prefill attention tokens per sequence
    items: float  # decode sequences (per-sequence work)
    runs: bool  # the op is launched at all


def experts_touched(rows: NDArray[np.float64] | float, experts: int, topk: int) -> NDArray[np.float64]:
    """Experts a batch of `rows` tokens touches: each token picks k of e; with uniform routing an expert is
    missed by all rows with probability (1 - k/e)^rows, so e (1 - (1 - k/e)^rows) experts are read."""
    return np.asarray(experts * -np.expm1(np.asarray(rows, dtype=float) * math.log1p(-topk / experts)))


def op_load(op: Op, batch: BatchShape) -> OpLoad:
    """Evaluate an op's linear forms at `batch`; routed experts read only the experts the batch touches, and
    each touched expert's GEMM sees the token-expert pairs shared among them."""
    x = batch.features()
    bytes_moved, size = float(op.bytes @ x), float(op.size @ x)
    if op.moe_experts:
        touched = max(float(experts_touched(batch.tokens, op.moe_experts, op.moe_topk)), 1.0)
        bytes_moved += touched * op.moe_weight_bytes
        size /= touched
    return OpLoad(
        flops=float(op.flops @ x),
        bytes=bytes_moved,
        size=size / max(float(op.size_per @ x), 1e-12),
        items=float(op.items @ x),
        runs=float(op.gate @ x) > 0,
    )


def kv_heads_per_gpu(deployment: Deployment) -> int:
    return math.ceil(deployment.model.num_key_value_heads / deployment.tp_size)


def kv_bytes_per_token_per_layer(deployment: Deployment) -> float:
    """KV-cache bytes one token occupies in one layer on one GPU: key and value (2) x local kv heads x
    head_dim x bytes per element."""
    model = deployment.model
    return 2 * kv_heads_per_gpu(deployment) * model.head_dim * deployment.kv_dtype.bytes_per_element


def gemm(name: str, n: float, k: float, weight_bytes: float, count: float, dtype: Dtype) -> Op:
    """Y[m, n] = X[m, k] W[n, k]^T with m = ROWS: 2 FLOPs per multiply-add x m n k; reads the n k weights once
    and the m k input rows, writes the m n outputs (16-bit)."""
    return Op(
        name,
        OpKind.gemm,
        count,
        flops=2 * n * k * ROWS,
        bytes=n * k * weight_bytes * ONE + (n + k) * ACT_BYTES * ROWS,
        size=ROWS,
        dtype=dtype,
    )


def layer_ops(deployment: Deployment) -> list[Op]:
    """Kernels of the transformer layers of the busiest pipeline stage on one GPU, each counted once per
    layer of the stage."""
    model, tp, engine = deployment.model, deployment.tp_size, deployment.engine
    layers = math.ceil(model.num_hidden_layers / deployment.pp_size)
    h, hd = model.hidden_size, model.head_dim
    w, dtype = deployment.dtype.bytes_per_element, deployment.dtype
    q_local = model.q_size / tp
    qkv_out = q_local + 2 * kv_heads_per_gpu(deployment) * hd
    inter_local = model.intermediate_size / tp
    up_out = (model.mlp_matrices - 1) * inter_local  # gate + up when gated (SwiGLU), fc1 otherwise
    kv_token = kv_bytes_per_token_per_layer(deployment)

    ops = [
        gemm("qkv_proj", qkv_out, h, w, layers, dtype),
        gemm("o_proj", h, q_local, w, layers, dtype),
        # Prefill attention (FlashAttention): QK^T and PV are 2 matmuls of 2 FLOPs per multiply-add per head dim
        # per causal (query, key) pair: 4 x (H d / tp) x pairs per GPU. Reads Q and the K/V of the chunk and its
        # cached context once, writes the new tokens' K/V and the output.
        Op(
            "prefill_attention",
            OpKind.prefill_attention,
            layers,
            flops=4 * q_local * linear(prefill_attn_pairs=1.0),
            bytes=kv_token * linear(prefill_context_tokens=1.0, prefill_tokens=2.0)
            + 2 * q_local * ACT_BYTES * linear(prefill_tokens=1.0),
            size=linear(prefill_tokens=1.0),
            size_per=linear(prefill_seqs=1.0),
            gate=linear(prefill_tokens=1.0),
        ),
        # Decode attention: every sequence reads its whole KV cache and writes its new token's K/V; 4 d FLOPs
        # per head per cached token; per-sequence work (block tables, split-K reductions) counted by `items`.
        Op(
            "decode_attention",
            OpKind.decode_attention,
            layers,
            flops=4 * q_local * linear(decode_context_tokens=1.0),
            bytes=kv_token * linear(decode_context_tokens=1.0, decode_seqs=1.0)
            + 2 * q_local * ACT_BYTES * linear(decode_seqs=1.0),
            items=linear(decode_seqs=1.0),
            gate=linear(decode_seqs=1.0),
        ),
    ]
    if model.is_moe:
        e, k = model.num_experts, model.num_experts_per_tok
        ops.append(gemm("router", e, h, EMBED_BYTES, layers, Dtype.bf16))
        for name, n, kk in (("experts_up", up_out, h), ("experts_down", h, inter_local)):
            # Each token runs k experts: k x the FLOPs and activations of one dense MLP; the weights read are
            # those of the experts the batch touches (planner.cost.compiled.experts_touched).
            ops.append(
                Op(
                    name,
                    OpKind.gemm,
                    layers,
                    flops=2 * k * n * kk * ROWS,
                    bytes=k * (n + kk) * ACT_BYTES * ROWS,
                    size=k * ROWS,  # token-expert pairs, shared among the touched experts
                    dtype=dtype,
                    moe_experts=e,
                    moe_topk=k,
                    moe_weight_bytes=n * kk * w,
                )
            )
    else:
        ops.append(gemm("mlp_up", up_out, h, w, layers, dtype))
        ops.append(gemm("mlp_down", h, inter_local, w, layers, dtype))
    # Elementwise kernels (norms, residual adds, rotary, activation, KV-cache write), as many launches as the
    # engine runs per layer (EngineSpec.elementwise_kernels_per_layer); their traffic: 2 norms (read + write h),
    # 2 residual adds (read 2 h, write h), the activation (read 2 I, write I when gated; read + write I
    # otherwise): all 16-bit.
    act_io = 3 * inter_local if model.mlp_matrices == 3 else 2 * inter_local
    ops.append(
        Op(
            "elementwise",
            OpKind.elementwise,
            layers,
            flops=ZERO,
            bytes=(2 * 2 * h + 2 * 3 * h + act_io) * ACT_BYTES * ROWS,
            kernels=engine.elementwise_kernels_per_layer,
        )
    )
    if tp > 1:
        # Two all-reduces per layer (after attention and after the MLP) of the rows x h activations.
        ops.append(Op("tp_allreduce", OpKind.allreduce, 2 * layers, flops=ZERO, bytes=h * ACT_BYTES * ROWS))
    return ops


def head_ops(deployment: Deployment) -> list[Op]:
    """Embedding lookup (first stage, counted only without PP: the busiest stage is the last) and the final
    norm and LM head (last stage).

    Only the last position of each sequence needs logits, so the LM head has `seqs` rows, not `tokens`
    (vLLM and TensorRT-LLM gather the last hidden state before the head). The vocabulary is split over TP."""
    model, tp = deployment.model, deployment.tp_size
    h, vocab = model.hidden_size, model.vocab_size
    head = Op(
        "lm_head",
        OpKind.gemm,
        1,
        flops=2 * h * vocab / tp * SEQS,
        bytes=h * vocab / tp * EMBED_BYTES * ONE + (h * ACT_BYTES + vocab / tp * LOGIT_BYTES) * SEQS,
        size=SEQS,
        dtype=Dtype.bf16,
    )
    ops = [head]
    if deployment.pp_size == 1:
        ops.insert(0, Op("embedding", OpKind.elementwise, 1, flops=ZERO, bytes=2 * h * EMBED_BYTES * ROWS))
    return ops


def stage_ops(deployment: Deployment) -> list[Op]:
    """Every kernel of the busiest pipeline stage for one iteration. What the builders here read of a deployment
    is part of `planner.cost.compiled.cost_key`, which shares compilations: keep the two in step."""
    return layer_ops(deployment) + head_ops(deployment)


def stage_send_op(deployment: Deployment) -> Op:
    """Activations one pipeline stage sends to the next: rows x h in 16 bits."""
    return Op("pp_send", OpKind.p2p, 1, flops=ZERO, bytes=deployment.model.hidden_size * ACT_BYTES * ROWS)
