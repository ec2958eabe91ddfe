"""The user docs show what the tool prints today: every generated block matches a fresh run of its command,
and every `tdplan` command in a code block of those pages parses."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import typer.main
from generated_blocks import regions

from planner.cli import app

ROOT = Path(__file__).resolve().parents[1]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_examples", ROOT / "scripts" / "docs_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_examples"] = module
    spec.loader.exec_module(module)
    return module


gen = load_generator()


@pytest.fixture(scope="module")
def scratch() -> Iterator[None]:
    with gen.scratch_folder():
        yield


def marked_regions() -> list[tuple[str, str, str]]:
    """(page, NAME, text between the markers) for every marked region of the pages."""
    return [(page.name, name, body) for page in gen.PAGES for name, body in regions(page.read_text())]


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for every `tdplan ...` line in a code block of the pages, `$ ` prompts removed."""
    found = []
    for page in gen.PAGES:
        for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                if line.startswith("$ tdplan "):
                    found.append((page.name, line.removeprefix("$ ")))
                elif "&& tdplan " in line:
                    found.append((page.name, "tdplan " + line.split("&& tdplan ", 1)[1]))
    return found


def parse(argv: list[str]) -> None:
    """Parse `tdplan ARGV` down to its subcommand, as the command line would, without running it."""
    command = typer.main.get_command(app)
    name, parent, rest = "tdplan", None, argv
    while True:
        ctx = command.make_context(name, rest, parent=parent)
        if not hasattr(command, "resolve_command"):
            return
        sub, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        name, parent = sub or "", ctx


def test_every_name_has_a_region() -> None:
    """Each block, snippet and figure of the generator is shown somewhere, and every region has a generator."""
    names = {name for _, name, _ in marked_regions()}
    known = set(gen.BLOCKS) | set(gen.SNIPPETS) | set(gen.FIGURES)
    assert names <= known, names - known
    assert known <= names, known - names


@pytest.mark.parametrize(("page", "name", "body"), marked_regions(), ids=lambda v: v if "\n" not in v else "")
def test_generated_region_matches_the_tool(scratch: None, page: str, name: str, body: str) -> None:
    """Regenerate the region; `python scripts/docs_examples.py --write` fixes a mismatch."""
    assert body == gen.render(name), f"{page}: {name} is stale; run python scripts/docs_examples.py --write"


@pytest.mark.parametrize(("larger", "smaller"), gen.LARGER)
def test_comparison_in_prose_holds(scratch: None, larger: str, smaller: str) -> None:
    """The prose says, in words, that the first figure is the larger."""
    assert float(gen.figure_value(larger)) > float(gen.figure_value(smaller))


@pytest.mark.parametrize(("page", "command"), shown_commands())
def test_shown_command_parses(page: str, command: str) -> None:
    """Options exist and their values have the right types (a command is not run here)."""
    argv, _ = gen.split_pipe(command.split(" > ")[0])
    parse(argv[1:])


def test_shown_commands_are_found() -> None:
    """The scan above sees the commands (guards against a pattern that matches nothing)."""
    commands = [c for _, c in shown_commands()]
    assert len(commands) > 30
    assert any(c.startswith("tdplan calibrate --write") for c in commands)


def test_parse_rejects_bad_options() -> None:
    """The parse check catches an unknown flag and a value of the wrong type."""
    with pytest.raises(Exception, match="no-such-flag"):
        parse(shlex.split("estimate --model llama-70b --gpus 8xL20 --no-such-flag"))
    with pytest.raises(Exception, match="integer"):
        parse(shlex.split("estimate --model llama-70b --gpus 8xL20 --tp four"))
