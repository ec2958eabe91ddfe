"""The serving engines' launch interfaces tdplan exports to: one table per engine, with the version it describes
and where its names come from.

Every flag, environment variable and config-file key the exporter writes is looked up here by concept
(`tp_size`, `max_batch`, ...), so a name exists in exactly one place; tests/test_export.py pins each table
entry, so renaming a flag (a new engine version) is a deliberate edit of both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from planner.errors import PlannerError


@dataclass(frozen=True)
class FlagTable:
    """One engine's launch interface.

    program: the server's command line up to the model (`vllm serve`); the model goes after it, under
    `flags["model"]` when the engine names it with a flag.
    flags: concept -> server flag. env: concept -> environment variable. config_keys: concept -> key (dotted
    for nesting) of a config file the engine reads. router_program / router_flags: the disaggregated router.
    """

    engine: str
    name: str
    version: str
    source: str
    program: tuple[str, ...]
    flags: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    config_keys: Mapping[str, str] = field(default_factory=dict)
    router_program: tuple[str, ...] = ()
    router_flags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def flag(self, concept: str) -> str:
        """The engine's flag for a concept (KeyError when the engine has none: callers check first)."""
        return self.flags[concept]


VLLM = FlagTable(
    engine="vllm",
    name="vLLM",
    version="0.10.1 (V1 engine)",
    source=(
        "the vllm 0.10.1 wheel: vllm/engine/arg_utils.py (EngineArgs.add_cli_args), "
        "vllm/entrypoints/openai/cli_args.py (--port), vllm/config (KVTransferConfig, CacheDType), vllm/envs.py "
        "(VLLM_NIXL_SIDE_CHANNEL_*); disaggregated prefill: the NixlConnector usage page of the vLLM docs "
        "(features/nixl_connector_usage) and its proxy, tests/v1/kv_connector/nixl_integration/toy_proxy_server.py"
    ),
    program=("vllm", "serve"),
    flags={
        "tp_size": "--tensor-parallel-size",
        "pp_size": "--pipeline-parallel-size",
        "max_batch": "--max-num-seqs",
        "max_tokens": "--max-num-batched-tokens",
        "chunked_prefill": "--enable-chunked-prefill",
        "memory_fraction": "--gpu-memory-utilization",
        "kv_cache_dtype": "--kv-cache-dtype",
        "dtype": "--dtype",
        "quantization": "--quantization",
        "port": "--port",
        "kv_transfer": "--kv-transfer-config",
    },
    env={
        "gpus": "CUDA_VISIBLE_DEVICES",
        "nixl_port": "VLLM_NIXL_SIDE_CHANNEL_PORT",
        "nixl_host": "VLLM_NIXL_SIDE_CHANNEL_HOST",
    },
    config_keys={"connector": "kv_connector", "role": "kv_role"},  # keys of the --kv-transfer-config JSON
    router_program=("python3", "toy_proxy_server.py"),
    router_flags={
        "host": "--host",
        "port": "--port",
        "prefill_hosts": "--prefiller-hosts",
        "prefill_ports": "--prefiller-ports",
        "decode_hosts": "--decoder-hosts",
        "decode_ports": "--decoder-ports",
    },
    aliases=("vllm-v1",),
)

SGLANG = FlagTable(
    engine="sglang",
    name="SGLang",
    version="0.5.1 (sglang-router 0.1.9)",
    source=(
        "the sglang 0.5.1 wheel: sglang/srt/server_args.py (ServerArgs.add_cli_args); the sglang-router 0.1.9 "
        "wheel: sglang_router/launch_router.py (RouterArgs.add_cli_args, `--prefill URL [BOOTSTRAP_PORT]`); "
        "usage: the PD Disaggregation page of the SGLang docs"
    ),
    program=("python", "-m", "sglang.launch_server"),
    flags={
        "model": "--model-path",
        "tp_size": "--tp-size",
        "pp_size": "--pp-size",
        "max_batch": "--max-running-requests",
        "chunk_size": "--chunked-prefill-size",
        "mixed_chunk": "--enable-mixed-chunk",
        "memory_fraction": "--mem-fraction-static",
        "kv_cache_dtype": "--kv-cache-dtype",
        "dtype": "--dtype",
        "quantization": "--quantization",
        "host": "--host",
        "port": "--port",
        "disaggregation_mode": "--disaggregation-mode",
        "transfer_backend": "--disaggregation-transfer-backend",
        "bootstrap_port": "--disaggregation-bootstrap-port",
        "nnodes": "--nnodes",
        "node_rank": "--node-rank",
        "dist_init_addr": "--dist-init-addr",
    },
    env={"gpus": "CUDA_VISIBLE_DEVICES"},
    router_program=("python", "-m", "sglang_router.launch_router"),
    router_flags={
        "pd": "--pd-disaggregation",
        "prefill": "--prefill",
        "decode": "--decode",
        "host": "--host",
        "port": "--port",
    },
)

TRTLLM = FlagTable(
    engine="trtllm",
    name="TensorRT-LLM",
    version="1.0 (trtllm-serve, PyTorch backend)",
    source=(
        "`trtllm-serve --help` and the trtllm-serve command reference of the TensorRT-LLM 1.0 docs; "
        "extra LLM API options: the LlmArgs / KvCacheConfig / CacheTransceiverConfig reference; disaggregated "
        "serving: examples/disaggregated/README.md (`trtllm-serve disaggregated -c`). Not checked against the "
        "package: its wheel is served from NVIDIA's index, which this workplace cannot reach"
    ),
    program=("trtllm-serve",),
    flags={
        "backend": "--backend",
        "tp_size": "--tp_size",
        "pp_size": "--pp_size",
        "max_batch": "--max_batch_size",
        "max_tokens": "--max_num_tokens",
        "memory_fraction": "--kv_cache_free_gpu_memory_fraction",
        "host": "--host",
        "port": "--port",
        "extra_options": "--extra_llm_api_options",
    },
    env={"gpus": "CUDA_VISIBLE_DEVICES"},
    config_keys={
        # the --extra_llm_api_options YAML (LlmArgs fields)
        "chunked_prefill": "enable_chunked_prefill",
        "kv_cache_dtype": "kv_cache_config.dtype",
        "kv_memory_fraction": "kv_cache_config.free_gpu_memory_fraction",
        "transceiver_backend": "cache_transceiver_config.backend",
        "disable_overlap": "disable_overlap_scheduler",
        # the `trtllm-serve disaggregated -c` YAML
        "router_host": "hostname",
        "router_port": "port",
        "router_backend": "backend",
        "prefill_count": "context_servers.num_instances",
        "prefill_urls": "context_servers.urls",
        "decode_count": "generation_servers.num_instances",
        "decode_urls": "generation_servers.urls",
    },
    router_program=("trtllm-serve", "disaggregated"),
    router_flags={"config": "-c"},
    aliases=("tensorrt-llm", "trt-llm", "trt"),
)

TABLES: dict[str, FlagTable] = {t.engine: t for t in (VLLM, SGLANG, TRTLLM)}


def flag_table(engine: str) -> FlagTable:
    """The table of an engine by id or alias (case-insensitive)."""
    key = engine.strip().lower()
    for table in TABLES.values():
        if key == table.engine or key in table.aliases:
            return table
    raise PlannerError(f"unknown engine {engine!r}: choose {', '.join(TABLES)}", "engine")
