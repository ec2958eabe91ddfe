"""What every `tdplan` command shares: the consoles it prints on, one error line with exit code 2 for bad
input, the JSON envelope, plain two-column tables, and the options several commands take. The command modules
use the consoles through this module (`common.out`), so that a caller can swap them (scripts/docs_examples.py
prints at a fixed width)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from planner import SCHEMA_VERSION
from planner.errors import PlannerError

# Tables need room; when output is not a terminal (pipes, CI logs) use a wide fixed width.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# Library parameter -> the flag that sets it, where the flag is not simply --param-with-dashes.
FLAGS = {"knobs": "--knob", "strategies": "--strategy"}


def flag(param: str) -> str:
    """The command-line flag of a library parameter: `input_len` -> `--input-len`."""
    return FLAGS.get(param, "--" + param.replace("_", "-"))


@contextmanager
def _errors(names: dict[str, str] | None = None) -> Iterator[None]:
    """Turn domain and validation errors into one line on stderr and exit code 2. `names` maps parameters to
    what this command calls them where that is not the flag (an argument: NAME)."""
    try:
        yield
    except PlannerError as e:
        text = f"{(names or {}).get(e.param, flag(e.param))}: {e.problem}" if e.param else str(e)
        err.print(f"[bold red]error:[/] {text}", markup=True, highlight=False, crop=False)
        raise typer.Exit(code=2) from None
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        err.print(f"[bold red]error:[/] {field}: {first['msg']}")
        raise typer.Exit(code=2) from None


def _fail(problem: str, param: str | None = None) -> NoReturn:
    """Raise the PlannerError `_errors` prints: for checks only the command line makes."""
    raise PlannerError(problem, param)


def _print_json(payload: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Every --json output: the schema version, the inputs it answers, then the payload."""
    out.print_json(json.dumps({"schema_version": SCHEMA_VERSION, "inputs": inputs, **payload}))


def _table(rows: list[tuple[str, str]], title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    return table


CatalogRoot = Annotated[
    Path | None,
    typer.Option("--catalog", help="Folder holding hardware/ and models/ (default: the shipped catalogs)."),
]


Workload_ = Annotated[
    str | None,
    typer.Option(
        "--workload",
        help="Request lengths: a preset (sharegpt, sharegpt-multiturn, arxiv-summarization, azure-conv, azure-code, longbench, humaneval), NAME:TOKENS to cap it, or a CSV of input_len,output_len.",
    ),
]


def _listing(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, no_wrap=index == 0)  # never cut the id: it is what the user types next
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _show(lookup: Callable[[], list[tuple[str, str]]], title: str) -> None:
    with _errors({"model": "NAME", "gpus": "NAME"}):
        rows = lookup()
    out.print(_table(rows, title))


# Options several commands take, each with one help text.
Model_ = Annotated[str, typer.Option(help="Model id or alias (llama-70b), or a Hugging Face config.json.")]
Tp_ = Annotated[int | None, typer.Option(help="Tensor-parallel size (default: smallest that fits).")]
Pp_ = Annotated[int | None, typer.Option(help="Pipeline-parallel size (default 1).")]
Rate_ = Annotated[float | None, typer.Option(help="Poisson arrivals at R requests/s.")]
InputLen_ = Annotated[int | None, typer.Option(help="Prompt tokens per request (fixed lengths).")]
OutputLen_ = Annotated[int | None, typer.Option(help="Generated tokens per request (fixed lengths).")]
Strategies_ = Annotated[list[str] | None, typer.Option(help="Only these strategies (repeatable).")]
GpusPerNode_ = Annotated[int | None, typer.Option(help="GPUs per node.")]
Network_ = Annotated[str | None, typer.Option(help="Network between nodes, e.g. 100gbe or 8xib-ndr.")]
Ttft_ = Annotated[float | None, typer.Option(help="TTFT SLO, seconds (default 1 when SLOs apply).")]
Tpot_ = Annotated[float | None, typer.Option(help="TPOT SLO, seconds (default 0.1 when SLOs apply).")]
Attainment_ = Annotated[float | None, typer.Option(help="Share of requests that must meet both SLOs (0.9).")]
Engine_ = Annotated[str | None, typer.Option(help="Engine profile (default: most evidence on the GPU).")]
KvDtype_ = Annotated[str | None, typer.Option(help="KV cache dtype (default: the engine's for the weights).")]
Objective_ = Annotated[
    str | None,
    typer.Option(help="goodput (default with --rate or SLOs), throughput (default without), min-gpus, min-cost."),
]
