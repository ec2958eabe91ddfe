"""The input layer (`planner.specs.inputs` and the readers built on it): every kind of bad number, file, catalog
entry, workload and knob raises `PlannerError` naming the parameter (library) and the problem, never a raw
pydantic `ValidationError`, `TypeError` or `OSError`."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from planner.comparison import compare
from planner.errors import PlannerError
from planner.estimation import estimate
from planner.specs import inputs
from planner.specs.catalog import load_catalog, load_hf_model
from planner.specs.hardware import GpuPool, NetworkSpec
from planner.specs.inputs import check_number, check_output_file, read_text
from planner.specs.workload import Workload
from planner.strategies import REGISTRY, get_strategy
from planner.strategies.knobs import KNOB_RANGES, parse_knobs

ROOT = Path(__file__).resolve().parents[1]


class TestNumbers:
    @pytest.mark.parametrize(
        ("value", "integer", "fragment"),
        [
            (True, True, r"got True \(bool\)"),
            ("8", True, r"got '8' \(str\)"),
            (math.nan, False, "got nan"),
            (math.inf, False, "got inf"),
            (-math.inf, True, "got -inf"),
            (2.5, True, "got 2.5: give a whole number"),
            (0, True, "got 0"),
            (-1, False, "got -1"),
            (11, True, "at most 10, got 11"),
        ],
    )
    def test_refused(self, value: Any, integer: bool, fragment: str) -> None:
        with pytest.raises(PlannerError, match=fragment) as caught:
            check_number(value, "width", integer=integer, low=1, high=10)
        assert caught.value.param == "width" and str(caught.value).startswith("width: must be a ")

    def test_open_lower_bound_refuses_the_bound(self) -> None:
        with pytest.raises(PlannerError, match="greater than 0"):
            check_number(0.0, "rate", integer=False, low=0, high=1, low_open=True)

    @pytest.mark.parametrize(("value", "integer", "expected"), [(None, True, None), (4.0, True, 4), (0.5, False, 0.5)])
    def test_accepted(self, value: float | None, integer: bool, expected: float | None) -> None:
        checked = check_number(value, "x", integer=integer, low=0, high=10)
        assert checked == expected and type(checked) is type(expected)


def _unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make reading `path` fail with EACCES: chmod 000 when not root, else a patched read (root reads anyway)."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


class TestFiles:
    @pytest.mark.parametrize(
        ("setup", "fragment"),
        [
            ("missing", "no config.json at"),
            ("directory", "is a directory: point it at a config.json file"),
            ("binary", "is not UTF-8 text"),
            ("unreadable", "cannot read .*Permission denied.*check its permissions"),
            ("too large", "is 200 bytes, over the 104 bytes limit for a config.json"),
        ],
    )
    def test_read_text(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, fragment: str) -> None:
        path = tmp_path / "file"
        if setup == "directory":
            path.mkdir()
        elif setup == "binary":
            path.write_bytes(b"\xff\xfe\x00\x89PNG")
        elif setup in ("unreadable", "too large"):
            path.write_text("x" * 200)
            if setup == "unreadable":
                _unreadable(path, monkeypatch)
        limit = 104 if setup == "too large" else 1 << 20
        with pytest.raises(PlannerError, match=fragment) as caught:
            read_text(path, "model", "config.json", limit)
        assert caught.value.param == "model"

    def test_utf8_with_bom_reads(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.csv"
        path.write_bytes(b"\xef\xbb\xbfinput_len,output_len\n3,4\n")
        assert set(Workload.parse(str(path)).input_lens) == {3}

    def test_output_file_that_is_a_directory(self, tmp_path: Path) -> None:
        with pytest.raises(PlannerError, match="is a directory: give a file name"):
            check_output_file(tmp_path, "markdown")

    def test_output_file_under_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        with pytest.raises(PlannerError, match="is a file, so"):
            check_output_file(tmp_path / "file" / "page.md", "markdown")


class TestWorkloadCsv:
    @pytest.mark.parametrize(
        ("content", "fragment"),
        [
            (b"", "the header has no input_len or output_len column"),
            (b"a,b\n1,2\n", r"the header has no input_len or output_len column \(found: a,b\)"),
            (b"input_len\n5\n", "no output_len column"),
            (b"input_len,output_len\n", "holds no requests"),
            (b"input_len,output_len\n10,x\n", "whole numbers in input_len and output_len"),
            (b"input_len,output_len\n10.5,3\n", "whole numbers"),
            (b"input_len,output_len\n10\n", "whole numbers"),
            (b"input_len,output_len\n10,20,30\n", "more fields than the 2 columns"),
            (b"input_len,output_len\n5,5\n-5,3\n", "request 2 has lengths -5,3"),
            (b"input_len,output_len\n0,3\n", "request 1 has lengths 0,3"),
            (b"input_len,output_len\n99999999999999999999999,3\n", "whole numbers"),
            (b"\x00\xff\xfe\x89PNG", "is not UTF-8 text"),
        ],
    )
    def test_bad_content(self, tmp_path: Path, content: bytes, fragment: str) -> None:
        path = tmp_path / "w.csv"
        path.write_bytes(content)
        with pytest.raises(PlannerError, match=fragment) as caught:
            Workload.parse(str(path))
        assert caught.value.param == "workload"

    def test_directory(self, tmp_path: Path) -> None:
        with pytest.raises(PlannerError, match="is a directory"):
            Workload.parse(str(tmp_path))

    def test_unknown_name_lists_the_presets(self) -> None:
        with pytest.raises(
            PlannerError,
            match=r"did you mean sharegpt.*sharegpt, sharegpt-multiturn, .*, humaneval\), optionally",
        ):
            Workload.parse("sharegtp")

    def test_rows_beyond_the_limit_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "w.csv"
        path.write_text("input_len,output_len\n" + "5,5\n" * (inputs.MAX_WORKLOAD_ROWS + 1))
        with pytest.raises(PlannerError, match="over the limit of 100,000 requests"):
            Workload.parse(str(path))

    def test_a_million_rows_read_in_seconds(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The reader is vectorized: with the row limit raised, a million rows parse in well under 5 s."""
        monkeypatch.setattr("planner.specs.workload.MAX_WORKLOAD_ROWS", 1_000_000)
        rows = np.random.default_rng(0).integers(1, 2048, size=(1_000_000, 2))
        path = tmp_path / "big.csv"
        with path.open("w") as handle:
            handle.write("output_len,input_len,note\n")  # columns in any order, extra ones ignored
            np.savetxt(handle, np.column_stack([rows, np.zeros(len(rows), dtype=int)]), fmt="%d", delimiter=",")
        start = time.perf_counter()
        work = Workload.parse(str(path))
        assert time.perf_counter() - start < 5
        assert len(work.input_lens) == len(rows) and work.output_lens[0] == rows[0, 0]

    @pytest.mark.parametrize(
        ("workload", "input_len", "output_len", "fragment"),
        [
            ("sharegpt", 1024, None, "workload: a workload sets the request lengths, so input_len would be ignored"),
            (None, 1024, None, "output_len: give output_len too"),
            (None, None, None, "workload: no request lengths"),
            (None, True, 5, "input_len: must be a whole number"),
            (None, 5, 2.5, "output_len: must be a whole number"),
            (None, 5, 1e9, "output_len: .* at most 16,777,216"),
        ],
    )
    def test_resolve(self, workload: str | None, input_len: Any, output_len: Any, fragment: str) -> None:
        with pytest.raises(PlannerError, match=fragment):
            Workload.resolve(workload, input_len, output_len)


class TestHfConfig:
    @pytest.fixture()
    def config(self) -> dict[str, Any]:
        entry = yaml.safe_load((ROOT / "models" / "llama-3.1-8b.yaml").read_text())
        return dict(entry["config"])

    @pytest.mark.parametrize(
        ("key", "value", "fragment"),
        [
            ("num_hidden_layers", True, "'num_hidden_layers': Input should be a valid integer, got True"),
            ("hidden_size", "4096", "'hidden_size': Input should be a valid integer, got '4096'"),
            ("hidden_size", 4096.5, "got 4096.5"),
            ("vocab_size", 1e30, "'vocab_size'"),
            ("num_hidden_layers", 10**12, "less than or equal to 4096"),
            ("num_attention_heads", -1, "greater than 0"),
            ("tie_word_embeddings", "yes", "'tie_word_embeddings'"),
        ],
    )
    def test_bad_key(self, tmp_path: Path, config: dict[str, Any], key: str, value: Any, fragment: str) -> None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps({**config, key: value}))
        with pytest.raises(PlannerError, match=fragment) as caught:
            load_hf_model(path)
        assert caught.value.param == "model" and str(path) in str(caught.value)

    @pytest.mark.parametrize(
        ("content", "fragment"),
        [
            (b"", "malformed JSON"),
            (b"{bad", "malformed JSON"),
            (b"[1, 2]", "not a Hugging Face"),
            (b"\xff\xfe", "UTF-8"),
        ],
    )
    def test_bad_file(self, tmp_path: Path, content: bytes, fragment: str) -> None:
        path = tmp_path / "config.json"
        path.write_bytes(content)
        with pytest.raises(PlannerError, match=fragment):
            load_hf_model(path)

    def test_folder_without_config(self, tmp_path: Path) -> None:
        with pytest.raises(PlannerError, match=r"no config\.json in the folder"):
            load_hf_model(tmp_path)

    def test_empty_model_name(self) -> None:
        with pytest.raises(PlannerError, match="model: give a model id"):
            load_catalog().model("")


def _catalog_copy(tmp_path: Path) -> Path:
    for folder in ("hardware", "models"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


class TestCatalogFiles:
    @pytest.mark.parametrize(
        ("old", "new", "fragment"),
        [
            (
                "memory_bw_gb_s: 300",
                "memory_bw_gb_s: .inf",
                "l4.yaml: field 'memory_bw_gb_s': Input should be a finite",
            ),
            ("memory_bw_gb_s: 300", "memory_bw_gb_s: .nan", "field 'memory_bw_gb_s'"),
            ("memory_bw_gb_s: 300", "memory_bw_gb_s: -300", "field 'memory_bw_gb_s': Input should be greater than 0"),
            ("memory_gib: 24", "memory_gib: 1e12", "field 'memory_gib': Input should be less than or equal to 1024"),
            ("fp16: 121", "fp16: .inf", "field 'dense_tflops.fp16'"),
            ("gpus_per_node: 8", "gpus_per_node: true", "field 'gpus_per_node'"),
            ("aliases: [l4-24gb]", "aliases: [h100]", "'h100' names both h100-sxm and l4"),
        ],
    )
    def test_bad_gpu_entry(self, tmp_path: Path, old: str, new: str, fragment: str) -> None:
        root = _catalog_copy(tmp_path)
        _edit(root / "hardware" / "gpus" / "l4.yaml", old, new)
        with pytest.raises(PlannerError, match=fragment):
            load_catalog(root)

    @pytest.mark.parametrize(
        ("setup", "fragment"),
        [
            ("binary", "l4.yaml is not UTF-8 text"),
            ("empty", "l4.yaml does not hold a mapping"),
            ("directory", "l4.yaml is a directory"),
            ("malformed", "malformed YAML in .*l4.yaml line"),
        ],
    )
    def test_bad_gpu_file(self, tmp_path: Path, setup: str, fragment: str) -> None:
        root = _catalog_copy(tmp_path)
        path = root / "hardware" / "gpus" / "l4.yaml"
        if setup == "binary":
            path.write_bytes(b"\xff\xfe\x00\x01")
        elif setup == "empty":
            path.write_text("")
        elif setup == "directory":
            path.unlink()
            path.mkdir()
        else:
            path.write_text("id: [l4\n")
        with pytest.raises(PlannerError, match=fragment):
            load_catalog(root)

    def test_bool_layer_count_in_a_model_entry(self, tmp_path: Path) -> None:
        root = _catalog_copy(tmp_path)
        _edit(root / "models" / "llama-3.1-8b.yaml", "num_hidden_layers: 32", "num_hidden_layers: true")
        with pytest.raises(PlannerError, match=r"llama-3.1-8b.yaml: .*'num_hidden_layers'.*got True"):
            load_catalog(root)

    def test_shipped_catalog_has_no_name_clashes(self) -> None:
        catalog = load_catalog()
        assert catalog.gpu("h100").id == "h100-sxm"


class TestClusterText:
    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("8x", "'8x' names no GPU"),
            ("", "cannot read ''"),
            ("2.5xH100", "asks for 2.5 GPUs: the count must be a whole number"),
            ("-8xH100", "asks for -8 GPUs"),
            ("0xH100", "asks for 0 GPUs: give 1 to 65,536"),
            ("100000xH100", "asks for 100,000 GPUs: give 1 to 65,536"),
        ],
    )
    def test_gpus(self, text: str, fragment: str) -> None:
        with pytest.raises(PlannerError, match=fragment) as caught:
            GpuPool.parse(text)
        assert caught.value.param == "gpus"

    @pytest.mark.parametrize("text", ["0x100gbe", "65x100gbe", "99999999x100gbe"])
    def test_network_ports(self, text: str) -> None:
        with pytest.raises(PlannerError, match="ports per node: give 1 to 64"):
            NetworkSpec.parse(text)

    def test_unknown_gpu_names_the_parameter(self) -> None:
        with pytest.raises(PlannerError, match=r"gpus: unknown GPU 'H1OO' \(closest: h100"):
            load_catalog().cluster("8xH1OO")


class TestKnobs:
    @pytest.mark.parametrize(
        ("strategy", "knob", "value"),
        [
            ("chunked", "chunk_size", 0),
            ("chunked", "chunk_size", math.nan),
            ("chunked", "chunk_size", math.inf),
            ("chunked", "chunk_size", -512),
            ("chunked", "chunk_size", 100.5),
            ("colocated", "max_batch", 1e30),
            ("phase-resharding", "kv_fill", 0),
            ("phase-resharding", "kv_fill", 2),
            ("sm-partition", "prefill_sm_share", 0),
            ("sm-partition", "prefill_sm_share", 1),
            ("temporal-pipeline", "switch_share", 1),
            ("macro-instance", "macro_size", 0),
            ("throttled-pipeline", "iterp", 0),
            ("throttled-pipeline", "kv_threshold", 1),
            ("colocated", "max_batch", True),
        ],
    )
    def test_out_of_range(self, strategy: str, knob: str, value: float) -> None:
        with pytest.raises(PlannerError, match=f"knobs: {knob} must be a") as caught:
            get_strategy(strategy).check_knobs({knob: value})
        assert caught.value.param == "knobs"

    def test_every_knob_has_a_range_that_admits_its_values(self) -> None:
        for cls in REGISTRY.values():
            for knob in cls.knobs:
                allowed = KNOB_RANGES[knob.name]
                assert all(allowed.admits(v) for v in (knob.default, *knob.search)), (cls.name, knob.name)

    @pytest.mark.parametrize("text", ["chunk_size", "=5", "chunk_size=", "chunk_size=abc"])
    def test_unreadable_text(self, text: str) -> None:
        with pytest.raises(PlannerError, match="knobs: cannot read"):
            parse_knobs([text])

    def test_strategy_names_forgive_underscores(self) -> None:
        assert get_strategy("phase_resharding").name == "phase-resharding"


class TestLibraryParameters:
    """Library callers see parameter names, never flags, and never a raw ValidationError or TypeError."""

    @pytest.mark.parametrize(
        ("overrides", "fragment"),
        [
            ({"tp": 2.5}, "tp: must be a whole number"),
            ({"pp": True}, "pp: must be a whole number"),
            ({"concurrency": 2.5}, "concurrency: must be a whole number .* got 2.5"),
            ({"rate": math.nan}, "rate: must be a number greater than 0"),
            ({"input_len": "1024"}, "input_len: must be a whole number"),
            ({"num_requests": 10**12}, "num_requests: .* at most 1,000,000,000"),
            ({"gpus_per_node": 0}, "gpus_per_node: must be a whole number"),
            ({"model": 123}, "model: expected a model id"),
            ({"gpus": None}, "gpus: expected text such as 8xL20"),
            ({"dtype": 5}, "dtype: expected one of bf16"),
            ({"kv_dtype": "int4"}, "kv_dtype: unknown format 'int4'"),
            ({"network": "1x"}, "network: unknown network '1x'"),
            ({"network": 5}, "network: expected text such as 100gbe"),
            ({"engine": ""}, "engine: give an engine id"),
            ({"input_len": None}, "input_len: give a whole number, not None"),
            ({"num_requests": None}, "num_requests: give a whole number, not None"),
        ],
    )
    def test_estimate(self, overrides: dict[str, Any], fragment: str) -> None:
        with pytest.raises(PlannerError, match=fragment) as caught:
            estimate(**{"model": "llama-8b", "gpus": "1xh100", **overrides})
        assert "--" not in str(caught.value)

    @pytest.mark.parametrize(
        ("overrides", "fragment"),
        [
            ({"rate": math.nan}, "rate: must be a number greater than 0"),
            ({"ttft": 0}, "ttft: must be a number greater than 0"),
            ({"tpot": -1}, "tpot: must be a number greater than 0"),
            ({"attainment": 1.5}, "attainment: .* at most 1"),
            ({"strategies": "teleport"}, "strategy: unknown strategy 'teleport'"),
            ({"strategies": 5}, "strategies: expected strategy names"),
            ({"workload": "sharegpt"}, "workload: a workload sets the request lengths"),
            ({"gpus": "100000xH100"}, "gpus: '100000xH100' asks for 100,000 GPUs"),
        ],
    )
    def test_compare_refuses_before_evaluating(self, overrides: dict[str, Any], fragment: str) -> None:
        with pytest.raises(PlannerError, match=fragment):
            compare(**{"model": "llama-8b", "gpus": "1xh100", "input_len": 64, "output_len": 8, **overrides})
