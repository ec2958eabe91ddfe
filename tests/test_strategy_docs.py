"""docs/strategies.md and docs/strategies/*.md quote figures the strategies compute: every generated block of
the pages must be exactly what scripts/strategy_docs.py renders today, so the pages cannot drift. A failure means
the code or data changed: refresh with `python scripts/strategy_docs.py --write` and reread the prose around the
block (the verdicts in the seed-results tables may have changed)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from generated_blocks import page_block

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / "strategies.md", *sorted((ROOT / "docs" / "strategies").glob("*.md"))]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("strategy_docs", ROOT / "scripts" / "strategy_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["strategy_docs"] = module
    spec.loader.exec_module(module)
    return module


sd = _load_script()


@pytest.mark.parametrize("name", sorted(set(sd.BLOCKS) - sd.SLOW))
def test_page_block_matches_the_code(name: str) -> None:
    page, render = sd.BLOCKS[name]
    assert page_block((sd.DOCS / page).read_text(), name) == render()


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_block_on_the_page_is_generated(path: Path) -> None:
    page = str(path.relative_to(sd.DOCS))
    on_page = re.findall(r"<!-- BEGIN generated:(\w+) -->", path.read_text())
    assert sorted(on_page) == sorted(name for name, (where, _) in sd.BLOCKS.items() if where == page)


def test_every_seed_row_names_a_test_and_a_verdict() -> None:
    rows = sd.seed_rows()
    assert all(row.test.startswith("`test_strategy_") or row.test == "same test" for row in rows)
    assert {row.reproduced for row in rows} <= {"yes", "direction only", "no"}


@pytest.mark.parametrize(
    ("ratio", "low", "high", "expected"),
    [
        (2.0, 2.6, 2.6, "direction only"),  # 2.0 < 0.8 x 2.6 = 2.08
        (2.1, 2.6, 2.6, "yes"),
        (3.3, 2.6, 2.6, "direction only"),  # above 1.25 x 2.6 = 3.25
        (0.75, 4.48, 7.4, "no"),
    ],
)
def test_verdict(ratio: float, low: float, high: float, expected: str) -> None:
    assert sd.verdict(ratio, low, high) == expected
