"""Launch commands of one engine: every process's argv and environment, the config files they read and the
router of a disaggregated plan. All names come from the engine's table in `flags`.

Memory fractions reproduce the plan's KV cache (`memory_gib` of the instance, GiB per GPU):
- vLLM `--gpu-memory-utilization` is the share of GPU memory vLLM may use: 1 - unused / total.
- SGLang `--mem-fraction-static` is the share for weights and the KV pool: (weights + kv_cache) / total.
- TensorRT-LLM `--kv_cache_free_gpu_memory_fraction` is the KV share of the memory free after loading:
  kv_cache / (kv_cache + unused).
Each is rounded down to 0.01, so the engine never takes more than the plan left free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from planner.export.flags import SGLANG, TRTLLM, VLLM, FlagTable
from planner.export.layout import Process
from planner.export.support import Scheduling, Unsupported
from planner.specs.precision import Dtype

# Ports: each engine's default serving port, plus the process's index in the plan.
VLLM_PORT, SGLANG_PORT, TRTLLM_PORT = 8000, 30000, 8000
VLLM_CONNECTOR = "NixlConnector"  # reads KV straight into the decode cache; decode TP may be a multiple of prefill's
VLLM_NIXL_PORT = 5557  # VLLM_NIXL_SIDE_CHANNEL_PORT default; each TP rank listens on it + rank
VLLM_PROXY_PORT = 9000
SGLANG_BOOTSTRAP_PORT = 8998  # --disaggregation-bootstrap-port default, of prefill 0
SGLANG_ROUTER_PORT = 8000
SGLANG_DIST_PORT = 50000  # --dist-init-addr port of multi-node instances
SGLANG_TRANSFER_BACKEND = "mooncake"  # the documented default
TRTLLM_TRANSCEIVER = "UCX"
SGLANG_KV_DTYPE = {Dtype.fp8: "fp8_e4m3"}
VLLM_KV_DTYPE = {Dtype.fp8: "fp8"}
TORCH_DTYPE = {Dtype.bf16: "bfloat16", Dtype.fp16: "float16"}


@dataclass(frozen=True)
class Launch:
    """One process to launch: where it runs, how it schedules, and the unsupported strategy it stands in for."""

    process: Process
    scheduling: Scheduling
    fallback: Unsupported | None = None


@dataclass(frozen=True)
class Setting:
    """What every process of the plan shares."""

    model: str  # the checkpoint: Hugging Face repo id or path
    dtype: Dtype
    kv_dtype: Dtype | None


@dataclass
class Built:
    """An engine's commands (argv, env, note per process; the router last), files and plan-wide notes."""

    commands: list[tuple[str, list[str], dict[str, str], str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def fraction(value: float) -> str:
    """A memory fraction rounded down to 0.01, as the engine reads it."""
    return f"{max(math.floor(value * 100) / 100, 0.01):.2f}"


def _memory(p: Process, key: str) -> float:
    return p.instance.memory_gib.get(key, 0.0)


def _where(launch: Launch) -> str:
    p = launch.process
    inst = p.instance
    gpus = ",".join(map(str, p.gpu_ids))
    span = f" (first of {p.nodes} nodes)" if p.nodes > 1 else ""
    text = (
        f"{p.label}: plan.instances[{p.group}] {inst.strategy} {inst.role}, TP{inst.tp} PP{inst.pp}, "
        f"{p.host}{span} GPUs {gpus}"
    )
    if launch.fallback is not None:
        text += f"; FALLBACK for {inst.strategy} ({launch.fallback.fallback}): loses {launch.fallback.loses}"
    return text


def _env(table: FlagTable, p: Process) -> dict[str, str]:
    return {table.env["gpus"]: ",".join(map(str, p.gpu_ids))}


def _precision_notes(table: FlagTable, setting: Setting, kv_names: dict[Dtype, str]) -> list[str]:
    notes = []
    if setting.dtype in (Dtype.int8, Dtype.int4) or (setting.dtype == Dtype.fp8 and table is TRTLLM):
        notes.append(
            f"the plan's {setting.dtype.value} weights need a checkpoint quantized to {setting.dtype.value} "
            f"(AWQ/GPTQ/ModelOpt): point MODEL at one; {table.name} reads the method from its config"
        )
    if setting.kv_dtype is not None and setting.kv_dtype not in (Dtype.bf16, Dtype.fp16, *kv_names):
        notes.append(
            f"the plan's {setting.kv_dtype.value} KV cache has no {table.name} {table.version} option: the "
            "commands keep the engine's default KV dtype, which holds fewer tokens than the plan"
        )
    return notes


def _dtype_args(table: FlagTable, setting: Setting) -> list[str]:
    if setting.dtype in TORCH_DTYPE:
        return [table.flag("dtype"), TORCH_DTYPE[setting.dtype]]
    if setting.dtype == Dtype.fp8:
        return [table.flag("quantization"), "fp8"]  # online FP8 quantization of the 16-bit checkpoint
    return []


def _kv_args(table: FlagTable, setting: Setting, names: dict[Dtype, str]) -> list[str]:
    kv = names.get(setting.kv_dtype, "auto") if setting.kv_dtype is not None else "auto"
    return [table.flag("kv_cache_dtype"), kv]


def build_vllm(launches: Sequence[Launch], setting: Setting) -> Built:
    t, built = VLLM, Built()
    built.notes += _precision_notes(t, setting, VLLM_KV_DTYPE)
    if any(launch.scheduling.kind == "colocated" and launch.process.role == "serve" for launch in launches):
        built.notes.append(
            "vLLM's V1 engine always chunks prompts longer than --max-num-batched-tokens and batches them with "
            "decodes; the plan's colocated figures assume whole prompts run first (the V0 scheduler)"
        )
    nixl_port = VLLM_NIXL_PORT
    hosts: dict[str, list[str]] = {"prefill": [], "decode": []}
    ports: dict[str, list[str]] = {"prefill": [], "decode": []}
    for launch in launches:
        p, s = launch.process, launch.scheduling
        argv = [*t.program, setting.model, t.flag("tp_size"), str(p.instance.tp), t.flag("pp_size"), str(p.instance.pp)]
        if s.max_batch is not None:
            argv += [t.flag("max_batch"), str(s.max_batch)]
        if s.kind == "chunked":
            argv.append(t.flag("chunked_prefill"))
            if s.chunk_size_tokens is not None:
                argv += [t.flag("max_tokens"), str(s.chunk_size_tokens)]
        utilization = 1 - _memory(p, "unused") / p.gpu_memory_gib
        argv += [t.flag("memory_fraction"), fraction(utilization)]
        argv += _dtype_args(t, setting) + _kv_args(t, setting, VLLM_KV_DTYPE)
        port = VLLM_PORT + p.index
        argv += [t.flag("port"), str(port)]
        env = _env(t, p)
        if p.role != "serve":
            role = "kv_producer" if p.role == "prefill" else "kv_consumer"
            config = {t.config_keys["connector"]: VLLM_CONNECTOR, t.config_keys["role"]: role}
            argv += [t.flag("kv_transfer"), json.dumps(config, separators=(",", ":"))]
            env[t.env["nixl_port"]] = str(nixl_port)
            nixl_port += p.instance.tp * p.instance.pp  # one side-channel port per rank
            if p.host != "localhost":
                env[t.env["nixl_host"]] = p.host
            hosts[p.role].append(p.host)
            ports[p.role].append(str(port))
        note = _where(launch)
        if p.nodes > 1:
            note += f"; spans {p.nodes} nodes: run it on the head node of a Ray cluster of those nodes"
        built.commands.append((p.label, argv, env, note))
    if hosts["prefill"] and hosts["decode"]:
        router = [*t.router_program, t.router_flags["host"], "0.0.0.0", t.router_flags["port"], str(VLLM_PROXY_PORT)]
        for role, name in (("prefill", "prefill"), ("decode", "decode")):
            router += [t.router_flags[f"{name}_hosts"], *hosts[role], t.router_flags[f"{name}_ports"], *ports[role]]
        built.commands.append(
            (
                "router",
                router,
                {},
                f"the NIXL proxy of the vLLM source tree (tests/v1/kv_connector/nixl_integration/toy_proxy_server.py, "
                f"same version): clients send to port {VLLM_PROXY_PORT}; it sends each prompt to a prefill instance, "
                f"then to a decode instance, which pulls the KV over NIXL (pip install nixl)",
            )
        )
        built.notes += _nixl_layout_notes(launches)
    return built


def _nixl_layout_notes(launches: Sequence[Launch]) -> list[str]:
    """What NixlConnector (vLLM 0.10.1) cannot pair: decode TP below prefill TP, or not a multiple of it."""
    prefill = {launch.process.instance.tp for launch in launches if launch.process.role == "prefill"}
    decode = {launch.process.instance.tp for launch in launches if launch.process.role == "decode"}
    pp = {launch.process.instance.pp for launch in launches if launch.process.role != "serve"}
    notes = []
    if any(d % p for p in prefill for d in decode):
        notes.append(
            f"NixlConnector needs the decode TP to be a multiple of the prefill TP (prefill {sorted(prefill)}, "
            f"decode {sorted(decode)}): re-plan or use SGLang or TensorRT-LLM"
        )
    if pp != {1}:
        notes.append("NixlConnector transfers are laid out per TP rank: PP > 1 on either side is untested")
    return notes


def build_sglang(launches: Sequence[Launch], setting: Setting) -> Built:
    t, built = SGLANG, Built()
    built.notes += _precision_notes(t, setting, SGLANG_KV_DTYPE)
    prefill_urls: list[str] = []
    decode_urls: list[str] = []
    bootstrap = SGLANG_BOOTSTRAP_PORT
    multi_node = any(launch.process.host != "localhost" for launch in launches)
    for launch in launches:
        p, s = launch.process, launch.scheduling
        argv = [*t.program, t.flag("model"), setting.model, t.flag("tp_size"), str(p.instance.tp)]
        argv += [t.flag("pp_size"), str(p.instance.pp)]
        if s.max_batch is not None:
            argv += [t.flag("max_batch"), str(s.max_batch)]
        if p.role == "serve" and s.kind == "chunked":
            if s.chunk_size_tokens is not None:
                argv += [t.flag("chunk_size"), str(s.chunk_size_tokens)]
            argv.append(t.flag("mixed_chunk"))  # decodes ride in the chunk's batch, as in Sarathi-Serve
        elif p.role == "serve":
            argv += [t.flag("chunk_size"), "-1"]  # -1: no chunking, prompts first
        static = (_memory(p, "weights") + _memory(p, "kv_cache")) / p.gpu_memory_gib
        argv += [t.flag("memory_fraction"), fraction(static)]
        argv += _dtype_args(t, setting) + _kv_args(t, setting, SGLANG_KV_DTYPE)
        if multi_node:
            argv += [t.flag("host"), "0.0.0.0"]
        port = SGLANG_PORT + p.index
        argv += [t.flag("port"), str(port)]
        if p.role != "serve":
            argv += [t.flag("disaggregation_mode"), p.role, t.flag("transfer_backend"), SGLANG_TRANSFER_BACKEND]
        if p.role == "prefill":
            argv += [t.flag("bootstrap_port"), str(bootstrap)]
            prefill_urls += [f"http://{p.host}:{port}", str(bootstrap)]
            bootstrap += 1
        elif p.role == "decode":
            decode_urls.append(f"http://{p.host}:{port}")
        note = _where(launch)
        if p.nodes > 1:
            argv += [t.flag("nnodes"), str(p.nodes), t.flag("node_rank"), "0"]
            argv += [t.flag("dist_init_addr"), f"{p.host}:{SGLANG_DIST_PORT + p.index}"]
            note += f"; spans {p.nodes} nodes: run the same command on each with {t.flag('node_rank')} 0..{p.nodes - 1}"
        built.commands.append((p.label, argv, _env(t, p), note))
    if prefill_urls and decode_urls:
        router = [*t.router_program, t.router_flags["pd"]]
        for index in range(0, len(prefill_urls), 2):
            router += [t.router_flags["prefill"], *prefill_urls[index : index + 2]]
        for url in decode_urls:
            router += [t.router_flags["decode"], url]
        router += [t.router_flags["host"], "0.0.0.0", t.router_flags["port"], str(SGLANG_ROUTER_PORT)]
        built.commands.append(
            (
                "router",
                router,
                {},
                f"the PD router (sglang-router): clients send to port {SGLANG_ROUTER_PORT}; KV moves over "
                f"{SGLANG_TRANSFER_BACKEND} (RDMA: add --disaggregation-ib-device to the instances if the NIC "
                "is not found)",
            )
        )
    return built


def build_trtllm(launches: Sequence[Launch], setting: Setting) -> Built:
    t, built = TRTLLM, Built()
    keys = t.config_keys
    built.notes += _precision_notes(t, setting, {Dtype.fp8: "fp8"})
    disaggregated = any(launch.process.role != "serve" for launch in launches)
    multi_node = any(launch.process.host != "localhost" for launch in launches)
    urls: dict[str, list[str]] = {"prefill": [], "decode": []}
    for launch in launches:
        p, s = launch.process, launch.scheduling
        argv = [*t.program, setting.model, t.flag("backend"), "pytorch", t.flag("tp_size"), str(p.instance.tp)]
        argv += [t.flag("pp_size"), str(p.instance.pp)]
        if s.max_batch is not None:
            argv += [t.flag("max_batch"), str(s.max_batch)]
        if s.kind == "chunked" and s.chunk_size_tokens is not None:
            argv += [t.flag("max_tokens"), str(s.chunk_size_tokens)]  # the chunk is bounded by max_num_tokens
        kv_share = fraction(_memory(p, "kv_cache") / max(_memory(p, "kv_cache") + _memory(p, "unused"), 1e-9))
        argv += [t.flag("memory_fraction"), kv_share]
        if multi_node:
            argv += [t.flag("host"), "0.0.0.0"]
        port = TRTLLM_PORT + p.index + (1 if disaggregated else 0)
        argv += [t.flag("port"), str(port)]
        extra: dict[str, object] = {}
        if s.kind == "chunked":
            _put(extra, keys["chunked_prefill"], True)
        if setting.kv_dtype == Dtype.fp8:
            _put(extra, keys["kv_cache_dtype"], "fp8")
            # a kv_cache_config in the file replaces the one the flag sets: repeat the fraction in it
            _put(extra, keys["kv_memory_fraction"], float(kv_share))
        if p.role != "serve":
            _put(extra, keys["transceiver_backend"], TRTLLM_TRANSCEIVER)
            urls[p.role].append(f"{p.host}:{port}")
        if p.role == "prefill":
            _put(extra, keys["disable_overlap"], True)
        if extra:
            name = _file_name(built.files, p.role, yaml.safe_dump(extra, sort_keys=False))
            argv += [t.flag("extra_options"), name]
        note = _where(launch)
        if p.nodes > 1:
            note += f"; spans {p.nodes} nodes: launch it under mpirun/srun over those nodes (trtllm-llmapi-launch)"
        built.commands.append((p.label, argv, _env(t, p), note))
    if urls["prefill"] and urls["decode"]:
        config: dict[str, object] = {}
        for key, value in (
            ("router_host", "0.0.0.0" if multi_node else "localhost"),
            ("router_port", TRTLLM_PORT),
            ("router_backend", "pytorch"),
            ("prefill_count", len(urls["prefill"])),
            ("prefill_urls", urls["prefill"]),
            ("decode_count", len(urls["decode"])),
            ("decode_urls", urls["decode"]),
        ):
            _put(config, keys[key], value)
        built.files["disagg_config.yaml"] = yaml.safe_dump(config, sort_keys=False)
        built.commands.append(
            (
                "router",
                [*t.router_program, t.router_flags["config"], "disagg_config.yaml"],
                {},
                f"the disaggregated server: clients send to port {TRTLLM_PORT}; it forwards to the context "
                f"(prefill) and generation (decode) servers listed in disagg_config.yaml",
            )
        )
    return built


def _put(tree: dict[str, object], dotted: str, value: object) -> None:
    """Set a dotted key (`kv_cache_config.dtype`) in a nested dict."""
    *parents, last = dotted.split(".")
    for part in parents:
        child = tree.setdefault(part, {})
        assert isinstance(child, dict)
        tree = child
    tree[last] = value


def _file_name(files: dict[str, str], role: str, content: str) -> str:
    """The name of an extra-options file with this content: reused when another process has the same."""
    for name, existing in files.items():
        if existing == content:
            return name
    stem = f"extra-llm-api-config.{role}"
    name, n = f"{stem}.yml", 1
    while name in files:
        name, n = f"{stem}.{n}.yml", n + 1
    files[name] = content
    return name


BUILDERS = {"vllm": build_vllm, "sglang": build_sglang, "trtllm": build_trtllm}
