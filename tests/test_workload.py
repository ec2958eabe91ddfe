"""Workloads: fixed lengths, presets and CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.errors import PlannerError
from planner.specs.workload import PRESET_SAMPLES, PRESETS, Workload, context_note


class TestFixed:
    def test_one_request_shape(self) -> None:
        work = Workload.fixed(1024, 256)
        assert (work.mean_input_len, work.mean_output_len, work.max_request_tokens) == (1024, 256, 1280)
        assert work.is_fixed

    def test_one_shape_is_drawn_at_the_sample_size(self) -> None:
        """Latency percentiles draw queue waits per request: one row would give every percentile the median."""
        work = Workload.fixed(1024, 256)
        assert len(work.input_lens) == PRESET_SAMPLES and set(work.output_lens) == {256}
        assert Workload(name="one", input_lens=(5,), output_lens=(7,)).input_lens == (5,) * PRESET_SAMPLES

    def test_mean_decode_context(self) -> None:
        """Output-weighted mean of input + output / 2: (100 + 10 / 2) for one request of 100 + 10 = 105."""
        assert Workload.fixed(100, 10).mean_decode_context == 105.0

    @pytest.mark.parametrize(("i", "o"), [(0, 10), (10, 0), (-5, 3)])
    def test_lengths_below_one_token_are_refused(self, i: int, o: int) -> None:
        with pytest.raises(PlannerError, match="_len: must be a whole number at least 1"):
            Workload.fixed(i, o)


class TestPresets:
    @pytest.mark.parametrize("name", sorted(PRESETS))
    def test_deterministic(self, name: str) -> None:
        """PRESET_SAMPLES requests; humaneval's 164 problems are fewer, so each is repeated twice (328)."""
        assert Workload.preset(name) == Workload.preset(name)
        assert len(Workload.preset(name).input_lens) == (328 if name == "humaneval" else PRESET_SAMPLES)

    @pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if p.fitted_to is None))
    def test_recalled_shapes_within_bounds(self, name: str) -> None:
        first = Workload.preset(name)
        preset = PRESETS[name]
        assert preset.input is not None and preset.output is not None
        assert preset.input.min_len <= min(first.input_lens) and max(first.input_lens) <= preset.input.max_len
        assert preset.output.min_len <= min(first.output_lens) and max(first.output_lens) <= preset.output.max_len
        # Clipping trims the tails, so the sample mean sits within 25% of the distribution's stated mean.
        assert first.mean_input_len == pytest.approx(preset.input.mean, rel=0.25)
        assert first.mean_output_len == pytest.approx(preset.output.mean, rel=0.25)

    # Means over every request of the sources (scripts/build_workload_data.py prints them): the 256-request
    # sample keeps them within a few percent, and the heavy-tailed code outputs (median 13) within 10%.
    @pytest.mark.parametrize(
        ("name", "input_mean", "output_mean"),
        [
            ("sharegpt-multiturn", 2340, 439),
            ("arxiv-summarization", 2588, 291),
            ("azure-conv", 1155, 211),
            ("azure-code", 2048, 28),
            ("sharegpt", 248, 233),
            ("humaneval", 157, 66),
        ],
    )
    def test_fitted_samples_keep_the_source_means(self, name: str, input_mean: float, output_mean: float) -> None:
        work = Workload.preset(name)
        assert PRESETS[name].fitted_to is not None
        assert work.mean_input_len == pytest.approx(input_mean, rel=0.03)
        assert work.mean_output_len == pytest.approx(output_mean, rel=0.10)

    @pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if p.fitted_to is not None))
    def test_fitted_samples_are_real_pairs(self, name: str) -> None:
        inputs, outputs = PRESETS[name].pairs()
        shipped = set(zip(inputs.tolist(), outputs.tolist(), strict=True))
        work = Workload.preset(name)
        assert set(zip(work.input_lens, work.output_lens, strict=True)) <= shipped

    def test_multiturn_prompts_are_much_longer_than_first_turns(self) -> None:
        assert Workload.preset("sharegpt-multiturn").mean_input_len > 5 * Workload.preset("sharegpt").mean_input_len

    def test_longbench_prompts_are_longer_than_sharegpt(self) -> None:
        assert Workload.preset("longbench").mean_input_len > 4 * Workload.preset("sharegpt").mean_input_len

    def test_unknown_preset_names_the_choices(self) -> None:
        with pytest.raises(PlannerError, match="sharegpt"):
            Workload.preset("chatbot-arena")


class TestCap:
    @pytest.mark.parametrize("cap", [1024, 2048, 4096])
    def test_a_cap_keeps_only_requests_that_fit(self, cap: int) -> None:
        work = Workload.parse(f"sharegpt-multiturn:{cap}")
        assert work.name == f"sharegpt-multiturn:{cap}" and work.max_request_tokens <= cap
        assert len(work.input_lens) == PRESET_SAMPLES
        assert work.mean_input_len < Workload.preset("sharegpt-multiturn").mean_input_len

    def test_a_cap_above_every_request_changes_nothing(self) -> None:
        capped = Workload.parse("humaneval:100000")
        plain = Workload.preset("humaneval")
        assert (capped.input_lens, capped.output_lens) == (plain.input_lens, plain.output_lens)

    def test_a_cap_on_a_recalled_shape_keeps_fewer_requests(self) -> None:
        work = Workload.parse("longbench:2048")
        distinct = set(zip(work.input_lens, work.output_lens, strict=True))
        assert 0 < len(distinct) < PRESET_SAMPLES <= len(work.input_lens) and work.max_request_tokens <= 2048

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("azure-code:5", r"keeps no request: its shortest is \d+ tokens in all; give a cap of at least"),
            ("sharegpt-multiturn:0", r"must be a whole number of tokens, e.g. sharegpt-multiturn:4096"),
            ("sharegpt-multiturn:2k", r"must be a whole number of tokens"),
        ],
    )
    def test_bad_caps_are_refused(self, text: str, message: str) -> None:
        with pytest.raises(PlannerError, match=message):
            Workload.parse(text)


class TestContextNote:
    """The one note estimate, simulate, recommend and compare give when requests are longer than the context."""

    def test_fixed_lengths_name_the_request(self) -> None:
        note = context_note("llama-2-70b", 4096, Workload.fixed(4000, 500))
        assert note == (
            "input + output = 4,500 tokens is longer than llama-2-70b's context of 4,096 tokens: "
            "engines refuse such requests"
        )

    def test_varied_lengths_give_the_share_and_the_cap(self) -> None:
        """Requests of 3 + 1 and 5 + 2 tokens against a context of 5: one of the two (50%) is longer."""
        note = context_note("m", 5, Workload(name="two", input_lens=(3, 5), output_lens=(1, 2)))
        assert note == (
            "50% of the workload's requests are longer than m's context of 5 tokens (the longest 7): "
            "engines refuse them; a preset capped as NAME:5 keeps those that fit"
        )

    def test_nothing_to_say_when_every_request_fits(self) -> None:
        assert context_note("llama-2-70b", 4096, Workload.fixed(4000, 96)) is None


class TestCsv:
    def test_reads_rows(self, tmp_path: Path) -> None:
        path = tmp_path / "lengths.csv"
        path.write_text("input_len,output_len\n100,20\n300,60\n")
        work = Workload.parse(str(path))
        assert set(zip(work.input_lens, work.output_lens, strict=True)) == {(100, 20), (300, 60)}
        assert work.mean_input_len == 200 and work.name == "lengths"

    def test_short_files_are_repeated_whole_to_the_sample_size(self, tmp_path: Path) -> None:
        """Three rows, each repeated ceil(256 / 3) = 86 times: 258 requests, the same means."""
        path = tmp_path / "three.csv"
        path.write_text("input_len,output_len\n100,10\n200,20\n600,30\n")
        work = Workload.parse(str(path))
        assert len(work.input_lens) == 258 and work.input_lens.count(600) == 86
        assert (work.mean_input_len, work.mean_output_len) == (300, 20)

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
