"""`tdplan simulate` and `planner.simulate()`: the JSON contract, plans from `recommend --json`, and errors."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import planner
from planner.cli import app
from planner.errors import PlannerError
from planner.sim.setup import SIMULATED_STRATEGIES
from planner.simulation import simulate_plan
from planner.strategies import REGISTRY

BASE = ["simulate", "--model", "llama-3.1-8b", "--gpus", "1xh100", "--input-len", "512", "--output-len", "64",
        "--requests", "200"]  # fmt: skip


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def simulate_recommended(tmp_path: Path, recommend: list[str], requests: int) -> list[dict[str, object]]:
    """`tdplan recommend ... --json` written to a file, then `tdplan simulate --plan` of it: the simulations."""
    code, output = invoke("recommend", *recommend, "--json")
    assert code == 0, output
    plan = tmp_path / "plan.json"
    plan.write_text(output)
    code, output = invoke("simulate", "--plan", str(plan), "--requests", str(requests), "--json")
    assert code == 0, output
    simulations: list[dict[str, object]] = json.loads(output)["simulations"]
    return simulations


class TestContract:
    def test_json_fields(self) -> None:
        code, output = invoke(*BASE, "--concurrency", "8", "--ttft", "1", "--tpot", "0.1", "--json")
        assert code == 0, output
        data = json.loads(output)
        assert data["schema_version"] >= 1
        for key in ("output_throughput_tok_s", "request_throughput_req_s", "slo_attainment"):
            assert key in data
        for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
            assert set(data[key]) >= {"mean", "p50", "p90", "p99"}
        assert data["slo_attainment"] == pytest.approx(1.0)

    def test_library_returns_the_same_model(self) -> None:
        result = planner.simulate("llama-3.1-8b", "1xh100", input_len=512, output_len=64, rate=5.0, requests=200)
        assert isinstance(result, planner.SimResult)
        assert result.num_requests == 200 and result.ttft_s.p99 >= result.ttft_s.p50 > 0

    def test_per_request_records(self, tmp_path: Path) -> None:
        path = tmp_path / "requests.csv"
        code, output = invoke(*BASE, "--rate", "5", "--out", str(path))
        assert code == 0, output
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == 200 and {"arrival_s", "first_token_s", "finish_s"} <= set(rows[0])

    def test_seeded_runs_repeat(self) -> None:
        first = planner.simulate("llama-3.1-8b", "1xh100", workload="sharegpt", rate=5.0, requests=200, seed=3)
        again = planner.simulate("llama-3.1-8b", "1xh100", workload="sharegpt", rate=5.0, requests=200, seed=3)
        assert first.model_dump_json() == again.model_dump_json()

    def test_a_shipped_trace_replays_its_first_requests(self) -> None:
        code, output = invoke("simulate", "--model", "llama-3.1-8b", "--gpus", "1xh100", "--trace", "azure-conv",
                              "--requests", "50", "--json")  # fmt: skip
        assert code == 0, output
        assert json.loads(output)["num_requests"] == 50

    @pytest.mark.parametrize(
        ("extra", "problem"),
        [
            (["--trace", "azure-conv", "--workload", "sharegpt"], "a trace carries its own request lengths"),
            (["--trace", "azure-conv", "--input-len", "100"], "a trace carries its own request lengths"),
            (["--batch-size", "8", "--requests", "50", "--workload", "sharegpt"], "a static batch is its 8 requests"),
            (["--trace", "no-such-trace"], "no trace file at no-such-trace"),
        ],
    )
    def test_flags_a_stream_would_ignore_are_refused(self, extra: list[str], problem: str) -> None:
        code, output = invoke("simulate", "--model", "llama-3.1-8b", "--gpus", "1xh100", *extra)
        assert code == 2 and problem in output, output

    def test_requests_longer_than_the_context_are_noted(self) -> None:
        """Llama-2-70B has a 4,096-token context; multi-turn ShareGPT runs to 8k."""
        code, output = invoke("simulate", "--model", "llama-2-70b", "--gpus", "8xL20", "--workload",
                              "sharegpt-multiturn", "--requests", "20")  # fmt: skip
        assert code == 0, output
        assert "longer than llama-2-70b's context of 4,096 tokens" in output and "NAME:4096" in output
        code, output = invoke(*BASE)
        assert code == 0 and "longer than" not in output and "TP 1 chosen" in output, output


class TestPlans:
    def test_simulates_a_recommended_plan(self, tmp_path: Path) -> None:
        simulations = simulate_recommended(tmp_path, [
            "--model", "llama-3.1-8b", "--gpus", "2xh100", "--input-len", "512", "--output-len", "64",
            "--ttft", "1", "--tpot", "0.1", "--strategy", "colocated", "--strategy", "chunked",
        ], 200)  # fmt: skip
        assert simulations and all(s["slo_attainment"] is not None for s in simulations)

    def test_simulates_a_disaggregated_plan_with_both_pools_together(self, tmp_path: Path) -> None:
        (simulation,) = simulate_recommended(tmp_path, [
            "--model", "llama-3.1-8b", "--gpus", "4xa100", "--workload", "longbench", "--ttft", "1.5",
            "--tpot", "0.05", "--strategy", "disaggregated",
        ], 200)  # fmt: skip
        assert [i["role"] for i in simulation["instances"]] == ["prefill", "decode"]
        assert simulation["scheduler"].startswith("disaggregated") and simulation["busy"]["mixed_s"] == 0.0
        assert simulation["slo_attainment"] is not None

    def test_a_csv_workload_is_simulated_from_its_file_whatever_its_name(self, tmp_path: Path) -> None:
        """A CSV named like a preset is still the CSV; a CSV changed since the plan was written is refused."""
        lengths = tmp_path / "azure-code.csv"
        lengths.write_text("input_len,output_len\n" + "".join(f"{300 + i},{20 + i % 7}\n" for i in range(256)))
        code, output = invoke("recommend", "--model", "llama-3.1-8b", "--gpus", "1xh100", "--workload",
                              str(lengths), "--strategy", "colocated", "--json")  # fmt: skip
        assert code == 0, output
        plan = json.loads(output)
        assert plan["workload_csv"]["path"] == str(lengths.resolve())
        ((_, result),) = simulate_plan(plan, requests=256)
        assert set(result.requests.input_len) <= set(range(300, 556))  # the CSV's requests, not the preset's
        lengths.write_text("input_len,output_len\n100,10\n")
        with pytest.raises(PlannerError, match="has changed since the plan was written"):
            simulate_plan(plan)
        lengths.unlink()
        with pytest.raises(PlannerError, match="the plan's workload CSV: no workload CSV at") as missing:
            simulate_plan(plan)
        assert missing.value.param == "plan"

    def test_a_plan_refuses_flags_it_would_ignore(self, tmp_path: Path) -> None:
        plan = tmp_path / "plan.json"
        plan.write_text("{}")
        code, output = invoke("simulate", "--plan", str(plan), "--rate", "5", "--tp", "2", "--dtype", "fp8")
        assert code == 2 and "a plan sets its layout, workload, load and SLOs: drop --tp, --dtype, --rate" in output
        with pytest.raises(PlannerError, match="requests"):
            simulate_plan({}, requests=0)

    def test_a_disaggregated_configuration_needs_a_plan(self) -> None:
        with pytest.raises(PlannerError, match="--plan"):
            planner.simulate("llama-3.1-8b", "2xh100", input_len=512, output_len=64, strategy="disaggregated")

    def test_every_registered_strategy_is_simulated(self) -> None:
        assert set(SIMULATED_STRATEGIES) == set(REGISTRY)

    def test_a_strategy_tdplan_does_not_know(self) -> None:
        plan = {"inputs": {"model": "llama-70b"}, "workload": "sharegpt",
                "plan": {"instances": [{"strategy": "mystery"}]}}  # fmt: skip
        with pytest.raises(PlannerError, match="strategy mystery, which tdplan does not know"):
            simulate_plan(plan)

    def test_not_a_plan(self, tmp_path: Path) -> None:
        path = tmp_path / "plan.json"
        path.write_text("[1, 2]")
        code, output = invoke("simulate", "--plan", str(path))
        assert code == 2 and "recommend --json" in output


class TestErrors:
    @pytest.mark.parametrize(
        ("extra", "fragment"),
        [
            (["--burstiness", "2"], "--burstiness"),
            (["--concurrency", "4", "--rate", "1"], "not concurrency and rate"),
            (["--strategy", "phase-resharding"], "needs its prefill layout"),
        ],
    )
    def test_one_line_and_exit_two(self, extra: list[str], fragment: str) -> None:
        code, output = invoke(*BASE, *extra)
        assert code == 2, output
        assert fragment in output and "Traceback" not in output

    def test_needs_a_model_or_a_plan(self) -> None:
        code, output = invoke("simulate", "--gpus", "1xh100")
        assert code == 2 and "--plan" in output


class TestPipelinePlans:
    def test_simulates_a_throttled_pipeline_plan_offline(self, tmp_path: Path) -> None:
        """A throughput plan is simulated offline, with the strategy's own scheduler."""
        (simulation,) = simulate_recommended(tmp_path, [
            "--model", "llama-3.1-8b", "--gpus", "2xl20", "--input-len", "512", "--output-len", "64",
            "--strategy", "throttled-pipeline",
        ], 300)  # fmt: skip
        assert simulation["scheduler"] == "throttled" and simulation["stream"].startswith("offline")

    def test_every_other_strategy_runs_its_scheduler(self) -> None:
        """Each strategy the simulator runs, by name, as `estimate` names a configuration."""
        schedulers = {}
        for strategy, gpus, pp in (
            ("temporal-pipeline", "2xl20", 2),
            ("macro-instance", "3xl20", 1),
            ("sm-partition", "1xh100", 1),
        ):
            result = planner.simulate(
                "llama-3.1-8b", gpus, tp=1, pp=pp, strategy=strategy, workload="sharegpt", rate=2.0, requests=100
            )
            schedulers[strategy] = result.scheduler
        assert schedulers["temporal-pipeline"] == "temporal"
        assert schedulers["macro-instance"] == "prefill-first"
        assert schedulers["sm-partition"].startswith("SM partition")


class TestProgress:
    def test_the_bar_appears_only_after_a_second(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Reports within the first second draw nothing; later ones start the bar and move it."""
        import io

        from rich.console import Console

        from planner.report import progress

        clock = iter([0.0, 0.5, 1.5, 2.0])
        monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
        console = Console(file=io.StringIO(), force_terminal=True)
        with progress.LazyProgress(console, "simulating requests") as report:
            report(10, 100)
            assert report.bar is None
            report(50, 100)
            assert report.bar is not None
            assert report.bar.tasks[0].completed == 50 and report.bar.tasks[0].total == 100

    def test_the_simulator_reports_finished_requests(self) -> None:
        """At most one report per 1% of the requests, and the last (runs that end many at once report once)."""
        seen: list[tuple[int, int]] = []
        planner.simulate("llama-3.1-8b", "1xh100", input_len=128, output_len=8, rate=20.0, requests=300,
                         progress=lambda done, total: seen.append((done, total)))  # fmt: skip
        done = [d for d, _ in seen]
        assert seen[-1] == (300, 300) and all(t == 300 for _, t in seen)
        assert done == sorted(done) and all(b - a >= 3 for a, b in itertools.pairwise(done[:-1])) and len(done) > 10
