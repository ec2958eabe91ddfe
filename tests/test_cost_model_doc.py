"""docs/cost-model.md quotes figures the cost model computes: every generated block of the page must be what
scripts/cost_breakdown.py prints today, number by number within the rounding shown, so the page cannot drift.
A failure means the code or data changed: refresh with `python scripts/cost_breakdown.py --write
docs/cost-model.md` and reread the prose around the block."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from generated_blocks import page_block

from planner.cost.compiled import compile_stage
from planner.cost.iteration import iteration_times_s
from planner.cost.ops import BatchShape
from planner.estimation import estimate
from planner.strategies import continuous

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cost-model.md"
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cost_breakdown", ROOT / "scripts" / "cost_breakdown.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cost_breakdown"] = module
    spec.loader.exec_module(module)
    return module


cb = _load_script()


def _numbers(text: str) -> tuple[list[str], list[str]]:
    """(the text with every number replaced by #, the numbers as written)."""
    return NUMBER.split(text), NUMBER.findall(text)


def _same_within_rounding(page: str, computed: str) -> None:
    page_words, page_numbers = _numbers(page)
    computed_words, computed_numbers = _numbers(computed)
    assert page_words == computed_words, "the block's text differs from what the script prints"
    assert len(page_numbers) == len(computed_numbers)
    for shown, fresh in zip(page_numbers, computed_numbers, strict=True):
        decimals = len(shown.partition(".")[2])
        unit = 10.0**-decimals
        a, b = float(shown.replace(",", "")), float(fresh.replace(",", ""))
        assert abs(a - b) <= unit * 1.001, f"page shows {shown}, the code gives {fresh}"


@pytest.mark.parametrize("name", sorted(cb.BLOCKS))
def test_page_block_matches_the_code(name: str) -> None:
    page = page_block(PAGE.read_text(), name)
    _same_within_rounding(page, cb.BLOCKS[name](None))


def test_every_block_is_on_the_page() -> None:
    text = PAGE.read_text()
    names = set(re.findall(r"<!-- BEGIN generated:(\w+) -->", text))
    assert names == set(cb.BLOCKS)


def test_decode_breakdown_adds_up_to_the_estimate() -> None:
    """The per-op reference costs plus the engine's host work are the decode step `tdplan estimate` prints,
    and the compiled closed form gives the same step."""
    d = cb.deployment(8)
    rows = cb.decode_rows(d)
    total = sum(r.total_s for r in rows)
    est = estimate(cb.MODEL, cb.GPUS, tp=8, dtype=cb.DTYPE, engine=cb.ENGINE, input_len=cb.INPUT_LEN,
                   output_len=cb.OUTPUT_LEN, batch_size=cb.BATCH)  # fmt: skip
    assert total == pytest.approx(est.decode_step_time_s, rel=1e-9)
    assert total == pytest.approx(continuous.decode_step(d, cb.BATCH, cb.MEAN_CONTEXT).time_s, rel=1e-9)
    shape = BatchShape.decode(cb.BATCH, cb.MEAN_CONTEXT).features()
    assert float(iteration_times_s(d, shape)[0]) == pytest.approx(total, rel=1e-9)
    # every op of the stage runs in a decode step except prefill attention; the last row is the host work
    assert set(compile_stage(d).names) - {r.name for r in rows[:-1]} == {"prefill_attention"}


def test_page_names_the_example_it_computes() -> None:
    """The command quoted above the tables is the configuration the script computes."""
    text = PAGE.read_text()
    assert (
        f"--model {cb.MODEL} --gpus {cb.GPUS} --tp 8 --dtype {cb.DTYPE} --engine {cb.ENGINE}" in text
        and f"--input-len {cb.INPUT_LEN} --output-len {cb.OUTPUT_LEN} --batch-size {cb.BATCH}" in text
    )
