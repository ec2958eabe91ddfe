"""Memory per GPU (`planner.cost.memory`): weights, the engines' KV-cache policies, and the does-not-fit
error.

The tiny model of `test_ops` (h = 1024, 2 layers, 8 heads, 2 KV heads of 128, I = 4096 gated, V = 32768,
untied head) has, in elements:
    attention per layer  q 1024 x 1024 + k, v 2 x 1024 x 256 + o 1024 x 1024 = 2,621,440
    MLP per layer        3 x 1024 x 4096                                    = 12,582,912
    norms per layer      2 x 1024                                           = 2,048
    embedding, LM head   32768 x 1024 = 33,554,432 each; final norm 1,024
"""

from __future__ import annotations

import re

import pytest
from test_ops import catalog_engine, make_deployment, make_gpu, make_model

from planner.cost.memory import memory_breakdown, weight_bytes_per_gpu
from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.specs.engine import EngineSpec
from planner.specs.precision import Dtype

# Weights of the tiny model at TP 1 in bf16 (see test_tp1_bf16): 195,045,376 bytes.
TINY_WEIGHT_BYTES = 195_045_376


class TestWeightBytesPerGpu:
    def test_tp1_bf16(self) -> None:
        """Per layer (2,621,440 + 12,582,912) x 2 bytes + 2,048 x 2 = 30,412,800; 2 layers 60,825,600.
        Embedding + head + final norm (33,554,432 x 2 + 1,024) x 2 bytes = 134,219,776.
        Total 195,045,376."""
        assert weight_bytes_per_gpu(make_deployment()) == TINY_WEIGHT_BYTES

    def test_tp4_replicates_the_kv_projections(self) -> None:
        """2 KV heads over 4 GPUs: each keeps one head, so the k/v projections (524,288) count twice:
        attention (2,621,440 - 524,288 + 2 x 524,288) / 4 = 786,432; MLP 12,582,912 / 4 = 3,145,728.
        Per layer (786,432 + 3,145,728) x 2 + 2,048 x 2 = 7,868,416; 2 layers 15,736,832.
        Ends 67,109,888 / 4 x 2 = 33,554,944. Total 49,291,776."""
        assert weight_bytes_per_gpu(make_deployment(tp_size=4)) == 49_291_776

    def test_fp8_body_keeps_16_bit_embeddings_and_norms(self) -> None:
        """fp8: per layer 15,204,352 x 1 byte + 2,048 x 2 = 15,208,448; 2 layers 30,416,896.
        Embedding and head stay 16-bit: 134,219,776. Total 164,636,672."""
        assert weight_bytes_per_gpu(make_deployment(dtype=Dtype.fp8)) == 164_636_672

    def test_pp2_holds_one_layer_and_the_larger_end(self) -> None:
        """PP 2: 1 layer per stage (30,412,800) plus the larger of the embedding (33,554,432) and the head
        with the final norm (33,555,456), in 2 bytes: 67,110,912. Total 97,523,712."""
        assert weight_bytes_per_gpu(make_deployment(pp_size=2)) == 97_523_712

    @pytest.mark.parametrize(
        ("pp_size", "expected"),
        [
            # PP 1: the tied matrix once plus the final norm: (33,554,432 + 1,024) x 2 + 60,825,600
            (1, 127_936_512),
            # PP 2: the last stage keeps its own copy: 33,554,432 x 2 + 30,412,800
            (2, 97_521_664),
        ],
    )
    def test_tied_embeddings(self, pp_size: int, expected: int) -> None:
        deployment = make_deployment(model=make_model(tie_word_embeddings=True), pp_size=pp_size)
        assert weight_bytes_per_gpu(deployment) == expected


def policy(engine: EngineSpec) -> tuple[bool, float, float]:
    """The engine-profile fields the KV literals below are computed with."""
    return engine.kv_fraction_of_free, engine.memory_utilization, engine.runtime_reserve_gib


class TestKvCapacity:
    """The tiny model on one 16 GiB test GPU (17,179,869,184 bytes); KV per token 2 layers x 1,024 = 2,048
    bytes. Activations: 8192 tokens x (2 x 1024 + max(1536, 3 x 4096)) x 2 = 234,881,024 bytes plus fp32
    logits for max_batch_size sequences: x 32768 x 4."""

    def test_tensorrt_llm_takes_a_fraction_of_free_memory(self) -> None:
        """TensorRT-LLM: 0.9 of what is left after weights, activations and a 3.9 GiB reserve.
        Activations 234,881,024 + 2048 x 32768 x 4 = 503,316,480; reserve 3.9 x 2^30 = 4,187,593,113.6.
        KV = (17,179,869,184 - 195,045,376 - 503,316,480 - 4,187,593,113.6) x 0.9 = 11,064,522,792.96 bytes
        -> 11,064,522,792.96 // 2,048 = 5,402,599 tokens."""
        engine = catalog_engine("trtllm")
        assert policy(engine) == (True, 0.9, 3.9)
        memory = memory_breakdown(make_deployment(engine=engine))
        assert memory.weights_bytes == TINY_WEIGHT_BYTES
        assert memory.activations_bytes == 503_316_480
        assert memory.kv_bytes_per_token == 2048
        assert memory.kv_cache_bytes == pytest.approx(11_064_522_792.96, rel=1e-12)
        assert memory.kv_capacity_tokens == 5_402_599

    def test_vllm_takes_a_fraction_of_total_memory(self) -> None:
        """vLLM: 0.9 of total memory minus weights, activations and a 1.5 GiB reserve.
        Activations 234,881,024 + 256 x 32768 x 4 = 268,435,456; reserve 1.5 x 2^30 = 1,610,612,736.
        KV = 17,179,869,184 x 0.9 - 195,045,376 - 268,435,456 - 1,610,612,736 = 13,387,788,697.6 bytes
        -> // 2,048 = 6,537,006 tokens."""
        engine = catalog_engine("vllm")
        assert policy(engine) == (False, 0.9, 1.5)
        memory = memory_breakdown(make_deployment(engine=engine))
        assert memory.activations_bytes == 268_435_456
        assert memory.kv_cache_bytes == pytest.approx(13_387_788_697.6, rel=1e-12)
        assert memory.kv_capacity_tokens == 6_537_006

    @pytest.mark.parametrize("engine", ["trtllm", "vllm"])
    def test_parts_add_up_to_the_gpu(self, engine: str) -> None:
        memory = memory_breakdown(make_deployment(engine=engine))
        parts = sum(memory.as_gib().values())
        assert parts == pytest.approx(16, rel=1e-12)
        assert memory.unused_bytes >= 0

    def test_tp_splits_the_cache_of_an_instance(self) -> None:
        """At TP 2 each GPU holds 1 of the 2 KV heads: 2 layers x 2 x 1 x 128 x 2 = 1,024 bytes per token, so
        the instance holds about twice the tokens of TP 1 (less weight per GPU adds a little more)."""
        tp1 = memory_breakdown(make_deployment(engine="vllm"))
        tp2 = memory_breakdown(make_deployment(engine="vllm", tp_size=2))
        assert tp2.kv_bytes_per_token == 1024
        assert tp2.kv_capacity_tokens > 2 * tp1.kv_capacity_tokens


def stated_gib(deployment: Deployment) -> float:
    """The GiB per GPU a does-not-fit error says the deployment needs."""
    with pytest.raises(PlannerError) as error:
        memory_breakdown(deployment)
    match = re.search(r"needs ([0-9.]+) GiB", str(error.value))
    assert match, str(error.value)
    return float(match.group(1))


class TestDoesNotFit:
    def test_message_names_the_memory_needed_tensorrt_llm(self) -> None:
        """TensorRT-LLM needs weights + activations + reserve, and room for one token of KV after taking 0.9
        of the rest: 195,045,376 + 503,316,480 + 4,187,593,113.6 + 2,048 / 0.9 = 4,885,957,245.4 bytes
        = 4.55 GiB, more than a 4 GiB GPU has."""
        with pytest.raises(PlannerError, match=r"each GPU needs 4\.6 GiB \(0\.2 GiB weights\) but has 4 GiB"):
            memory_breakdown(make_deployment(gpu=make_gpu(memory_gib=4), engine="trtllm"))

    def test_message_names_the_memory_needed_vllm(self) -> None:
        """vLLM: (195,045,376 + 268,435,456 + 1,610,612,736 + 2,048) / 0.9 = 2,304,548,462.2 bytes = 2.15 GiB
        (printed 2.1), more than a 2 GiB GPU has."""
        with pytest.raises(PlannerError, match=r"each GPU needs 2\.1 GiB .* but has 2 GiB"):
            memory_breakdown(make_deployment(gpu=make_gpu(memory_gib=2), engine="vllm"))

    @pytest.mark.parametrize(("engine", "memory_gib"), [("trtllm", 4), ("vllm", 2)])
    def test_the_stated_memory_is_the_threshold(self, engine: str, memory_gib: float) -> None:
        """A GPU with the stated GiB (within the message's rounding of 0.05) fits; one with less does not."""
        needed = stated_gib(make_deployment(gpu=make_gpu(memory_gib=memory_gib), engine=engine))
        assert memory_breakdown(make_deployment(gpu=make_gpu(memory_gib=needed + 0.051), engine=engine))
        stated_gib(make_deployment(gpu=make_gpu(memory_gib=needed - 0.051), engine=engine))

    def test_message_suggests_the_fix(self) -> None:
        expected = r"Tiny does not fit on Test GPU at TP 1 x PP 1 in bf16: .* raise --tp/--pp"
        with pytest.raises(PlannerError, match=expected):
            memory_breakdown(make_deployment(gpu=make_gpu(memory_gib=1)))
