"""docs/simulator.md shows what the bench scripts print today (scripts/sim_docs.py writes the blocks)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from generated_blocks import page_block

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sim_docs", ROOT / "scripts" / "sim_docs.py")
assert spec is not None and spec.loader is not None
sim_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sim_docs)


@pytest.mark.parametrize("name", ["example", "vs-analytic"])
def test_page_block_is_what_the_script_prints(name: str) -> None:
    page = (ROOT / "docs" / "simulator.md").read_text()
    assert page_block(page, name) == sim_docs.block(name), "run python scripts/sim_docs.py --write"
