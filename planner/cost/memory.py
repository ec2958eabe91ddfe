"""Memory per GPU: weights, KV cache, activations and the runtime reserve; KV capacity follows.

vLLM: KV cache = GPU memory x `gpu_memory_utilization` - weights - peak activations - runtime reserve.
TensorRT-LLM: KV cache = `kv_cache_free_gpu_mem_fraction` x (GPU memory - weights - activations - reserve).
The busiest pipeline stage sets the capacity: it holds ceil(layers / pp) layers plus the embedding or the head.
"""

from __future__ import annotations

import functools
import math

from planner.cost.ops import ACT_BYTES, EMBED_BYTES, LOGIT_BYTES, kv_bytes_per_token_per_layer
from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.specs.hardware import GIB, Frozen
from planner.specs.model import param_count


class MemoryBreakdown(Frozen):
    """Bytes per GPU of the busiest pipeline stage, by part."""

    weights_bytes: float
    kv_cache_bytes: float
    activations_bytes: float
    runtime_reserve_bytes: float
    unused_bytes: float  # left to the allocator/other processes by memory_utilization < 1
    kv_bytes_per_token: float  # KV bytes one token occupies on this GPU (all its layers)
    kv_capacity_tokens: int  # tokens of KV cache one instance holds

    def as_gib(self) -> dict[str, float]:
        """The parts in GiB, for reports."""
        return {
            "weights": self.weights_bytes / GIB,
            "kv_cache": self.kv_cache_bytes / GIB,
            "activations": self.activations_bytes / GIB,
            "runtime_reserve": self.runtime_reserve_bytes / GIB,
            "unused": self.unused_bytes / GIB,
        }


def layers_per_stage(deployment: Deployment) -> int:
    """Layers on the busiest pipeline stage."""
    return math.ceil(deployment.model.num_hidden_layers / deployment.pp_size)


def weight_bytes_per_gpu(deployment: Deployment) -> float:
    """Weights on the busiest GPU: its layers' attention and MLP split over TP (KV projections replicated when
    there are fewer KV heads than GPUs), norms replicated, plus the embedding or LM head (16-bit, split over TP).
    With PP 1 one GPU holds both the embedding and the head."""
    model, tp = deployment.model, deployment.tp_size
    counts = param_count(model)
    w = deployment.dtype.bytes_per_element
    kv_heads_local = math.ceil(model.num_key_value_heads / tp)
    kv_replication = kv_heads_local * tp / model.num_key_value_heads
    kv_proj = 2 * model.hidden_size * model.kv_size
    attention = (counts.attention_per_layer - kv_proj + kv_proj * kv_replication) / tp
    layer_bytes = (attention + counts.mlp_per_layer / tp) * w + counts.norms_per_layer * EMBED_BYTES
    ends = counts.embedding + counts.lm_head + counts.final_norm
    if deployment.pp_size > 1:
        ends = max(counts.embedding, counts.lm_head + counts.final_norm)
    if model.tie_word_embeddings and deployment.pp_size > 1:
        ends = counts.embedding  # the last stage keeps its own copy of the tied matrix
    return layers_per_stage(deployment) * layer_bytes + ends / tp * EMBED_BYTES


def activation_bytes_per_gpu(deployment: Deployment) -> float:
    """Peak transient activations of one iteration of `max_num_tokens` tokens (the engine sizes its buffers
    for it): the widest layer intermediate (q/k/v out + gated MLP, split over TP) plus the residual stream,
    plus fp32 logits for up to max_batch_size sequences."""
    model, engine, tp = deployment.model, deployment.engine, deployment.tp_size
    tokens = engine.max_num_tokens
    widest = max((model.q_size + 2 * model.kv_size) / tp, model.mlp_matrices * model.intermediate_size / tp)
    per_token = (2 * model.hidden_size + widest) * ACT_BYTES
    seqs = min(engine.max_batch_size, tokens)
    logits = seqs * model.vocab_size / tp * LOGIT_BYTES
    return tokens * per_token + logits


@functools.lru_cache(maxsize=4096)  # asked for by every knob value and rate of a layout; the answer is immutable
def memory_breakdown(deployment: Deployment) -> MemoryBreakdown:
    """Split one GPU's memory and derive the instance's KV capacity in tokens.

    Raises PlannerError when the weights and buffers leave no room for KV cache, with the memory needed.
    """
    gpu, engine = deployment.cluster.gpu, deployment.engine
    total = gpu.memory_bytes
    weights = weight_bytes_per_gpu(deployment)
    activations = activation_bytes_per_gpu(deployment)
    reserve = engine.runtime_reserve_gib * GIB
    kv_per_token = layers_per_stage(deployment) * kv_bytes_per_token_per_layer(deployment)
    if engine.kv_fraction_of_free:
        kv = (total - weights - activations - reserve) * engine.memory_utilization
    else:
        kv = total * engine.memory_utilization - weights - activations - reserve
    usable = weights + activations + reserve + max(kv, 0.0)
    if kv < kv_per_token:
        if engine.kv_fraction_of_free:  # the fraction applies to what is left, not to the whole GPU
            needed = weights + activations + reserve + kv_per_token / engine.memory_utilization
        else:
            needed = (weights + activations + reserve + kv_per_token) / engine.memory_utilization
        raise PlannerError(
            f"{deployment.model.name} does not fit on {gpu.name} at TP {deployment.tp_size} x PP "
            f"{deployment.pp_size} in {deployment.dtype.value}: each GPU needs {needed / GIB:.1f} GiB "
            f"({weights / GIB:.1f} GiB weights) but has {gpu.memory_gib:g} GiB; raise --tp/--pp or use a "
            "smaller --dtype"
        )
    return MemoryBreakdown(
        weights_bytes=weights,
        kv_cache_bytes=kv,
        activations_bytes=activations,
        runtime_reserve_bytes=reserve,
        unused_bytes=total - usable,
        kv_bytes_per_token=kv_per_token,
        kv_capacity_tokens=int(kv // kv_per_token),
    )
