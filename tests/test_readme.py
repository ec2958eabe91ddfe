"""The README's figures are the ones the tool prints today: its accuracy table against `tdplan validate`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from planner.specs.catalog import load_catalog
from planner.validation.validate import validate_all

README = Path(__file__).resolve().parents[1] / "README.md"


def accuracy_rows() -> list[list[str]]:
    text = README.read_text()
    block = text.split("<!-- accuracy-table")[1].split("<!-- end accuracy-table -->")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines() if line.startswith("| ")]
    return rows[1:]  # the header


def test_readme_accuracy_table_matches_validate() -> None:
    """Rows, fitted flag, held-out median |error| and bias per metric, to the printed 0.1 percentage point."""
    by_metric = validate_all(load_catalog()).by_metric()
    rows = accuracy_rows()
    assert len(rows) == 5
    for _, metric, count, fitted, error, bias in rows:
        _, held_out, was_fitted = by_metric[metric]
        assert int(count) == held_out.rows, metric
        assert (fitted == "yes") == was_fitted, metric
        assert float(error.rstrip("%")) == pytest.approx(round(held_out.median_abs_pct, 1), abs=0.051), metric
        assert float(bias.rstrip("%")) == pytest.approx(round(held_out.bias_pct, 1), abs=0.051), metric


def test_readme_commands_are_real_commands() -> None:
    """Every `tdplan SUBCOMMAND` the README names exists."""
    from planner.cli import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups if g.name}
    for sub in set(re.findall(r"`tdplan ([a-z]+)", README.read_text())):
        assert sub in names, sub
