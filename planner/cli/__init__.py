"""The `tdplan` command line: the only package that prints or exits. `app` is the typer application and `main`
its entry point; each command module registers its commands on `app` when imported here, in the order
`tdplan --help` lists them."""

from planner.cli import estimate, plans, simulate, catalog  # noqa: F401  # isort: skip
from planner.cli.app import app, main

__all__ = ["app", "main"]
