"""tdplan export: engine flag tables (pinned), the commands built from plans, and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from planner.cli import app
from planner.errors import PlannerError
from planner.export import Command, Export, export_plan, shell_script
from planner.export.flags import SGLANG, TABLES, TRTLLM, VLLM, FlagTable, flag_table

runner = CliRunner()

# 80 GiB GPU (a100-sxm-80gb): weights 10, KV 60, unused 8 GiB.
MEMORY = {"weights": 10.0, "kv_cache": 60.0, "activations": 0.5, "runtime_reserve": 1.5, "unused": 8.0}


def instance(**overrides: Any) -> dict[str, Any]:
    """One plan.instances entry: a colocated TP1 instance on one a100-sxm-80gb, unless overridden."""
    base: dict[str, Any] = {
        "strategy": "colocated",
        "role": "serve",
        "gpu": "a100-sxm-80gb",
        "tp": 1,
        "pp": 1,
        "count": 1,
        "gpus": 1,
        "knobs": {"max_batch": 256.0},
        "nodes": [0],
        "capacity_req_s": 1.0,
        "slo_rate_req_s": 1.0,
        "planned_rate_req_s": 1.0,
        "memory_gib": MEMORY,
        "detail": {},
    }
    return {**base, **overrides}


def plan(*instances: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    """A `recommend --json` payload holding `instances` (llama-2-13b, bf16 unless overridden)."""
    return {
        "schema_version": 1,
        "inputs": {"model": "llama-2-13b", "gpus": "8xa100-sxm-80gb", "dtype": "bf16", "kv_dtype": None, **inputs},
        "plan": {"strategy": instances[0]["strategy"], "instances": list(instances), "prefill_decode_ratio": None},
        "workload": "sharegpt",
        "slo": None,
    }


DISAGGREGATED = plan(
    instance(strategy="disaggregated", role="decode", tp=4, gpus=4, knobs={}),
    instance(strategy="disaggregated", role="prefill", tp=2, count=2, gpus=4, knobs={}),
)
CHUNKED = plan(instance(strategy="chunked", count=2, gpus=2, knobs={"chunk_size": 2048.0, "max_batch": 1024.0}))
COLOCATED_FP8 = plan(instance(tp=8, count=2, gpus=16, nodes=[0, 1]), dtype="fp8", kv_dtype="fp8")
PLANS = {"disaggregated": DISAGGREGATED, "chunked": CHUNKED, "colocated-fp8": COLOCATED_FP8}


def argv_flags(command: Command) -> list[str]:
    return [a for a in command.argv if a.startswith("-") and a != "-m" and not a.lstrip("-").isdigit()]


def after(command: Command, flag: str) -> str:
    return command.argv[command.argv.index(flag) + 1]


def dotted_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= dotted_keys(value, f"{prefix}{key}.")
    return keys


class TestFlagTablesArePinned:
    """The tables are the engines' documented names: a change here is a deliberate edit for a new version."""

    def test_vllm(self) -> None:
        assert VLLM.version == "0.10.1 (V1 engine)"
        assert VLLM.program == ("vllm", "serve")
        assert dict(VLLM.flags) == {
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
        }
        assert dict(VLLM.env) == {
            "gpus": "CUDA_VISIBLE_DEVICES",
            "nixl_port": "VLLM_NIXL_SIDE_CHANNEL_PORT",
            "nixl_host": "VLLM_NIXL_SIDE_CHANNEL_HOST",
        }
        assert dict(VLLM.config_keys) == {"connector": "kv_connector", "role": "kv_role"}
        assert VLLM.router_program == ("python3", "toy_proxy_server.py")
        assert dict(VLLM.router_flags) == {
            "host": "--host",
            "port": "--port",
            "prefill_hosts": "--prefiller-hosts",
            "prefill_ports": "--prefiller-ports",
            "decode_hosts": "--decoder-hosts",
            "decode_ports": "--decoder-ports",
        }

    def test_sglang(self) -> None:
        assert SGLANG.version == "0.5.1 (sglang-router 0.1.9)"
        assert SGLANG.program == ("python", "-m", "sglang.launch_server")
        assert dict(SGLANG.flags) == {
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
        }
        assert SGLANG.router_program == ("python", "-m", "sglang_router.launch_router")
        assert dict(SGLANG.router_flags) == {
            "pd": "--pd-disaggregation",
            "prefill": "--prefill",
            "decode": "--decode",
            "host": "--host",
            "port": "--port",
        }

    def test_trtllm(self) -> None:
        assert TRTLLM.version == "1.0 (trtllm-serve, PyTorch backend)"
        assert TRTLLM.program == ("trtllm-serve",)
        assert dict(TRTLLM.flags) == {
            "backend": "--backend",
            "tp_size": "--tp_size",
            "pp_size": "--pp_size",
            "max_batch": "--max_batch_size",
            "max_tokens": "--max_num_tokens",
            "memory_fraction": "--kv_cache_free_gpu_memory_fraction",
            "host": "--host",
            "port": "--port",
            "extra_options": "--extra_llm_api_options",
        }
        assert dict(TRTLLM.config_keys) == {
            "chunked_prefill": "enable_chunked_prefill",
            "kv_cache_dtype": "kv_cache_config.dtype",
            "kv_memory_fraction": "kv_cache_config.free_gpu_memory_fraction",
            "transceiver_backend": "cache_transceiver_config.backend",
            "disable_overlap": "disable_overlap_scheduler",
            "router_host": "hostname",
            "router_port": "port",
            "router_backend": "backend",
            "prefill_count": "context_servers.num_instances",
            "prefill_urls": "context_servers.urls",
            "decode_count": "generation_servers.num_instances",
            "decode_urls": "generation_servers.urls",
        }
        assert TRTLLM.router_program == ("trtllm-serve", "disaggregated")
        assert dict(TRTLLM.router_flags) == {"config": "-c"}

    @pytest.mark.parametrize("table", TABLES.values(), ids=list(TABLES))
    def test_every_table_cites_its_source_and_gpu_variable(self, table: FlagTable) -> None:
        assert table.source and table.version
        assert table.env["gpus"] == "CUDA_VISIBLE_DEVICES"

    @pytest.mark.parametrize(("name", "engine"), [("VLLM", "vllm"), ("trt-llm", "trtllm"), ("SGLang", "sglang")])
    def test_lookup_by_alias(self, name: str, engine: str) -> None:
        assert flag_table(name).engine == engine

    def test_unknown_engine(self) -> None:
        with pytest.raises(PlannerError, match="unknown engine 'tgi': choose vllm, sglang, trtllm") as e:
            flag_table("tgi")
        assert e.value.param == "engine"


class TestEmittedNamesAreInTheTable:
    """Every flag, variable and config key the exporter writes is a table entry."""

    @pytest.mark.parametrize("engine", list(TABLES))
    @pytest.mark.parametrize("name", list(PLANS))
    def test_names(self, engine: str, name: str) -> None:
        table = TABLES[engine]
        result = export_plan(PLANS[name], engine)
        assert result.commands
        for command in result.commands:
            known = set(table.router_flags.values()) if command.instance == "router" else set(table.flags.values())
            assert set(argv_flags(command)) <= known, command.argv
            program = table.router_program if command.instance == "router" else table.program
            assert tuple(command.argv[: len(program)]) == program
            assert set(command.env) <= set(table.env.values())
        for file in result.files:
            assert dotted_keys(yaml.safe_load(file.content)) <= _with_parents(table.config_keys.values())
        for command in result.commands:
            if "--kv-transfer-config" in command.argv:
                config = json.loads(after(command, "--kv-transfer-config"))
                assert dotted_keys(config) <= _with_parents(table.config_keys.values())


def _with_parents(keys: Any) -> set[str]:
    out = set()
    for key in keys:
        parts = key.split(".")
        out |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return out


class TestLayout:
    """Instances take consecutive GPUs in plan order, as the planner lays them out."""

    def test_disaggregated_gpus_and_ports(self) -> None:
        commands = export_plan(DISAGGREGATED, "vllm").commands
        assert [c.instance for c in commands] == ["decode-0", "prefill-0", "prefill-1", "router"]
        assert [c.env.get("CUDA_VISIBLE_DEVICES") for c in commands] == ["0,1,2,3", "4,5", "6,7", None]
        assert [after(c, "--port") for c in commands[:3]] == ["8000", "8001", "8002"]
        assert [after(c, "--tensor-parallel-size") for c in commands[:3]] == ["4", "2", "2"]

    def test_two_nodes(self) -> None:
        result = export_plan(COLOCATED_FP8, "sglang")
        assert [c.env["CUDA_VISIBLE_DEVICES"] for c in result.commands] == ["0,1,2,3,4,5,6,7"] * 2
        assert ["node0" in c.note for c in result.commands] == [True, False]
        assert ["node1" in c.note for c in result.commands] == [False, True]
        assert any("node0, node1: the addresses" in n for n in result.notes)
        assert after(result.commands[0], "--host") == "0.0.0.0"

    def test_instance_spanning_nodes(self) -> None:
        result = export_plan(plan(instance(tp=8, pp=2, gpus=16, nodes=[0, 1])), "sglang")
        (command,) = result.commands
        assert [after(command, f) for f in ("--nnodes", "--node-rank", "--dist-init-addr")] == ["2", "0", "node0:50000"]


class TestFlagValues:
    def test_memory_fractions(self) -> None:
        """80 GiB GPU, weights 10, KV 60, unused 8 GiB: vLLM 1 - 8/80 = 0.90; SGLang (10 + 60)/80 = 0.875 -> 0.87;
        TensorRT-LLM 60/(60 + 8) = 0.882 -> 0.88."""
        one = plan(instance())
        assert after(export_plan(one, "vllm").commands[0], "--gpu-memory-utilization") == "0.90"
        assert after(export_plan(one, "sglang").commands[0], "--mem-fraction-static") == "0.87"
        assert after(export_plan(one, "trtllm").commands[0], "--kv_cache_free_gpu_memory_fraction") == "0.88"

    def test_chunked(self) -> None:
        vllm, sglang, trtllm = (export_plan(CHUNKED, e) for e in ("vllm", "sglang", "trtllm"))
        assert "--enable-chunked-prefill" in vllm.commands[0].argv
        assert after(vllm.commands[0], "--max-num-batched-tokens") == "2048"
        assert after(vllm.commands[0], "--max-num-seqs") == "1024"
        assert after(sglang.commands[0], "--chunked-prefill-size") == "2048"
        assert "--enable-mixed-chunk" in sglang.commands[0].argv
        assert after(trtllm.commands[0], "--max_num_tokens") == "2048"
        assert after(trtllm.commands[0], "--max_batch_size") == "1024"
        (file,) = trtllm.files
        assert yaml.safe_load(file.content) == {"enable_chunked_prefill": True}
        assert after(trtllm.commands[0], "--extra_llm_api_options") == file.path

    def test_colocated_has_no_chunking(self) -> None:
        one = plan(instance())
        assert "--enable-chunked-prefill" not in export_plan(one, "vllm").commands[0].argv
        assert after(export_plan(one, "sglang").commands[0], "--chunked-prefill-size") == "-1"
        assert not export_plan(one, "trtllm").files

    def test_precision(self) -> None:
        vllm, sglang, trtllm = (export_plan(COLOCATED_FP8, e) for e in ("vllm", "sglang", "trtllm"))
        assert after(vllm.commands[0], "--quantization") == "fp8"
        assert after(vllm.commands[0], "--kv-cache-dtype") == "fp8"
        assert after(sglang.commands[0], "--kv-cache-dtype") == "fp8_e4m3"
        config = yaml.safe_load(trtllm.files[0].content)
        assert config["kv_cache_config"] == {"dtype": "fp8", "free_gpu_memory_fraction": 0.88}
        assert any("checkpoint quantized to fp8" in n for n in trtllm.notes)
        assert after(export_plan(plan(instance()), "vllm").commands[0], "--dtype") == "bfloat16"

    def test_int8_kv_has_no_flag(self) -> None:
        result = export_plan(plan(instance(), kv_dtype="int8"), "vllm")
        assert after(result.commands[0], "--kv-cache-dtype") == "auto"
        assert any("int8 KV cache has no vLLM" in n for n in result.notes)

    def test_model_repo(self) -> None:
        assert export_plan(plan(instance()), "vllm").model == "meta-llama/Llama-2-13b-hf"
        assert export_plan(plan(instance(), model="llama-70b"), "vllm").model == "meta-llama/Llama-3.1-70B"


class TestDisaggregated:
    def test_vllm_kv_roles(self) -> None:
        commands = export_plan(DISAGGREGATED, "vllm").commands
        configs = [json.loads(after(c, "--kv-transfer-config")) for c in commands[:3]]
        assert configs == [
            {"kv_connector": "NixlConnector", "kv_role": "kv_consumer"},
            {"kv_connector": "NixlConnector", "kv_role": "kv_producer"},
            {"kv_connector": "NixlConnector", "kv_role": "kv_producer"},
        ]
        # one side-channel port per TP rank: decode TP4 takes 5557-5560, the TP2 prefills 5561-5562 and 5563-5564
        assert [c.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] for c in commands[:3]] == ["5557", "5561", "5563"]
        assert commands[3].argv[2:] == [
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--prefiller-hosts",
            "localhost",
            "localhost",
            "--prefiller-ports",
            "8001",
            "8002",
            "--decoder-hosts",
            "localhost",
            "--decoder-ports",
            "8000",
        ]

    def test_vllm_decode_tp_must_be_a_multiple(self) -> None:
        uneven = plan(
            instance(strategy="disaggregated", role="decode", tp=2, gpus=2, knobs={}),
            instance(strategy="disaggregated", role="prefill", tp=4, gpus=4, knobs={}),
        )
        assert any("multiple of the prefill TP" in n for n in export_plan(uneven, "vllm").notes)
        assert not any("multiple" in n for n in export_plan(DISAGGREGATED, "vllm").notes)

    def test_sglang_router(self) -> None:
        commands = export_plan(DISAGGREGATED, "sglang").commands
        assert [after(c, "--disaggregation-mode") for c in commands[:3]] == ["decode", "prefill", "prefill"]
        assert [after(c, "--disaggregation-bootstrap-port") for c in commands[1:3]] == ["8998", "8999"]
        router = commands[3].argv
        assert router[3:] == [
            "--pd-disaggregation",
            "--prefill",
            "http://localhost:30001",
            "8998",
            "--prefill",
            "http://localhost:30002",
            "8999",
            "--decode",
            "http://localhost:30000",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
        ]

    def test_trtllm_disagg_config(self) -> None:
        result = export_plan(DISAGGREGATED, "trtllm")
        files = {f.path: yaml.safe_load(f.content) for f in result.files}
        assert files["disagg_config.yaml"] == {
            "hostname": "localhost",
            "port": 8000,
            "backend": "pytorch",
            "context_servers": {"num_instances": 2, "urls": ["localhost:8002", "localhost:8003"]},
            "generation_servers": {"num_instances": 1, "urls": ["localhost:8001"]},
        }
        assert files["extra-llm-api-config.prefill.yml"]["disable_overlap_scheduler"] is True
        assert result.commands[-1].argv == ["trtllm-serve", "disaggregated", "-c", "disagg_config.yaml"]


class TestUnsupportedStrategies:
    @pytest.mark.parametrize(
        ("strategy", "system"),
        [
            ("temporal-pipeline", "TD-Pipe"),
            ("throttled-pipeline", "gLLM"),
            ("macro-instance", "EcoServe"),
            ("sm-partition", "semi-PD"),
            ("phase-resharding", "Seesaw"),
        ],
    )
    def test_nothing_to_export_names_the_system(self, strategy: str, system: str) -> None:
        with pytest.raises(PlannerError, match=f"no stock vLLM flag implements .*{strategy}.*{system}") as e:
            export_plan(plan(instance(strategy=strategy)), "vllm")
        assert e.value.param == "plan"

    def test_fallback_is_labelled(self) -> None:
        throttled = instance(strategy="throttled-pipeline", pp=8, gpus=8, knobs={"max_prefill_tokens": 4096.0})
        (command,) = export_plan(plan(throttled), "vllm", fallback=True).commands
        assert command.fallback
        assert "FALLBACK for throttled-pipeline" in command.note and "loses" in command.note
        assert after(command, "--max-num-batched-tokens") == "4096"

    def test_macro_instance_fallback_runs_each_member(self) -> None:
        macro = instance(strategy="macro-instance", count=2, gpus=8, knobs={"macro_size": 4.0})
        commands = export_plan(plan(macro), "sglang", fallback=True).commands
        assert [c.env["CUDA_VISIBLE_DEVICES"] for c in commands] == [str(i) for i in range(8)]

    def test_mixed_plan_exports_the_rest(self) -> None:
        result = export_plan(plan(instance(), instance(strategy="sm-partition")), "vllm")
        assert [c.instance for c in result.commands] == ["serve-0"]
        (statement,) = result.unsupported
        assert "plan.instances[1]" in statement and "semi-PD" in statement
        assert "NOT EXPORTED" in shell_script(result)


class TestNotAPlan:
    @pytest.mark.parametrize(
        ("payload", "fragment"),
        [
            ({"a": 1}, "no plan.instances"),
            ({"inputs": {"model": "llama-2-13b"}, "plan": {"instances": []}}, "plan.instances is empty"),
            ({"inputs": {"model": "llama-2-13b"}, "plan": {"instances": [{"tp": 1}]}}, "plan.instances.0"),
            (plan(instance(), dtype="fp4"), "inputs.dtype 'fp4'"),
            (plan(instance(role="router")), "role 'router'"),
        ],
    )
    def test_rejected(self, payload: dict[str, Any], fragment: str) -> None:
        with pytest.raises(PlannerError, match="is not a plan") as e:
            export_plan(payload, "vllm")
        assert fragment in str(e.value)


class TestCli:
    def write(self, tmp_path: Path, payload: Any) -> Path:
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(payload))
        return path

    def test_shell_script(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["export", "--plan", str(self.write(tmp_path, DISAGGREGATED)), "--engine", "vllm"])
        assert result.exit_code == 0, result.output
        assert (
            "CUDA_VISIBLE_DEVICES=4,5 VLLM_NIXL_SIDE_CHANNEL_PORT=5561 vllm serve meta-llama/Llama-2-13b-hf \\"
            in result.output
        )
        assert """--kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}'""" in result.output

    def test_json(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, DISAGGREGATED)
        result = runner.invoke(app, ["export", "--plan", str(path), "--engine", "sglang", "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["schema_version"] == 1
        assert data["inputs"] == {"plan": str(path), "engine": "sglang", "fallback": False}
        assert {"instance", "engine", "argv", "env", "note"} <= set(data["commands"][0])
        Export.model_validate({k: v for k, v in data.items() if k not in ("schema_version", "inputs")})

    def test_partial_export_exits_1(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, plan(instance(), instance(strategy="sm-partition")))
        result = runner.invoke(app, ["export", "--plan", str(path), "--engine", "trtllm"])
        assert result.exit_code == 1
        assert "NOT EXPORTED" in result.output

    @pytest.mark.parametrize(
        ("case", "fragment"),
        [
            ("missing", "no plan file at"),
            ("not-json", "is not JSON"),
            ("not-a-plan", "is not a plan"),
            ("a-list", "does not hold a JSON object"),
            ("unknown-engine", "--engine: unknown engine 'tgi'"),
            ("unsupported", "nothing to export"),
        ],
    )
    def test_bad_input_is_one_line(self, tmp_path: Path, case: str, fragment: str) -> None:
        path = tmp_path / "plan.json"
        engine = "tgi" if case == "unknown-engine" else "vllm"
        contents = {
            "not-json": "{plan",
            "not-a-plan": json.dumps({"hello": 1}),
            "a-list": "[]",
            "unknown-engine": json.dumps(CHUNKED),
            "unsupported": json.dumps(plan(instance(strategy="temporal-pipeline"))),
        }
        if case in contents:
            path.write_text(contents[case])
        result = runner.invoke(app, ["export", "--plan", str(path), "--engine", engine])
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert fragment in " ".join(result.output.split())
