"""Numeric formats for weights, activations and the KV cache.

A closed set, so an enum that carries its data: bytes per element and which tensor-core rate a GEMM runs at.
"""

from __future__ import annotations

from enum import Enum


class Dtype(str, Enum):
    """Storage format of weights or KV cache. Values are the CLI spellings."""

    fp16 = "fp16"
    bf16 = "bf16"
    fp8 = "fp8"
    int8 = "int8"
    int4 = "int4"

    @property
    def bytes_per_element(self) -> float:
        """Bytes per stored element, scales included.

        int4 weight-only (GPTQ/AWQ, group size 128): 0.5 byte per weight plus one fp16 scale and one packed
        zero point per group: (2 + 0.5) / 128 = 0.0195 byte per weight. fp8/int8 use per-channel scales, which
        are negligible next to the weights.
        """
        return _BYTES[self]

    @property
    def is_float16(self) -> bool:
        return self in (Dtype.fp16, Dtype.bf16)


_BYTES: dict[Dtype, float] = {
    Dtype.fp16: 2.0,
    Dtype.bf16: 2.0,
    Dtype.fp8: 1.0,
    Dtype.int8: 1.0,
    Dtype.int4: 0.5 + 2.5 / 128,
}

WEIGHT_DTYPES: tuple[Dtype, ...] = (Dtype.bf16, Dtype.fp16, Dtype.fp8, Dtype.int8, Dtype.int4)
KV_DTYPES: tuple[Dtype, ...] = (Dtype.bf16, Dtype.fp16, Dtype.fp8, Dtype.int8)


def parse_dtype(text: str, allowed: tuple[Dtype, ...], param: str) -> Dtype:
    """Read a dtype name (case-insensitive); a name outside `allowed` raises PlannerError naming the choices
    and the parameter (`param`) it was given for."""
    from planner.errors import PlannerError

    choices = ", ".join(d.value for d in allowed)
    if isinstance(text, Dtype) and text in allowed:
        return text
    if not isinstance(text, str):
        raise PlannerError(f"expected one of {choices}, got {text!r}", param)
    key = text.strip().lower().replace("bfloat16", "bf16").replace("float16", "fp16")
    for dtype in allowed:
        if dtype.value == key:
            return dtype
    raise PlannerError(f"unknown format '{text}': choose one of {choices}", param)


def resolve_dtypes(
    dtype: str | Dtype, kv_dtype: str | Dtype | None, fp8_kv_with_fp8_weights: bool = False
) -> tuple[Dtype, Dtype]:
    """Weight and KV-cache formats from CLI text. The KV cache defaults to the 16-bit weight format; with
    quantised weights, to fp8 where the engine keeps an fp8 checkpoint's KV cache in fp8
    (EngineSpec.fp8_kv_cache_with_fp8_weights), else to fp16."""
    weights = parse_dtype(dtype, WEIGHT_DTYPES, "dtype")
    if kv_dtype is None:
        if weights.is_float16:
            return weights, weights
        return weights, Dtype.fp8 if weights is Dtype.fp8 and fp8_kv_with_fp8_weights else Dtype.fp16
    return weights, parse_dtype(kv_dtype, KV_DTYPES, "kv_dtype")
