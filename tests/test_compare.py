"""`tdplan compare`, `tdplan strategies` and `tdplan estimate --strategy`: the CLI contract end to end."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from planner.cli import app
from planner.comparison import compare
from planner.errors import PlannerError
from planner.strategies import REGISTRY

runner = CliRunner()

PLAN_FIELDS = {"strategy", "feasible", "plan", "margin_pct"}
SMALL = ["--model", "llama-8b", "--gpus", "2xa100", "--input-len", "512", "--output-len", "128"]
TWO = ["--strategy", "colocated", "--strategy", "chunked"]


@pytest.fixture(scope="module")
def compared() -> dict[str, object]:
    result = runner.invoke(app, ["compare", *SMALL, *TWO, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, object] = json.loads(result.output)
    return payload


class TestCompareJson:
    def test_has_a_plan_per_strategy_and_the_best(self, compared: dict[str, object]) -> None:
        assert {"per_strategy", "best", "configs", "reason"} <= set(compared)
        assert compared["schema_version"] == 1
        inputs = compared["inputs"]
        assert isinstance(inputs, dict) and (inputs["model"], inputs["gpu"], inputs["num_gpus"]) == (
            "llama-3.1-8b",
            "a100-sxm-80gb",
            2,
        )
        assert inputs["workload"] == "fixed 512/128" and inputs["engine"]
        per_strategy = compared["per_strategy"]
        assert isinstance(per_strategy, list) and {p["strategy"] for p in per_strategy} == {"colocated", "chunked"}
        for entry in per_strategy:
            assert set(entry) >= PLAN_FIELDS
        configs = compared["configs"]
        assert isinstance(configs, list) and {c["strategy"] for c in configs} == {"colocated", "chunked"}

    def test_without_targets_best_has_the_most_offline_throughput(self, compared: dict[str, object]) -> None:
        plans = [p["plan"] for p in compared["per_strategy"] if p["feasible"]]  # type: ignore[union-attr]
        best = compared["best"]
        assert isinstance(best, dict) and compared["objective"] == "throughput"
        throughput = [p["predicted"]["output_throughput_tok_s"] for p in plans]
        assert best["plan"]["predicted"]["output_throughput_tok_s"] == max(throughput)

    def test_with_targets_best_has_the_most_goodput(self) -> None:
        result = runner.invoke(app, ["compare", *SMALL, *TWO, "--ttft", "0.3", "--tpot", "0.03", "--json"])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output)
        plans = [p["plan"] for p in payload["per_strategy"] if p["feasible"]]
        assert payload["objective"] == "goodput"
        assert payload["best"]["plan"]["predicted"]["goodput_req_s"] == max(
            p["predicted"]["goodput_req_s"] for p in plans
        )


class TestCompareHuman:
    def test_table_and_reason(self) -> None:
        result = runner.invoke(app, ["compare", *SMALL, *TWO, "--ttft", "0.5", "--tpot", "0.05"])
        assert result.exit_code == 0, result.output
        assert "colocated" in result.output and "why:" in result.output

    def test_all_lists_every_configuration(self) -> None:
        short = runner.invoke(app, ["compare", *SMALL, "--strategy", "colocated"])
        full = runner.invoke(app, ["compare", *SMALL, "--strategy", "colocated", "--all"])
        assert "every instance type evaluated" in full.output
        assert full.output.count("colocated") > short.output.count("colocated")

    def test_nothing_feasible_is_an_error(self) -> None:
        result = runner.invoke(
            app, ["compare", "--model", "llama-3.1-405b", "--gpus", "1xl4", "--input-len", "512", "--output-len",
                  "128", "--strategy", "colocated"],
        )  # fmt: skip
        assert result.exit_code == 2 and "no feasible instance" in result.output


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
