"""The `tdplan` application: its command groups, one-line usage errors, --version, and the entry point."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from planner.cli.common import err, out


class _OneLineUsageErrors(TyperGroup):
    """Usage errors (an option typed wrong, an unknown flag, a missing argument) as one `error:` line naming
    the flag, exit code 2, like every other input error; typer would draw a boxed usage panel."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except Exception as e:
            message, exit_code = getattr(e, "format_message", None), getattr(e, "exit_code", None)
            if message is None or exit_code is None or type(e).__name__ == "NoArgsIsHelpError":
                if type(e).__name__ == "NoArgsIsHelpError":  # `tdplan` alone: the help, as typer prints it
                    return super().main(*args, **kwargs)
                raise
            err.print(f"[bold red]error:[/] {message()} (see --help)", highlight=False, crop=False)
            sys.exit(exit_code)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    help="tdplan: analytical performance model and deployment planner for LLM inference serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
hardware_app = typer.Typer(help="The GPU catalog.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalog.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")
app.add_typer(models_app, name="models")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out.print(f"tdplan {version('tdplan')}")
        except PackageNotFoundError:
            out.print("tdplan (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """tdplan: analytical performance model and deployment planner for LLM inference serving."""


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
