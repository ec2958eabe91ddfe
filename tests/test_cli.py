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
        for key in ("NVIDIA H100 SXM5 80GB", "hopper", "80 GiB at 3350 GB/s", "nvlink4"):
            assert key in result.output

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
    ("concurrency and rate", estimate_args(concurrency="4", rate="1"), "not both"),
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
