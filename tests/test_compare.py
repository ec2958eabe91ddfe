"""`tdplan compare`, `tdplan strategies` and `tdplan estimate --strategy`: the CLI contract end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from planner.cli import app
from planner.compare import compare
from planner.errors import PlannerError
from planner.strategies import REGISTRY

runner = CliRunner()

CONFIG_FIELDS = {
    "strategy",
    "tp",
    "pp",
    "replicas",
    "knobs",
    "feasible",
    "reason",
    "output_throughput_tok_s",
    "request_throughput_req_s",
    "ttft_s",
    "tpot_s",
    "ttft_p90_s",
    "tpot_p90_s",
    "goodput_req_s",
}
SMALL = ["--model", "llama-8b", "--gpus", "2xa100", "--input-len", "512", "--output-len", "128"]


@pytest.fixture(scope="module")
def compared() -> dict[str, object]:
    result = runner.invoke(app, ["compare", *SMALL, "--strategy", "colocated", "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.output)
    return payload


class TestCompareJson:
    def test_has_configs_and_best(self, compared: dict[str, object]) -> None:
        assert {"configs", "best"} <= set(compared)
        assert compared["schema_version"] == 1
        inputs = compared["inputs"]
        assert isinstance(inputs, dict) and (inputs["model"], inputs["gpu"], inputs["num_gpus"]) == (
            "llama-3.1-8b",
            "a100-sxm-80gb",
            2,
        )
        assert inputs["workload"] == "fixed 512/128" and inputs["engine"]
        configs = compared["configs"]
        assert isinstance(configs, list) and configs
        for config in configs:
            assert set(config) >= CONFIG_FIELDS

    def test_without_targets_best_has_the_most_offline_throughput(self, compared: dict[str, object]) -> None:
        configs = [c for c in compared["configs"] if c["feasible"]]  # type: ignore[union-attr]
        best = compared["best"]
        assert isinstance(best, dict) and compared["objective"] == "throughput"
        assert best["output_throughput_tok_s"] == max(c["output_throughput_tok_s"] for c in configs)

    def test_with_targets_best_has_the_most_goodput(self) -> None:
        result = runner.invoke(
            app, ["compare", *SMALL, "--strategy", "colocated", "--ttft", "0.3", "--tpot", "0.03", "--json"]
        )
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        configs = [c for c in payload["configs"] if c["feasible"]]
        assert payload["objective"] == "goodput"
        assert payload["best"]["goodput_req_s"] == max(c["goodput_req_s"] for c in configs)

    def test_infeasible_configs_say_why(self) -> None:
        result = runner.invoke(
            app,
            [
                "compare",
                "--model",
                "llama-70b",
                "--gpus",
                "8xL20",
                "--input-len",
                "512",
                "--output-len",
                "128",
                "--strategy",
                "colocated",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        infeasible = [c for c in json.loads(result.output)["configs"] if not c["feasible"]]
        assert infeasible and all(c["reason"] for c in infeasible)


class TestCompareHuman:
    def test_table_and_reason(self) -> None:
        result = runner.invoke(app, ["compare", *SMALL, "--strategy", "colocated", "--ttft", "0.5", "--tpot", "0.05"])
        assert result.exit_code == 0, result.output
        assert "colocated" in result.output and "why:" in result.output

    def test_all_lists_every_configuration(self) -> None:
        short = runner.invoke(app, ["compare", *SMALL, "--strategy", "colocated"])
        full = runner.invoke(app, ["compare", *SMALL, "--strategy", "colocated", "--all"])
        assert full.output.count("colocated") > short.output.count("colocated")


class TestStrategyEstimate:
    def test_json_of_one_strategy_configuration(self) -> None:
        result = runner.invoke(
            app,
            [
                "estimate",
                *SMALL,
                "--strategy",
                "colocated",
                "--tp",
                "1",
                "--knob",
                "max_batch=64",
                "--rate",
                "1",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        assert payload["schema_version"] == 1 and payload["inputs"]["workload"] == "fixed 512/128"
        assert payload["strategy"] == "colocated" and payload["tp"] == 1 and payload["knobs"] == {"max_batch": 64}
        assert payload["rate_req_s"] == 1 and payload["ttft_p90_s"] >= payload["ttft_s"] * 0.5

    def test_workload_preset(self) -> None:
        result = runner.invoke(app, ["estimate", "--model", "llama-8b", "--gpus", "1xa100", "--workload", "sharegpt"])
        assert result.exit_code == 0, result.output
        assert "goodput" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", *SMALL, "--strategy", "teleport"], "unknown strategy"),
        (["estimate", *SMALL, "--strategy", "colocated", "--knob", "chunk"], "KEY=NUMBER"),
        (["estimate", *SMALL, "--strategy", "colocated", "--knob", "warp=9"], "no knob warp"),
        (["compare", "--model", "llama-8b", "--gpus", "2xa100"], "--workload"),
        (["compare", "--model", "llama-8b", "--gpus", "2xa100", "--workload", "nowhere.csv"], "no workload CSV"),
        (["compare", *SMALL, "--attainment", "1.5"], "--attainment"),
        (["compare", *SMALL, "--ttft", "-1"], "--ttft"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and message in lines[0]
    assert "Traceback" not in result.output


def test_strategies_lists_every_registered_strategy() -> None:
    result = runner.invoke(app, ["strategies"])
    assert result.exit_code == 0
    for name in REGISTRY:
        assert name in result.output


def test_library_compare_without_lengths_fails_clearly() -> None:
    with pytest.raises(PlannerError, match="workload: no request lengths"):
        compare("llama-8b", "1xa100")
