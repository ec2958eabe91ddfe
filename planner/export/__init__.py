"""`export_plan()`: the launch commands of a `tdplan recommend --json` plan for a real serving engine (vLLM,
SGLang or TensorRT-LLM): one command per engine process, the config files they read, and the router of a
disaggregated plan.

Strategies no stock engine runs (see `support.UNSUPPORTED`) get no command: the export says which research
system implements them, and with `fallback=True` emits the closest stock command, labelled with what it loses.

Adding an engine: write its `FlagTable` in `flags.py` (version and source included), a `build_<engine>` in
`engines.py` that takes every name from the table, register both (`TABLES`, `BUILDERS`), and pin the table in
tests/test_export.py.
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from planner.errors import PlannerError
from planner.export.engines import BUILDERS, Launch, Setting
from planner.export.flags import TABLES, FlagTable, flag_table
from planner.export.layout import PlanView, Process, processes, read_plan
from planner.export.support import UNSUPPORTED, fallback_scheduling, members, research_system, stock_scheduling
from planner.specs.catalog import Catalog, load_catalog

__all__ = ["TABLES", "Command", "ConfigFile", "Export", "FlagTable", "export_plan", "flag_table", "shell_script"]


class Command(BaseModel):
    """One command to run: an engine process (`instance` is its label) or the router."""

    model_config = ConfigDict(frozen=True)

    instance: str
    engine: str
    argv: list[str]
    env: dict[str, str]
    note: str
    fallback: bool = False


class ConfigFile(BaseModel):
    """A file the commands read, to write before running them."""

    model_config = ConfigDict(frozen=True)

    path: str
    content: str


class Export(BaseModel):
    """The commands of a plan for one engine, and what could not be exported."""

    model_config = ConfigDict(frozen=True)

    engine: str
    engine_name: str
    engine_version: str
    source: str
    model: str
    strategy: str
    commands: list[Command]
    files: list[ConfigFile]
    notes: list[str]
    unsupported: list[str]  # one statement per plan.instances group without a command


def export_plan(
    plan_json: Mapping[str, Any], engine: str, fallback: bool = False, catalog: Catalog | None = None
) -> Export:
    """The launch commands of `plan_json` (a `recommend --json` payload) for `engine` (vllm, sglang, trtllm).

    Raises PlannerError (param "plan") when the plan is not a plan, or when none of its instances can be
    exported (every one runs a strategy without engine support and `fallback` is off); param "engine" for an
    unknown engine. Some instances without support: `Export.unsupported` says which and why.
    """
    table = flag_table(engine)
    view = read_plan(plan_json)
    catalog = catalog or load_catalog()
    model, model_notes = checkpoint(view, catalog)
    procs = processes(view, catalog, {g: members(i) for g, i in enumerate(view.instances) if fallback})
    launches: list[Launch] = []
    unsupported: dict[int, str] = {}
    for p in procs:
        missing = UNSUPPORTED.get(p.instance.strategy)
        if missing is None:
            launches.append(Launch(p, stock_scheduling(p.instance)))
        elif fallback:
            launches.append(Launch(p, fallback_scheduling(p.instance), missing))
        else:
            unsupported[p.group] = (
                f"plan.instances[{p.group}] ({p.instance.count} x {p.instance.strategy}): no stock {table.name} "
                f"flag implements {missing.needs}; {research_system(missing.strategy)} does. Closest stock "
                f"setting (--fallback): {missing.fallback}, which loses {missing.loses}"
            )
    if not launches:
        strategies = sorted({view.instances[g].strategy for g in unsupported})
        runs = "; ".join(f"{s} ({research_system(s)} does)" for s in strategies)
        raise PlannerError(
            f"nothing to export: no stock {table.name} flag implements what the plan runs, {runs}: add --fallback "
            "for the closest stock commands, labelled with what they lose, or plan with --strategy colocated, "
            "chunked or disaggregated",
            "plan",
        )
    built = BUILDERS[table.engine](launches, Setting(model, view.dtype, view.kv_dtype))
    fallbacks = {launch.process.label for launch in launches if launch.fallback is not None}
    return Export(
        engine=table.engine,
        engine_name=table.name,
        engine_version=table.version,
        source=table.source,
        model=model,
        strategy=view.strategy,
        commands=[
            Command(instance=label, engine=table.engine, argv=argv, env=env, note=note, fallback=label in fallbacks)
            for label, argv, env, note in built.commands
        ],
        files=[ConfigFile(path=path, content=content) for path, content in built.files.items()],
        notes=model_notes + _layout_notes(procs) + built.notes,
        unsupported=list(unsupported.values()),
    )


def checkpoint(view: PlanView, catalog: Catalog) -> tuple[str, list[str]]:
    """The checkpoint the engines load: the catalog model's Hugging Face repo, or the folder of a config.json."""
    path = Path(view.model).expanduser()
    if view.model.endswith(".json"):
        return str(path.parent), [f"MODEL is the folder of {view.model}: the checkpoint must be beside it"]
    if path.is_dir():
        return str(path), []
    spec = catalog.model(view.model)
    if spec.hf_repo is None:
        return spec.id, [f"{spec.id} names no Hugging Face repo in the catalog: replace it with the checkpoint path"]
    repo, _, rest = spec.hf_repo.partition(" ")
    return repo, [f"{repo}: {rest.strip('() ')}"] if rest else []


def _layout_notes(procs: list[Process]) -> list[str]:
    notes = []
    hosts = sorted({p.host for p in procs})
    if hosts != ["localhost"]:
        notes.append(f"{', '.join(hosts)}: the addresses of the plan's nodes (per GPU kind, numbered from 0)")
    serving = [p for p in procs if p.role == "serve"]
    if len(serving) > 1:
        notes.append(f"{len(serving)} serving instances: spread requests over their ports with a load balancer")
    return notes


def shell_script(export: Export) -> str:
    """The export as a shell script: files as here-documents, each command after `#` lines with its note."""
    lines = [
        f"# tdplan export: {export.model}, {export.strategy} plan, for {export.engine_name} {export.engine_version}",
        *(_comment(f"note: {note}") for note in export.notes),
    ]
    for file in export.files:
        lines += ["", f"cat > {shlex.quote(file.path)} <<'EOF'", file.content.rstrip("\n"), "EOF"]
    for command in export.commands:
        env = [f"{k}={shlex.quote(v)}" for k, v in command.env.items()]
        words = [shlex.quote(a) for a in command.argv]
        head = " ".join(env + words[: _head_length(command.argv)])
        rest = _flag_groups(words[_head_length(command.argv) :])
        lines += ["", _comment(command.note), " \\\n    ".join([head, *rest])]
    for statement in export.unsupported:
        lines += ["", _comment(f"NOT EXPORTED: {statement}")]
    return "\n".join(lines)


def _comment(text: str) -> str:
    """Shell comment lines of at most 118 characters."""
    return "\n".join(textwrap.wrap(text, 116, initial_indent="# ", subsequent_indent="#   ", break_on_hyphens=False))


def _head_length(argv: list[str]) -> int:
    """Words before the first flag: the program and its positional arguments."""
    return next((i for i, a in enumerate(argv) if a.startswith("-") and a != "-m"), len(argv))


def _flag_groups(words: list[str]) -> list[str]:
    """Flags with their values, one group per line."""
    groups: list[list[str]] = []
    for word in words:
        if (word.startswith("-") and not word.lstrip("-").isdigit()) or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return [" ".join(g) for g in groups]
