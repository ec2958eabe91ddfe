"""The `tdplan` command line (`planner.cli.app`): exit codes and key lines, and one clean error line for every
kind of bad input (exit code 2, no traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from planner.cli import app

ROOT = Path(__file__).resolve().parents[1]

CONTRACT_FIELDS = (
    "model", "gpu", "num_gpus", "tp", "pp", "replicas", "dtype", "input_len", "output_len", "scenario",
    "output_throughput_tok_s", "request_throughput_req_s", "ttft_s", "tpot_s", "batch_size",
    "kv_capacity_tokens", "prefill_time_s", "decode_step_time_s", "memory_gib", "bottleneck",
)  # fmt: skip

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def estimate_args(**options: str) -> list[str]:
    """`estimate` for llama-70b on 8 x H100 with 1024 + 256 tokens; keyword options override or add flags
    (underscores become dashes)."""
    merged = {"model": "llama-70b", "gpus": "8xh100", "input_len": "1024", "output_len": "256", **options}
    args = ["estimate"]
    for name, value in merged.items():
        args += [f"--{name.replace('_', '-')}", value]
    return args


def assert_one_error_line(result: Result, *fragments: str) -> str:
    """Exit code 2 and a single non-empty line, `error: ...`, holding every fragment; no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "error:" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


class TestEstimate:
    def test_table(self) -> None:
        result = invoke(*estimate_args(gpus="8xL20"))
        assert result.exit_code == 0, result.output
        for key in (
            "TP 4 x PP 1, 2 replica(s)",
            "output throughput",
            "tok/s",
            "TTFT (mean)",
            "TPOT (mean)",
            "bottleneck",
            "note: model 'llama-70b' resolved to Llama-3.1-70B (llama-3.1-70b)",
            "note: TP 4 chosen",
        ):
            assert key in result.output

    def test_json(self) -> None:
        result = invoke(*estimate_args(gpus="8xL20"), "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert [name for name in CONTRACT_FIELDS if name not in data] == []
        assert (data["model"], data["gpu"], data["tp"], data["replicas"]) == ("llama-3.1-70b", "l20", 4, 2)
        assert data["scenario"] == "offline"
        assert data["output_throughput_tok_s"] > 0

    def test_options(self) -> None:
        args = estimate_args(model="llama-8b", gpus="16xh100", tp="16", network="8xib-ndr", concurrency="64")
        result = invoke(*args, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert (data["tp"], data["num_nodes"], data["network"]) == (16, 2, "8xib-ndr")
        assert (data["scenario"], data["concurrency"]) == ("concurrency", 64)


class TestCatalogCommands:
    def test_hardware_list_shows_every_id_whole(self) -> None:
        """At the 80 columns the test runner's console has, every GPU id is printed uncut."""
        result = invoke("hardware", "list")
        assert result.exit_code == 0, result.output
        ids = [path.stem for path in (ROOT / "hardware" / "gpus").glob("*.yaml")]
        assert [gpu_id for gpu_id in ids if f" {gpu_id} " not in result.output] == []

    def test_hardware_show(self) -> None:
        result = invoke("hardware", "show", "h100")
        assert result.exit_code == 0, result.output
        for key in ("NVIDIA H100 SXM5 80GB", "hopper", "80 GiB at 3350 GB/s", "nvlink4", "measured", "GEMM bf16"):
            assert key in result.output

    def test_hardware_show_names_the_donor_of_derived_constants(self) -> None:
        result = invoke("hardware", "show", "l20")
        assert result.exit_code == 0, result.output
        assert "derived from l40s" in result.output

    def test_models_list_shows_every_id_whole(self) -> None:
        result = invoke("models", "list")
        assert result.exit_code == 0, result.output
        ids = [path.stem for path in (ROOT / "models").glob("*.yaml")]
        assert [model_id for model_id in ids if f" {model_id} " not in result.output] == []

    def test_models_show(self) -> None:
        result = invoke("models", "show", "llama-70b")
        assert result.exit_code == 0, result.output
        for key in ("Llama-3.1-70B", "80 x 8192", "64 heads, 8 KV heads"):
            assert key in result.output


CLI_ERROR_CASES: list[tuple[str, list[str], str]] = [
    ("unknown GPU", estimate_args(gpus="8xh100-sxn"), "closest: h100-sxm"),
    ("unknown model", estimate_args(model="llama-99b"), "unknown model 'llama-99b'"),
    ("TP not dividing heads", estimate_args(tp="3"), "TP 3 does not divide"),
    ("model too large", estimate_args(model="llama-3.1-405b", gpus="1xL20"), "GiB"),
    ("zero input", estimate_args(input_len="0"), "--input-len"),
    ("negative output", estimate_args(output_len="-5"), "--output-len"),
    ("concurrency and rate", estimate_args(concurrency="4", rate="1"), "not several"),
    ("unknown dtype", estimate_args(dtype="fp9"), "--dtype: unknown format 'fp9'"),
    ("unreadable --gpus", estimate_args(gpus="8x#L20"), "--gpus: cannot read '8x#L20'"),
    ("zero GPUs", estimate_args(gpus="0xL20"), "--gpus: '0xL20' asks for 0 GPUs: give 1 to 65,536"),
    ("network typo", estimate_args(gpus="16xh100", network="100gbee"), "unknown network '100gbee'"),
    ("partial node", estimate_args(gpus="12xL20"), "do not fill whole nodes of 8"),
    ("unknown GPU to show", ["hardware", "show", "h1OO"], "unknown GPU 'h1OO'"),
    ("unknown model to show", ["models", "show", "gpt-9"], "unknown model 'gpt-9'"),
]


class TestErrors:
    @pytest.mark.parametrize(("case", "args", "fragment"), CLI_ERROR_CASES, ids=[case[0] for case in CLI_ERROR_CASES])
    def test_bad_input_is_one_error_line(self, case: str, args: list[str], fragment: str) -> None:
        assert_one_error_line(invoke(*args), fragment)

    @pytest.fixture
    def catalog_copy(self, tmp_path: Path) -> Path:
        """A private copy of the shipped catalogs, to break."""
        for folder in ("hardware", "models"):
            shutil.copytree(ROOT / folder, tmp_path / folder)
        return tmp_path

    @pytest.mark.parametrize(
        ("relative", "text", "fragment"),
        [
            ("hardware/gpus/l20.yaml", "id: l20\nname: [unclosed\n", "malformed YAML"),
            ("models/llama-2-7b.yaml", "id: llama-2-7b\nname: Llama-2-7B\nparams: 7\n", "field"),
        ],
        ids=["yaml-syntax", "schema"],
    )
    def test_broken_catalog_file_is_named(self, catalog_copy: Path, relative: str, text: str, fragment: str) -> None:
        broken = catalog_copy / relative
        broken.write_text(text)
        result = invoke(*estimate_args(gpus="8xL20"), "--catalog", str(catalog_copy))
        assert_one_error_line(result, str(broken), fragment)

    def test_catalog_folder_without_catalogs(self, tmp_path: Path) -> None:
        assert_one_error_line(invoke("hardware", "list", "--catalog", str(tmp_path)), "no catalog at")

    def test_malformed_config_json(self, tmp_path: Path) -> None:
        config = tmp_path / "config.json"
        config.write_text('{"model_type": "llama", "hidden_size": ')
        assert_one_error_line(invoke(*estimate_args(model=str(config))), "malformed JSON", str(config))

    def test_unsupported_architecture_in_config_json(self, tmp_path: Path) -> None:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"model_type": "deepseek_v3", "hidden_size": 7168}))
        assert_one_error_line(invoke(*estimate_args(model=str(config))), "multi-head latent attention")


def _strategy_args(**options: str) -> list[str]:
    """`estimate --strategy ...` for llama-8b on one H100 with short requests (fast)."""
    merged = {"model": "llama-8b", "gpus": "1xh100", "input_len": "64", "output_len": "8", **options}
    args = ["estimate"]
    for name, value in merged.items():
        args += [f"--{name.replace('_', '-')}", value]
    return args


COMPARE_8B = ["compare", "--model", "llama-8b", "--gpus", "1xh100"]
HARDENING_CASES: list[tuple[str, list[str], str]] = [
    ("knob zero", _strategy_args(strategy="chunked", knob="chunk_size=0"), "--knob: chunk_size must be a whole"),
    ("knob nan", _strategy_args(strategy="chunked", knob="chunk_size=nan"), "got nan"),
    ("knob negative", _strategy_args(strategy="chunked", knob="chunk_size=-512"), "got -512"),
    ("knob share", _strategy_args(strategy="phase-resharding", knob="kv_fill=2"), "kv_fill must be a number in (0, 1]"),
    ("ttft zero", _strategy_args(strategy="colocated", ttft="0"), "--ttft: must be a number greater than 0"),
    ("tpot negative", _strategy_args(strategy="colocated", tpot="-1"), "--tpot: must be a number greater than 0"),
    ("ttft on a plain estimate", estimate_args(ttft="1"), "--ttft: SLO targets apply to strategy estimates"),
    ("num-requests on a strategy estimate", _strategy_args(strategy="colocated", num_requests="5"), "--num-requests"),
    (
        "num-requests with analytic rate",
        [*estimate_args(rate="1", num_requests="5"), "--analytic"],
        "--num-requests: sets the simulated requests",
    ),
    ("analytic offline", [*estimate_args(), "--analytic"], "--analytic: applies to --concurrency and --rate"),
    ("workload and lengths", [*_strategy_args(), "--workload", "sharegpt"], "--workload: a workload sets the request"),
    ("workload typo", ["estimate", "--model", "llama-8b", "--gpus", "1xh100", "--workload", "sharegtp"], "sharegpt"),
    (
        "workload cap not a number",
        ["estimate", "--model", "llama-8b", "--gpus", "1xh100", "--workload", "azure-conv:4k"],
        "--workload: workload 'azure-conv:4k': the cap after 'azure-conv:' must be a whole number of tokens",
    ),
    (
        "workload cap below every request",
        ["estimate", "--model", "llama-8b", "--gpus", "1xh100", "--workload", "azure-code:3"],
        "keeps no request: its shortest is",
    ),
    ("fractional concurrency", estimate_args(concurrency="2.5"), "--concurrency: must be a whole number"),
    ("rate nan", estimate_args(rate="nan"), "--rate: must be a number greater than 0"),
    ("input too long", estimate_args(input_len="100000000"), "--input-len: must be a whole number"),
    ("GPU name missing", estimate_args(gpus="8x"), "--gpus: '8x' names no GPU"),
    ("too many GPUs", estimate_args(gpus="100000xH100"), "give 1 to 65,536"),
    ("fractional GPUs", estimate_args(gpus="2.5xH100"), "the count must be a whole number"),
    ("GPUs per node", estimate_args(gpus_per_node="100000"), "--gpus-per-node: must be a whole number"),
    ("network ports", estimate_args(network="99999999x100gbe"), "--network: '99999999x100gbe' asks for 99999999"),
    ("empty model", estimate_args(model=""), "--model: give a model id"),
    ("compare rate nan", [*COMPARE_8B, "--rate", "nan"], "--rate"),
    ("compare attainment nan", [*COMPARE_8B, "--attainment", "nan"], "--attainment"),
    (
        "compare nothing fits",
        ["compare", "--model", "llama-3.1-405b", "--gpus", "1xL4", "--input-len", "16", "--output-len", "16",
         "--strategy", "colocated"],
        "--gpus: Llama-3.1-405B has no feasible instance on 1xl4 (colocated: Llama-3.1-405B does not fit",
    ),
    ("compare too many GPUs", ["compare", "--model", "llama-8b", "--gpus", "100000xH100"], "give 1 to 65,536"),
    ("show a folder without config", ["models", "show", "/"], "NAME: no config.json in the folder"),
    ("empty network", estimate_args(network=""), "--network: unknown network ''"),
    ("empty engine", estimate_args(engine=""), "--engine: give an engine id"),
    ("unknown engine", estimate_args(engine="sglang"), "--engine: unknown engine 'sglang'"),
    ("empty strategy", _strategy_args(strategy=""), "--strategy: unknown strategy ''"),
    ("option not a whole number", estimate_args(tp="1.5"), "Invalid value for '--tp'"),
    ("unknown option", [*estimate_args(), "--bogus"], "No such option: --bogus"),
    ("missing option", ["estimate"], "Missing option '--model'"),
    ("extra argument", ["strategies", "extra"], "unexpected extra argument"),
    ("unknown command", ["recommnd"], "No such command 'recommnd'"),
]  # fmt: skip


class TestHardening:
    @pytest.mark.parametrize(("case", "args", "fragment"), HARDENING_CASES, ids=[c[0] for c in HARDENING_CASES])
    def test_bad_input_is_one_error_line(self, case: str, args: list[str], fragment: str) -> None:
        assert_one_error_line(invoke(*args), fragment)

    @pytest.mark.parametrize("kind", ["directory", "missing", "binary", "empty", "malformed", "ragged"])
    def test_workload_file(self, tmp_path: Path, kind: str) -> None:
        path = tmp_path / "w.csv"
        content = {"binary": b"\xff\xfe\x00", "empty": b"", "malformed": b"input_len,output_len\n1,x\n"}
        if kind == "directory":
            path.mkdir()
        elif kind == "ragged":
            path.write_bytes(b"input_len,output_len\n1,2,3\n")
        elif kind != "missing":
            path.write_bytes(content[kind])
        result = invoke("estimate", "--model", "llama-8b", "--gpus", "1xh100", "--workload", str(path))
        assert_one_error_line(result, "--workload:", str(path))

    @pytest.mark.parametrize("kind", ["directory", "binary", "empty", "malformed", "bool layers"])
    def test_model_file(self, tmp_path: Path, kind: str) -> None:
        path = tmp_path / "config.json"
        if kind == "directory":
            path = tmp_path
        elif kind == "bool layers":
            config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": True, "num_attention_heads": 4,
                      "vocab_size": 100, "intermediate_size": 128}  # fmt: skip
            path.write_text(json.dumps(config))
        else:
            path.write_bytes({"binary": b"\xff\xfe", "empty": b"", "malformed": b"{bad"}[kind])
        assert_one_error_line(invoke(*estimate_args(model=str(path))), "--model:", str(path))

    @pytest.mark.parametrize(
        ("old", "new", "fragment"),
        [
            ("memory_bw_gb_s: 300", "memory_bw_gb_s: .inf", "field 'memory_bw_gb_s'"),
            ("memory_gib: 24", "memory_gib: 1e12", "field 'memory_gib'"),
            ("aliases: [l4-24gb]", "aliases: [h100]", "'h100' names both h100-sxm and l4"),
        ],
    )
    @pytest.mark.parametrize("command", [["hardware", "list"], ["hardware", "show", "l4"], estimate_args()])
    def test_bad_catalog(self, tmp_path: Path, command: list[str], old: str, new: str, fragment: str) -> None:
        for folder in ("hardware", "models"):
            shutil.copytree(ROOT / folder, tmp_path / folder)
        gpu = tmp_path / "hardware" / "gpus" / "l4.yaml"
        gpu.write_text(gpu.read_text().replace(old, new, 1))
        assert_one_error_line(invoke(*command, "--catalog", str(tmp_path)), "l4", fragment)

    def test_validate_markdown_into_a_directory(self, tmp_path: Path) -> None:
        assert_one_error_line(invoke("validate", "--markdown", str(tmp_path)), "--markdown:", "is a directory")

    def test_version(self) -> None:
        result = invoke("--version")
        assert result.exit_code == 0 and result.output.startswith("tdplan ")

    def test_json_carries_schema_version_and_inputs(self) -> None:
        result = invoke(*estimate_args(gpus="8xL20"), "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["schema_version"] == 1
        assert data["inputs"] == {
            "model": "llama-3.1-70b", "gpu": "l20", "num_gpus": 8, "engine": data["engine"],
            "workload": "fixed 1024/256", "dtype": "bf16", "kv_dtype": "bf16", "network": "100gbe",
        }  # fmt: skip


def test_a_capped_preset_names_itself_in_the_inputs() -> None:
    """`--workload NAME:TOKENS` is resolved once and reported as given."""
    result = invoke("estimate", "--model", "llama-8b", "--gpus", "1xh100", "--workload", "sharegpt-multiturn:4096",
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["inputs"]["workload"] == "sharegpt-multiturn:4096"
    assert payload["feasible"] and payload["request_throughput_req_s"] > 0
