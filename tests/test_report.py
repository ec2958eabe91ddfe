"""`tdplan report`: sweep parsing, the report's numbers, the HTML page and its Markdown twin, and the command.

One small report (Llama-3.1-8B on one L4, two strategies) is built once per module and shared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner.cli import app
from planner.errors import PlannerError
from planner.report.breakdown import PARTS, decode_batch
from planner.report.capacity import (
    CapacityReport,
    ReportSpec,
    Scenario,
    gpu_kinds,
    parse_rates,
    recommend_scenario,
    run,
    scenarios,
)
from planner.report.curves import pareto
from planner.report.files import HTML_NAME, MARKDOWN_NAME, report_files
from planner.search.plan import PlannedInstance

FAST = ("colocated", "chunked")
SECTIONS = ("recommendation", "strategies", "capacity", "memory", "iteration", "assumptions")
PLOTS = ("frontier-l4", "goodput-l4", "gpus-needed", "cost", "memory", "iteration")


def spec(**overrides: object) -> ReportSpec:
    args: dict[str, object] = {
        "model": "llama-3.1-8b",
        "fleets": ("1xL4",),
        "input_len": 512,
        "output_len": 128,
        "strategies": FAST,
        "prices": (("l4", 0.8),),
    }
    args.update(overrides)
    return ReportSpec.model_validate(args)


@pytest.fixture(scope="module")
def report() -> CapacityReport:
    return run(spec(), workers=1)


@pytest.fixture(scope="module")
def files(report: CapacityReport) -> dict[str, str]:
    return report_files(report)


class TestSweepSyntax:
    def test_rates_from_commas_and_repeats_in_order_once_each(self) -> None:
        assert parse_rates(["1,2", "5", "2"]) == (1.0, 2.0, 5.0)
        assert parse_rates(None) == ()

    @pytest.mark.parametrize("bad", ["fast", "-1", "1,,2"])
    def test_unreadable_or_negative_rate(self, bad: str) -> None:
        with pytest.raises(PlannerError) as e:
            parse_rates([bad])
        assert e.value.param == "rate"

    def test_every_fleet_at_every_rate(self) -> None:
        found = scenarios(spec(fleets=("1xL4", "2xL4"), rates=(1.0, 2.0)))
        assert [(s.fleet, s.rate_req_s) for s in found] == [("1xL4", 1.0), ("1xL4", 2.0), ("2xL4", 1.0), ("2xL4", 2.0)]

    def test_a_comma_in_a_fleet_is_a_mixed_fleet_not_a_sweep(self) -> None:
        assert [s.fleet for s in scenarios(spec(fleets=("8xL20,8xA100",)))] == ["8xL20,8xA100"]

    def test_gpu_kinds_take_the_largest_count_of_each(self) -> None:
        assert gpu_kinds(spec(fleets=("8xL20", "16xL20", "8xL20,8xA100"))) == [("L20", 16), ("A100", 8)]

    def test_bad_fleet(self) -> None:
        with pytest.raises(PlannerError):
            scenarios(spec(fleets=("eightxL20",)))


class TestNumbers:
    def test_pareto_keeps_points_nothing_beats(self) -> None:
        """(10, 5) is beaten by (20, 4): more throughput and lower latency; the rest trade one for the other."""
        assert pareto([(10, 5), (20, 4), (30, 6), (5, 1)]) == [(5, 1), (20, 4), (30, 6)]

    def test_decode_batch_by_littles_law(self) -> None:
        """2 req/s x 100 output tokens x 0.05 s per token = 10 sequences decoding; PP 2 splits them into
        micro-batches of 5; a cap of 4 caps it."""
        instance = PlannedInstance(
            strategy="colocated", role="serve", gpu="l4", tp=1, pp=2, count=1, gpus=2, knobs={}, nodes=[0],
            capacity_req_s=3.0, slo_rate_req_s=3.0, planned_rate_req_s=2.0, memory_gib={},
        )  # fmt: skip
        assert decode_batch(instance, 0.05, 100, 256) == pytest.approx(5.0)
        assert decode_batch(instance, 0.05, 100, 4) == 4.0
        assert decode_batch(instance, None, 100, 64) == 64.0

    def test_report_holds_a_plan_curves_and_a_breakdown(self, report: CapacityReport) -> None:
        primary = report.primary
        assert primary.recommendation is not None and primary.breakdown is not None
        (curves,) = report.curves
        assert curves.gpu == "l4" and curves.frontier and curves.gpus_needed and curves.usd_per_mtok
        gpus = [g for _, g in curves.gpus_needed]
        assert gpus == sorted(gpus), "more traffic never needs fewer GPUs"
        for phase in (primary.breakdown.prefill, primary.breakdown.decode):
            assert set(phase.seconds) == set(PARTS) and phase.total_s > 0

    def test_an_infeasible_scenario_is_a_finding(self) -> None:
        result = recommend_scenario(spec(model="llama-3.1-70b"), Scenario(fleet="1xL4", rate_req_s=None))
        assert result.recommendation is None and result.error

    def test_nothing_feasible_anywhere_is_an_error(self) -> None:
        with pytest.raises(PlannerError, match="no scenario"):
            run(spec(model="llama-3.1-70b"), workers=1)

    def test_sweep_in_two_processes_keeps_scenario_order(self) -> None:
        calls: list[tuple[int, int]] = []
        sweep = spec(rates=(0.5, 1.0), strategies=("colocated",))
        result = run(sweep, workers=2, progress=lambda done, total: calls.append((done, total)))
        assert [s.scenario.rate_req_s for s in result.scenarios] == [0.5, 1.0]
        assert calls[-1] == (3, 3) and len(calls) == 3
        page = report_files(result)[HTML_NAME]
        assert 'id="sweep"' in page and "1xL4 @ 0.5 req/s" in page


class TestPage:
    def test_every_section_and_plot(self, files: dict[str, str]) -> None:
        page = files[HTML_NAME]
        for section in SECTIONS:
            assert f'<section id="{section}">' in page
        for plot in PLOTS:
            assert re.search(rf'<figure id="plot-{plot}"[^>]*><svg', page), plot

    def test_self_contained(self, files: dict[str, str]) -> None:
        page = files[HTML_NAME]
        assert "<script" not in page and "<link" not in page and "<img" not in page
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
        assert not re.search(r"url\((?!#)", page) and "@import" not in page  # only references within the page

    def test_ids_are_unique_across_inlined_plots(self, files: dict[str, str]) -> None:
        ids = re.findall(r'\sid="([^"]+)"', files[HTML_NAME])
        assert len(ids) == len(set(ids))

    def test_assumptions_and_expected_error(self, files: dict[str, str]) -> None:
        page = files[HTML_NAME]
        for text in ("kernel constants", "engine profile", "expected error of the recommendation", "workload"):
            assert text in page

    def test_markdown_twin_has_the_sections_and_links_every_plot(self, files: dict[str, str]) -> None:
        md = files[MARKDOWN_NAME]
        for section in SECTIONS:
            assert f'<a id="{section}"></a>' in md
        for plot in PLOTS:
            path = f"plots/{plot}.svg"
            assert f"]({path})" in md and files[path].startswith("<svg")

    def test_same_numbers_same_files(self, report: CapacityReport, files: dict[str, str]) -> None:
        assert report_files(report) == files


class TestCommand:
    def test_writes_the_files_and_prints_their_paths(self, tmp_path: Path) -> None:
        out = tmp_path / "r"
        args = ["report", "--model", "llama-3.1-8b", "--gpus", "1xL4", "--input-len", "512", "--output-len", "128",
                "--strategy", "colocated", "--workers", "1", "--out", str(out)]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert (out / "report.html").is_file() and (out / "report.md").is_file()
        assert (out / "plots" / "memory.svg").is_file()
        assert str(out / "report.html") in result.output

    @pytest.mark.parametrize(
        ("extra", "flag"),
        [(["--rate", "x"], "--rate"), (["--gpus", "0xL4"], "--gpus"), (["--price", "L4"], "--prices")],
    )
    def test_bad_input_is_one_line(self, tmp_path: Path, extra: list[str], flag: str) -> None:
        args = ["report", "--model", "llama-3.1-8b", "--gpus", "1xL4", "--out", str(tmp_path), *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and flag in result.output

    @pytest.mark.parametrize(
        ("extra", "says"),
        [
            (["--model", "llama-99b"], "unknown model"),
            (["--strategy", "fastest"], "--strategy"),
            (["--ttft", "-1"], "--ttft"),
        ],
    )
    def test_shared_inputs_are_checked_before_any_scenario_runs(
        self, tmp_path: Path, extra: list[str], says: str
    ) -> None:
        args = ["report", "--model", "llama-3.1-8b", "--gpus", "1xL4", "--out", str(tmp_path), *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and says in result.output, result.output
        assert not (tmp_path / "report.html").exists()

    def test_out_must_be_a_folder(self, tmp_path: Path) -> None:
        target = tmp_path / "file"
        target.write_text("")
        args = ["report", "--model", "llama-3.1-8b", "--gpus", "1xL4", "--out", str(target)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "--out" in result.output
