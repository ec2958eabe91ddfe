"""Workloads: fixed lengths, presets and CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.errors import PlannerError
from planner.specs.workload import PRESETS, Workload


class TestFixed:
    def test_one_request_shape(self) -> None:
        work = Workload.fixed(1024, 256)
        assert (work.mean_input_len, work.mean_output_len, work.max_request_tokens) == (1024, 256, 1280)
        assert work.is_fixed

    def test_mean_decode_context(self) -> None:
        """Output-weighted mean of input + output / 2: (100 + 10 / 2) for one request of 100 + 10 = 105."""
        assert Workload.fixed(100, 10).mean_decode_context == 105.0

    @pytest.mark.parametrize(("i", "o"), [(0, 10), (10, 0), (-5, 3)])
    def test_lengths_below_one_token_are_refused(self, i: int, o: int) -> None:
        with pytest.raises(PlannerError, match="_len: must be a whole number at least 1"):
            Workload.fixed(i, o)


class TestPresets:
    @pytest.mark.parametrize("name", sorted(PRESETS))
    def test_deterministic_and_within_bounds(self, name: str) -> None:
        first, second = Workload.preset(name), Workload.preset(name)
        assert first == second
        preset = PRESETS[name]
        assert preset.input.min_len <= min(first.input_lens) and max(first.input_lens) <= preset.input.max_len
        assert preset.output.min_len <= min(first.output_lens) and max(first.output_lens) <= preset.output.max_len
        # Clipping trims the tails, so the sample mean sits within 25% of the distribution's stated mean.
        assert first.mean_input_len == pytest.approx(preset.input.mean, rel=0.25)
        assert first.mean_output_len == pytest.approx(preset.output.mean, rel=0.25)

    def test_longbench_prompts_are_longer_than_sharegpt(self) -> None:
        assert Workload.preset("longbench").mean_input_len > 4 * Workload.preset("sharegpt").mean_input_len

    def test_unknown_preset_names_the_choices(self) -> None:
        with pytest.raises(PlannerError, match="sharegpt"):
            Workload.preset("chatbot-arena")


class TestCsv:
    def test_reads_rows(self, tmp_path: Path) -> None:
        path = tmp_path / "lengths.csv"
        path.write_text("input_len,output_len\n100,20\n300,60\n")
        work = Workload.parse(str(path))
        assert work.input_lens == (100, 300) and work.output_lens == (20, 60)
        assert work.mean_input_len == 200 and work.name == "lengths"

    @pytest.mark.parametrize(
        "text",
        ["input_len,output_len\n", "in,out\n1,2\n", "input_len,output_len\n10,x\n", "input_len,output_len\n0,5\n"],
    )
    def test_bad_files_are_refused(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "bad.csv"
        path.write_text(text)
        with pytest.raises(PlannerError):
            Workload.parse(str(path))

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(PlannerError, match=r"no workload CSV at .*absent\.csv"):
            Workload.parse(str(tmp_path / "absent.csv"))
