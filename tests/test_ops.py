"""Per-GPU FLOPs and bytes of one iteration (`planner.cost.ops`), against hand-computed literals.

This module also holds the builders the other cost-model tests import (`make_model`, `make_gpu`,
`make_kernels`, `make_constants`, `make_deployment`): a tiny synthetic model and GPU with round numbers, so that
every literal can be worked out by hand. The engine comes from the catalog file; the kernel and engine constants
are constructed here, so the tests do not depend on the fitted constants in `hardware/`.

The tiny model (Llama layout): h = 1024, 2 layers, 8 query heads and 2 KV heads of head_dim
d = 1024 / 8 = 128, MLP width I = 4096 (gated: gate, up, down = 3 matrices), vocabulary V = 32768, untied
LM head. So q_size = 8 x 128 = 1024 and kv_size = 2 x 128 = 256.
Weights bf16 (2 bytes), activations 2 bytes, logits 4 bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.cost.ops import BatchShape, Op, OpKind, OpLoad, head_ops, kv_bytes_per_token_per_layer, layer_ops, op_load
from planner.specs.deployment import Deployment
from planner.specs.engine import EngineConstants, EngineSpec
from planner.specs.hardware import DEFAULT_NETWORK, Cluster, GpuSpec, NetworkSpec
from planner.specs.kernels import KernelProfile
from planner.specs.model import ModelSpec, model_from_hf_config
from planner.specs.precision import Dtype

ROOT = Path(__file__).resolve().parents[1]

TINY_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 1024,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "intermediate_size": 4096,
    "vocab_size": 32768,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
}

# Mixtral layout: the tiny model's attention, 8 experts of width 2048, 2 experts per token.
TINY_MOE_CONFIG: dict[str, Any] = {
    **TINY_CONFIG,
    "model_type": "mixtral",
    "intermediate_size": 2048,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
}

TEST_GPU: dict[str, Any] = {
    "id": "test-gpu",
    "name": "Test GPU",
    "architecture": "hopper",
    "form_factor": "sxm",
    "memory_gib": 16,
    "memory_bw_gb_s": 1000,
    "dense_tflops": {"fp16": 100, "bf16": 100, "fp8": 200},
    "interconnect": {"kind": "nvlink4", "bw_gb_s": 400, "latency_us": 2, "source": "synthetic"},
    "host_link": {"kind": "pcie5", "bw_gb_s": 64, "latency_us": 10, "source": "synthetic"},
    "gpus_per_node": 8,
    "source": "synthetic test GPU with round numbers",
}

# Kernel constants with round numbers (planner.specs.kernels): every op pays a fixed latency plus its roofline.
TEST_KERNELS: dict[str, Any] = {
    "gpu": "test-gpu",
    "basis": "measured",
    "source": "synthetic",
    "gemm": {
        "bf16": {"compute_eff": 0.8, "m_half": 64, "memory_eff": 0.9, "fixed_s": 4e-6},
        "fp8": {"compute_eff": 0.6, "m_half": 64, "memory_eff": 0.8, "fixed_s": 5e-6},
    },
    "decode_attention": {"bf16": {"kv_bw_eff": 0.8, "per_seq_s": 1e-7, "fixed_s": 6e-6}},
    "prefill_attention": {"bf16": {"compute_eff": 0.5, "s_half": 100, "fixed_s": 8e-6}},
    "elementwise": {"bw_eff": 0.8, "fixed_s": 2e-6},
    "allreduce": {
        "engine": {"latency_s": 3e-6, "latency_per_peer_s": 1e-6, "bus_bw_eff": 0.8},
        "nccl": {"latency_s": 8e-6, "latency_per_peer_s": 2e-6, "bus_bw_eff": 0.8},
    },
}
TEST_CONSTANTS: dict[str, Any] = {"iteration_overhead_s": 1e-3, "per_seq_overhead_s": 1e-5}


def make_model(base: dict[str, Any] | None = None, **overrides: Any) -> ModelSpec:
    """The tiny model (or `base`), with config.json keys overridden."""
    return model_from_hf_config({**(base or TINY_CONFIG), **overrides}, id="tiny", name="Tiny")


def make_moe_model(**overrides: Any) -> ModelSpec:
    return make_model(TINY_MOE_CONFIG, **overrides)


def make_gpu(**overrides: Any) -> GpuSpec:
    """The synthetic test GPU with top-level fields overridden (pass whole nested mappings)."""
    return GpuSpec.model_validate({**TEST_GPU, **overrides})


def catalog_gpu(gpu_id: str) -> GpuSpec:
    """A GPU read straight from its catalog file (datasheet numbers, not fitted ones)."""
    return GpuSpec.model_validate(yaml.safe_load((ROOT / "hardware" / "gpus" / f"{gpu_id}.yaml").read_text()))


def catalog_engine(engine_id: str) -> EngineSpec:
    """An engine profile read straight from its catalog file."""
    path = ROOT / "hardware" / "engines" / f"{engine_id}.yaml"
    return EngineSpec.model_validate(yaml.safe_load(path.read_text()))


def make_kernels(**overrides: Any) -> KernelProfile:
    """The synthetic kernel constants with top-level fields overridden (pass whole nested mappings)."""
    return KernelProfile.model_validate({**TEST_KERNELS, **overrides})


def make_constants(**overrides: Any) -> EngineConstants:
    return EngineConstants.model_validate({**TEST_CONSTANTS, **overrides})


def make_deployment(
    *,
    model: ModelSpec | None = None,
    gpu: GpuSpec | None = None,
    tp_size: int = 1,
    pp_size: int = 1,
    num_gpus: int | None = None,
    gpus_per_node: int | None = None,
    network: NetworkSpec = DEFAULT_NETWORK,
    dtype: Dtype = Dtype.bf16,
    kv_dtype: Dtype = Dtype.bf16,
    engine: str | EngineSpec = "trtllm",
    kernels: KernelProfile | None = None,
    constants: EngineConstants | None = None,
) -> Deployment:
    """The tiny model on tp_size x pp_size test GPUs (one instance), the TensorRT-LLM profile and the test
    kernel and engine constants."""
    gpu = gpu or make_gpu()
    cluster = Cluster(
        gpu=gpu,
        num_gpus=num_gpus or tp_size * pp_size,
        gpus_per_node=gpus_per_node or gpu.gpus_per_node,
        network=network,
    )
    return Deployment(
        model=model or make_model(),
        cluster=cluster,
        tp_size=tp_size,
        pp_size=pp_size,
        dtype=dtype,
        kv_dtype=kv_dtype,
        engine=catalog_engine(engine) if isinstance(engine, str) else engine,
        kernels=kernels or make_kernels(),
        calibration=constants or make_constants(),
    )


def loads(ops: list[Op], batch: BatchShape) -> dict[str, tuple[Op, OpLoad]]:
    """Each op that runs at `batch`, by name, with its load there."""
    return {op.name: (op, op_load(op, batch)) for op in ops if op_load(op, batch).runs}


def layer(batch: BatchShape, **deployment_overrides: Any) -> dict[str, OpLoad]:
    """The load of each layer op that runs at `batch` on `make_deployment(**deployment_overrides)`."""
    return {name: load for name, (_, load) in loads(layer_ops(make_deployment(**deployment_overrides)), batch).items()}


class TestBatchShape:
    def test_prefill_counts_causal_pairs_after_cached_tokens(self) -> None:
        """3 chunks of 4 new tokens after 8 cached ones: each has 4 x 8 + 4 x 5 / 2 = 32 + 10 = 42
        (query, key) pairs, 126 in all; 12 new tokens, 24 cached."""
        shape = BatchShape.prefill(4, num_seqs=3, cached_len=8)
        assert shape.prefill_tokens == 12
        assert shape.prefill_seqs == 3
        assert shape.prefill_attn_pairs == 126
        assert shape.prefill_context_tokens == 24
        assert (shape.tokens, shape.seqs) == (12, 3)

    def test_decode_sums_context(self) -> None:
        """16 sequences at a mean context of 1000.5 tokens read 16 x 1000.5 = 16008 cached tokens."""
        shape = BatchShape.decode(16, 1000.5)
        assert shape.decode_seqs == 16
        assert shape.decode_context_tokens == 16008
        assert (shape.tokens, shape.seqs) == (16, 16)

    def test_mixed_batch_adds_fieldwise(self) -> None:
        """A 100-token prompt (5050 pairs) riding along 16 decodes: 100 + 16 = 116 GEMM rows, 17 sequences."""
        shape = BatchShape.decode(16, 1000) + BatchShape.prefill(100)
        assert shape.tokens == 116
        assert shape.seqs == 17
        assert shape.prefill_attn_pairs == 5050
        assert shape.decode_context_tokens == 16000


class TestDenseProjections:
    """Prefill of one 100-token prompt at TP 1: rows = 100."""

    @pytest.fixture
    def ops(self) -> dict[str, OpLoad]:
        return layer(BatchShape.prefill(100))

    def test_qkv_proj(self, ops: dict[str, OpLoad]) -> None:
        """Outputs q + k + v = 1024 + 256 + 256 = 1536.
        FLOPs: 2 x 100 x 1024 x 1536 = 314,572,800.
        Bytes: weights 1024 x 1536 x 2 = 3,145,728; activations 100 x (1024 + 1536) x 2 = 512,000;
        total 3,657,728."""
        load = ops["qkv_proj"]
        assert load.size == 100
        assert load.flops == 314_572_800
        assert load.bytes == 3_657_728

    def test_o_proj(self, ops: dict[str, OpLoad]) -> None:
        """FLOPs: 2 x 100 x 1024 x 1024 = 209,715,200.
        Bytes: 1024 x 1024 x 2 = 2,097,152 + 100 x (1024 + 1024) x 2 = 409,600 -> 2,506,752."""
        assert ops["o_proj"].flops == 209_715_200
        assert ops["o_proj"].bytes == 2_506_752

    def test_gated_mlp(self, ops: dict[str, OpLoad]) -> None:
        """gate + up: n = 2 x 4096 = 8192, k = 1024: FLOPs 2 x 100 x 8192 x 1024 = 1,677,721,600;
        bytes 8192 x 1024 x 2 = 16,777,216 + 100 x (8192 + 1024) x 2 = 1,843,200 -> 18,620,416.
        down: n = 1024, k = 4096: FLOPs 838,860,800; bytes 8,388,608 + 100 x 5120 x 2 = 1,024,000 -> 9,412,608.
        Together 2 x 100 x 3 x 1024 x 4096 = 2,516,582,400 FLOPs, as three 1024 x 4096 matrices."""
        assert ops["mlp_up"].flops == 1_677_721_600
        assert ops["mlp_up"].bytes == 18_620_416
        assert ops["mlp_down"].flops == 838_860_800
        assert ops["mlp_down"].bytes == 9_412_608

    def test_no_allreduce_at_tp1(self, ops: dict[str, OpLoad]) -> None:
        assert "tp_allreduce" not in ops
        assert "decode_attention" not in ops

    def test_tp4_splits_heads_and_replicates_the_kv_head(self) -> None:
        """TP 4: q is 1024 / 4 = 256 wide per GPU; 2 KV heads over 4 GPUs leave ceil(2 / 4) = 1 head (128)
        each, so q + k + v = 256 + 128 + 128 = 512. qkv FLOPs: 2 x 100 x 1024 x 512 = 104,857,600.
        MLP: 4096 / 4 = 1024 wide: 2 x 100 x 3 x 1024 x 1024 = 629,145,600 FLOPs over up and down.
        Two all-reduces per layer of 100 x 1024 x 2 = 204,800 bytes, on each of the 2 layers."""
        deployment = make_deployment(tp_size=4)
        both = loads(layer_ops(deployment), BatchShape.prefill(100))
        assert both["qkv_proj"][1].flops == 104_857_600
        assert both["mlp_up"][1].flops + both["mlp_down"][1].flops == 629_145_600
        op, load = both["tp_allreduce"]
        assert (op.kind, op.count, load.bytes) == (OpKind.allreduce, 4, 204_800)


class TestAttention:
    def test_prefill_attention(self) -> None:
        """One 100-token prompt: 100 x 101 / 2 = 5050 causal pairs; 4 x q_size x pairs = 4 x 1024 x 5050
        = 20,684,800 FLOPs. KV per token per layer: 2 x 2 heads x 128 x 2 = 1024 bytes.
        Bytes: read K/V of 100 tokens 102,400 + write 102,400 + Q in and out 2 x 100 x 1024 x 2 = 409,600
        -> 614,400. Efficiency size: 100 tokens per sequence."""
        load = layer(BatchShape.prefill(100))["prefill_attention"]
        assert load.flops == 20_684_800
        assert load.bytes == 614_400
        assert load.size == 100

    def test_prefill_chunk_reads_its_cached_context(self) -> None:
        """A 100-token chunk after 300 cached tokens: pairs 100 x 300 + 5050 = 35,050;
        FLOPs 4 x 1024 x 35,050 = 143,564,800. Bytes: read (300 + 100) x 1024 = 409,600, write 102,400,
        Q 409,600 -> 921,600."""
        load = layer(BatchShape.prefill(100, cached_len=300))["prefill_attention"]
        assert load.flops == 143_564_800
        assert load.bytes == 921_600

    def test_tokens_per_sequence_of_a_batch_of_prompts(self) -> None:
        """4 prompts of 100 tokens: 400 tokens over 4 sequences, 100 tokens per sequence."""
        assert layer(BatchShape.prefill(100, num_seqs=4))["prefill_attention"].size == 100

    def test_decode_attention(self) -> None:
        """8 sequences at 1000 tokens of context: FLOPs 4 x 1024 x 8000 = 32,768,000.
        Bytes: read (8000 + 8 new) x 1024 = 8,200,192, plus Q in and out 2 x 8 x 1024 x 2 = 32,768
        -> 8,232,960; 8 sequences of per-sequence work."""
        ops = layer(BatchShape.decode(8, 1000))
        load = ops["decode_attention"]
        assert load.flops == 32_768_000
        assert load.bytes == 8_232_960
        assert load.items == 8
        assert "prefill_attention" not in ops
        assert ops["qkv_proj"].size == 8

    def test_elementwise_launches_follow_the_engine(self) -> None:
        """TensorRT-LLM fuses rotary and the KV write into attention (3 launches per layer); vLLM 0.5-0.6
        runs 5."""
        kernels = {op.name: op.kernels for op in layer_ops(make_deployment())}
        assert kernels["elementwise"] == 3
        assert {op.name: op.kernels for op in layer_ops(make_deployment(engine="vllm"))}["elementwise"] == 5


class TestLmHead:
    def test_head_rows_are_sequences_not_tokens(self) -> None:
        """4 prompts of 100 tokens: 400 tokens but 4 sequences need logits.
        FLOPs: 2 x 4 x 1024 x 32768 = 268,435,456.
        Bytes: 1024 x 32768 x 2 = 67,108,864 + 4 x (1024 x 2 + 32768 x 4) = 532,480 -> 67,641,344.
        Embedding lookup: read and write 400 x 1024 x 2 bytes = 1,638,400."""
        ops = {name: load for name, (_, load) in loads(head_ops(make_deployment()), BatchShape.prefill(100, 4)).items()}
        head = ops["lm_head"]
        assert head.size == 4
        assert head.flops == 268_435_456
        assert head.bytes == 67_641_344
        assert ops["embedding"].bytes == 1_638_400

    def test_head_vocabulary_split_over_tp(self) -> None:
        """TP 2: 32768 / 2 = 16384 logits per GPU.
        One decode sequence: FLOPs 2 x 1 x 1024 x 16384 = 33,554,432;
        bytes 1024 x 16384 x 2 = 33,554,432 + (1024 x 2 + 16384 x 4) = 67,584 -> 33,622,016."""
        head = op_load(head_ops(make_deployment(tp_size=2))[-1], BatchShape.decode(1, 50))
        assert head.flops == 33_554_432
        assert head.bytes == 33_622_016


class TestMoeExperts:
    """8 experts, 2 per token, expert width 2048. With uniform routing, rows tokens touch
    8 x (1 - (1 - 2/8)^rows) experts. Per expert: gate + up 4096 x 1024 (8,388,608 bytes), down 1024 x 2048
    (4,194,304 bytes): 12,582,912 bytes in all."""

    @pytest.mark.parametrize(
        ("rows", "touched"),
        [
            (1, 2.0),  # 8 x (1 - 0.75) = 2: one token reads exactly its 2 experts
            (2, 3.5),  # 8 x (1 - 0.5625)
            (4, 5.46875),  # 8 x (1 - 0.31640625)
        ],
    )
    def test_touched_experts_set_the_weight_bytes(self, rows: int, touched: float) -> None:
        """Weights: touched x 12,582,912 bytes over both GEMMs; activations rows x 2 x (5120 + 3072) x 2
        = rows x 32,768; each touched expert sees rows x 2 / touched token rows."""
        ops = layer(BatchShape.decode(rows, 10), model=make_moe_model())
        up, down = ops["experts_up"], ops["experts_down"]
        assert up.bytes + down.bytes == pytest.approx(touched * 12_582_912 + rows * 32_768, rel=1e-12)
        assert up.size == pytest.approx(rows * 2 / touched, rel=1e-12)

    def test_experts_flops_at_four_tokens(self) -> None:
        """rows = 4: FLOPs 2 x 4 x 2 x 3 x 1024 x 2048 = 100,663,296 (each token through its 2 experts)."""
        ops = layer(BatchShape.decode(4, 10), model=make_moe_model())
        assert ops["experts_up"].flops + ops["experts_down"].flops == 100_663_296
        assert "mlp_up" not in ops

    def test_router(self) -> None:
        """Router h x E = 1024 x 8 in 16 bits: FLOPs 2 x 4 x 1024 x 8 = 65,536;
        bytes 1024 x 8 x 2 = 16,384 + 4 x (1024 + 8) x 2 = 8,256 -> 24,640."""
        router = layer(BatchShape.decode(4, 10), model=make_moe_model())["router"]
        assert router.flops == 65_536
        assert router.bytes == 24_640

    def test_large_batch_reads_every_expert_once(self) -> None:
        """1000 tokens miss an expert with probability 0.75^1000 (about 1e-125): all 8 experts are read,
        8 x 12,582,912 = 100,663,296 weight bytes, plus 1000 x 32,768 = 32,768,000 activation bytes; each
        expert GEMM sees 1000 x 2 / 8 = 250 rows."""
        ops = layer(BatchShape.prefill(1000), model=make_moe_model())
        assert ops["experts_up"].bytes + ops["experts_down"].bytes == pytest.approx(133_431_296, rel=1e-12)
        assert ops["experts_up"].size == pytest.approx(250, rel=1e-12)


class TestKvBytesPerToken:
    @pytest.mark.parametrize(
        ("tp_size", "kv_dtype", "kv_heads", "expected"),
        [
            (1, Dtype.bf16, 2, 1024),  # GQA: 2 (K and V) x 2 heads x 128 x 2 bytes
            (1, Dtype.bf16, 8, 4096),  # MHA: 2 x 8 x 128 x 2
            (2, Dtype.bf16, 2, 512),  # one KV head per GPU: 2 x 1 x 128 x 2
            (4, Dtype.bf16, 2, 512),  # 2 KV heads over 4 GPUs: ceil(2/4) = 1 head each (replicated), not 256
            (8, Dtype.bf16, 2, 512),  # still one replicated head per GPU
            (4, Dtype.fp8, 2, 256),  # fp8 cache: 2 x 1 x 128 x 1
            (4, Dtype.bf16, 8, 1024),  # MHA over TP 4: 2 x 2 x 128 x 2
        ],
    )
    def test_kv_bytes_per_token_per_layer(self, tp_size: int, kv_dtype: Dtype, kv_heads: int, expected: int) -> None:
        model = make_model(num_key_value_heads=kv_heads)
        deployment = make_deployment(model=model, tp_size=tp_size, kv_dtype=kv_dtype)
        assert kv_bytes_per_token_per_layer(deployment) == expected
