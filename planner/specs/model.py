"""Decoder-only transformer specs, read from Hugging Face `config.json` key names.

Catalog files (`models/*.yaml`) hold tdplan's own fields (id, aliases, source, published parameter count) and a
`config:` mapping with the Hugging Face keys verbatim; a user's `config.json` goes through the same reader
(`model_from_hf_config`), so a catalog entry and a file on disk are modelled identically.

Adding a model family: add its `model_type` to `ARCHITECTURES` with the structural flags below, and a catalog
file whose `published_params_b` lets the parameter-count test check the reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import PlannerError
from planner.specs.hardware import Frozen


class Architecture(Frozen):
    """Structural facts a `model_type` implies that config.json does not spell out."""

    gated_mlp: bool  # SwiGLU: gate, up and down projections (3 matrices); otherwise fc1/fc2 (2 matrices)
    qkv_bias: bool  # biases on the q, k, v projections
    dense_bias: bool  # biases on the output projection and the MLP (OPT style)
    layer_norm: bool  # LayerNorm (weight and bias) rather than RMSNorm (weight only)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)
    learned_positions: bool = False  # learned absolute position embeddings (OPT; offset of 2 rows)
    tied_embeddings_default: bool = False  # transformers' default when config.json omits tie_word_embeddings
    moe: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(gated_mlp=True, qkv_bias=False, dense_bias=False, layer_norm=False),
    "mistral": Architecture(gated_mlp=True, qkv_bias=False, dense_bias=False, layer_norm=False),
    "qwen2": Architecture(gated_mlp=True, qkv_bias=True, dense_bias=False, layer_norm=False),
    "qwen3": Architecture(gated_mlp=True, qkv_bias=False, dense_bias=False, layer_norm=False, qk_norm=True),
    "mixtral": Architecture(gated_mlp=True, qkv_bias=False, dense_bias=False, layer_norm=False, moe=True),
    "qwen3_moe": Architecture(
        gated_mlp=True, qkv_bias=False, dense_bias=False, layer_norm=False, qk_norm=True, moe=True
    ),
    "opt": Architecture(
        gated_mlp=False,
        qkv_bias=True,
        dense_bias=True,
        layer_norm=True,
        learned_positions=True,
        tied_embeddings_default=True,
    ),
}

UNSUPPORTED = {
    "deepseek_v2": "multi-head latent attention",
    "deepseek_v3": "multi-head latent attention",
    "mamba": "state-space layers",
    "mamba2": "state-space layers",
    "jamba": "hybrid state-space layers",
    "t5": "an encoder-decoder architecture",
    "bart": "an encoder-decoder architecture",
    "whisper": "an encoder-decoder architecture",
    "bert": "an encoder-only architecture",
}


# Sanity bounds on config.json sizes: far above any published model, low enough to catch a corrupted file.
MAX_WIDTH = 1_048_576
MAX_LAYERS = 4_096
MAX_HEADS = 4_096
MAX_VOCAB = 16_777_216
MAX_POSITIONS = 1 << 30
MAX_EXPERTS = 65_536


class HfConfig(BaseModel):
    """The subset of a Hugging Face config.json that the cost model reads; other keys are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # counts are strict: `true` or 4096.0 is an error

    model_type: str
    hidden_size: int = Field(gt=0, le=MAX_WIDTH, strict=True)
    num_hidden_layers: int = Field(gt=0, le=MAX_LAYERS, strict=True)
    num_attention_heads: int = Field(gt=0, le=MAX_HEADS, strict=True)
    vocab_size: int = Field(gt=0, le=MAX_VOCAB, strict=True)
    intermediate_size: int | None = Field(default=None, gt=0, le=MAX_WIDTH, strict=True)
    ffn_dim: int | None = Field(default=None, gt=0, le=MAX_WIDTH, strict=True)  # OPT's name for intermediate_size
    num_key_value_heads: int | None = Field(default=None, gt=0, le=MAX_HEADS, strict=True)
    head_dim: int | None = Field(default=None, gt=0, le=MAX_WIDTH, strict=True)
    max_position_embeddings: int = Field(default=4096, gt=0, le=MAX_POSITIONS, strict=True)
    tie_word_embeddings: bool | None = Field(default=None, strict=True)
    attention_bias: bool | None = Field(default=None, strict=True)
    # MoE: Mixtral says num_local_experts, Qwen3-MoE says num_experts
    num_local_experts: int | None = Field(default=None, gt=0, le=MAX_EXPERTS, strict=True)
    num_experts: int | None = Field(default=None, gt=0, le=MAX_EXPERTS, strict=True)
    num_experts_per_tok: int | None = Field(default=None, gt=0, le=MAX_EXPERTS, strict=True)
    moe_intermediate_size: int | None = Field(default=None, gt=0, le=MAX_WIDTH, strict=True)
    torch_dtype: str | None = None


class ModelSpec(Frozen):
    """A decoder-only transformer, normalised from its config.json. Sizes are element counts."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    source: str = ""
    hf_repo: str | None = None
    published_params_b: float | None = None
    model_type: str
    arch: Architecture
    hidden_size: int
    intermediate_size: int  # dense MLP width; for MoE, the width of one expert
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    num_experts: int = 0  # 0 for dense models
    num_experts_per_tok: int = 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def q_size(self) -> int:
        """Width of the query projection output: heads x head_dim."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of one of the key/value projection outputs: kv heads x head_dim."""
        return self.num_key_value_heads * self.head_dim

    @property
    def mlp_matrices(self) -> int:
        """Weight matrices per MLP (or per expert): gate, up, down when gated; fc1, fc2 otherwise."""
        return 3 if self.arch.gated_mlp else 2


def model_from_hf_config(config: Mapping[str, Any], *, id: str, name: str | None = None, **meta: Any) -> ModelSpec:
    """Normalise a Hugging Face config.json mapping into a ModelSpec.

    Raises PlannerError for architectures the cost model cannot represent (MLA, state-space, encoder-decoder),
    naming what is missing.
    """
    model_type = str(config.get("model_type", "")).lower()
    if model_type in UNSUPPORTED:
        raise PlannerError(
            f"model '{id}' ({model_type}) uses {UNSUPPORTED[model_type]}, which tdplan does not model: "
            "dense or MoE decoder-only models with MHA/GQA attention are supported"
        )
    if model_type not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise PlannerError(
            f"model '{id}' has model_type '{model_type or '(missing)'}', which tdplan does not know: "
            f"supported types are {known}"
        )
    try:
        hf = HfConfig.model_validate(dict(config))
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        got = first.get("input")
        raise PlannerError(f"model '{id}': config key '{field}': {first['msg']}, got {got!r}") from None
    arch = ARCHITECTURES[model_type]
    num_experts = hf.num_local_experts or hf.num_experts or 0
    if arch.moe and not (num_experts and hf.num_experts_per_tok):
        raise PlannerError(f"model '{id}' ({model_type}) is MoE but its config lacks the expert counts")
    if arch.moe and model_type == "qwen3_moe":
        width = hf.moe_intermediate_size
    else:
        width = hf.ffn_dim if model_type == "opt" else hf.intermediate_size
    if width is None:
        raise PlannerError(f"model '{id}': config lacks the MLP width (intermediate_size)")
    if hf.hidden_size % hf.num_attention_heads and hf.head_dim is None:
        raise PlannerError(f"model '{id}': hidden_size is not a multiple of num_attention_heads and no head_dim")
    kv_heads = hf.num_key_value_heads or hf.num_attention_heads
    if hf.num_attention_heads % kv_heads:
        raise PlannerError(
            f"model '{id}': num_attention_heads {hf.num_attention_heads} is not a multiple of "
            f"num_key_value_heads {kv_heads}"
        )
    return ModelSpec(
        id=id,
        name=name or id,
        model_type=model_type,
        arch=arch,
        hidden_size=hf.hidden_size,
        intermediate_size=width,
        num_hidden_layers=hf.num_hidden_layers,
        num_attention_heads=hf.num_attention_heads,
        num_key_value_heads=kv_heads,
        head_dim=hf.head_dim or hf.hidden_size // hf.num_attention_heads,
        vocab_size=hf.vocab_size,
        max_position_embeddings=hf.max_position_embeddings,
        tie_word_embeddings=(
            hf.tie_word_embeddings if hf.tie_word_embeddings is not None else arch.tied_embeddings_default
        ),
        num_experts=num_experts if arch.moe else 0,
        num_experts_per_tok=(hf.num_experts_per_tok or 0) if arch.moe else 0,
        **meta,
    )


class ParamCount(Frozen):
    """Parameter counts of a model by part (element counts, not bytes)."""

    embedding: int  # token (and learned position) embeddings
    attention_per_layer: int
    mlp_per_layer: int  # all experts for MoE
    active_mlp_per_layer: int  # what one token touches: k experts plus the router for MoE
    norms_per_layer: int
    final_norm: int
    lm_head: int  # 0 when tied to the embedding

    @property
    def per_layer(self) -> int:
        return self.attention_per_layer + self.mlp_per_layer + self.norms_per_layer

    def total(self, num_layers: int) -> int:
        return self.embedding + num_layers * self.per_layer + self.final_norm + self.lm_head


def param_count(model: ModelSpec) -> ParamCount:
    """Count parameters from the architecture.

    Attention: q (h x H*d), k and v (h x Hkv*d each), o (H*d x h), plus q/k/v biases (H*d + 2 Hkv*d) where the
    architecture has them, the o bias (h) for OPT, and per-head q/k norms (2 d) for Qwen3.
    MLP: 3 matrices h x I when gated (SwiGLU), else 2 with biases (I + h). MoE: E experts of 3 h x I each plus
    the router (h x E).
    Norms: 2 per layer; RMSNorm has a weight (h), LayerNorm a weight and a bias (2 h).
    Embedding: V x h, plus (max_positions + 2) x h learned positions for OPT (its 2-row offset).
    """
    h, inter, arch = model.hidden_size, model.intermediate_size, model.arch
    attention = h * model.q_size + 2 * h * model.kv_size + model.q_size * h
    if arch.qkv_bias:
        attention += model.q_size + 2 * model.kv_size
    if arch.dense_bias:
        attention += h
    if arch.qk_norm:
        attention += 2 * model.head_dim
    expert = model.mlp_matrices * h * inter + (inter + h if arch.dense_bias else 0)
    if model.is_moe:
        router = h * model.num_experts
        mlp = model.num_experts * expert + router
        active_mlp = model.num_experts_per_tok * expert + router
    else:
        mlp = active_mlp = expert
    norm = 2 * h if arch.layer_norm else h
    embedding = model.vocab_size * h
    if arch.learned_positions:
        embedding += (model.max_position_embeddings + 2) * h
    return ParamCount(
        embedding=embedding,
        attention_per_layer=attention,
        mlp_per_layer=mlp,
        active_mlp_per_layer=active_mlp,
        norms_per_layer=2 * norm,
        final_norm=norm,
        lm_head=0 if model.tie_word_embeddings else model.vocab_size * h,
    )


def total_params(model: ModelSpec) -> int:
    """All parameters of the model (element count)."""
    return param_count(model).total(model.num_hidden_layers)


def active_params(model: ModelSpec) -> int:
    """Parameters one token passes through (MoE: only its k experts)."""
    count = param_count(model)
    layer = count.attention_per_layer + count.active_mlp_per_layer + count.norms_per_layer
    return count.embedding + model.num_hidden_layers * layer + count.final_norm + count.lm_head
