"""`tdplan compare`, `recommend`, `report` and `export`: the planner's commands and what is done with a plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from planner.cli import common
from planner.cli.app import app
from planner.cli.common import (
    Attainment_,
    CatalogRoot,
    Engine_,
    GpusPerNode_,
    InputLen_,
    KvDtype_,
    Model_,
    Network_,
    Objective_,
    OutputLen_,
    Strategies_,
    Tpot_,
    Ttft_,
    Workload_,
    _errors,
    _fail,
    _listing,
    _print_json,
    _table,
)


@app.command()
def compare(
    model: Annotated[str, typer.Option(help="Model id or alias, or a Hugging Face config.json.")],
    gpus: Annotated[str, typer.Option(help="GPU count and type, e.g. 8xL20.")],
    workload: Workload_ = None,
    input_len: InputLen_ = None,
    output_len: OutputLen_ = None,
    rate: Annotated[
        float | None,
        typer.Option(help="Poisson arrival rate for the latency figures (default: each config's goodput rate)."),
    ] = None,
    ttft: Annotated[float | None, typer.Option(help="TTFT SLO, seconds (default 1).")] = None,
    tpot: Annotated[float | None, typer.Option(help="TPOT SLO, seconds (default 0.1).")] = None,
    attainment: Annotated[float, typer.Option(help="Share of requests that must meet both SLOs.")] = 0.9,
    strategy: Strategies_ = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every configuration evaluated.")] = False,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4.")] = "bf16",
    kv_dtype: KvDtype_ = None,
    engine: Annotated[str | None, typer.Option(help="Calibration profile (default: most evidence).")] = None,
    network: Annotated[str | None, typer.Option(help="Network between nodes, e.g. 100gbe.")] = None,
    gpus_per_node: GpusPerNode_ = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {configs, best} as JSON.")] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Every serving strategy side by side on the same GPUs, each at its best plan (the planner's integer program
    with one strategy allowed at a time)."""
    from planner.comparison import compare as run_compare
    from planner.report.plan import COMPARISON_HEADER, CONFIG_HEADER, comparison_rows, config_rows
    from planner.specs.catalog import load_catalog

    with _errors(), common.err.status("comparing strategies"):
        result = run_compare(
            model,
            gpus,
            workload,
            input_len,
            output_len,
            rate,
            ttft,
            tpot,
            attainment,
            strategy,
            dtype=dtype,
            kv_dtype=kv_dtype,
            engine=engine,
            network=network,
            gpus_per_node=gpus_per_node,
            catalog=load_catalog(catalog),
        )
    if as_json:
        payload = {
            "per_strategy": [c.model_dump(mode="json") for c in result.per_strategy],
            "best": result.best.model_dump(mode="json"),
            "configs": [c.model_dump(mode="json") for c in result.configs],
            "reason": result.reason,
            "notes": result.notes,
            "slo": result.slo.model_dump(mode="json") if result.slo else None,
            "objective": result.objective,
            "workload": result.workload,
            "engine": result.engine,
        }
        inputs = {
            "model": result.model,
            "gpu": result.gpu,
            "num_gpus": result.num_gpus,
            "engine": result.engine,
            "workload": result.workload,
            "dtype": dtype,
            "kv_dtype": kv_dtype,
            "network": network,
        }
        _print_json(payload, inputs)
        return
    slo = (
        f"; SLO TTFT {result.slo.ttft_s:g} s, TPOT {result.slo.tpot_s:g} s at {result.slo.attainment:.0%}"
        if result.slo
        else ""
    )
    title = (
        f"tdplan compare: {result.model} on {result.num_gpus} x {result.gpu}, workload {result.workload}, "
        f"engine {result.engine}, objective {result.objective}{slo}"
    )
    _listing(title, COMPARISON_HEADER, comparison_rows(result))
    if show_all:
        _listing("every instance type evaluated (per instance)", CONFIG_HEADER, config_rows(result))
    common.out.print(f"why: {result.reason}")
    for note in result.notes:
        common.out.print(f"note: {note}")


@app.command()
def recommend(
    model: Model_,
    gpus: Annotated[str, typer.Option(help="GPUs: COUNTxGPU, several kinds separated by commas (8xL20,8xA100).")],
    network: Network_ = None,
    input_len: InputLen_ = None,
    output_len: OutputLen_ = None,
    workload: Workload_ = None,
    rate: Annotated[float | None, typer.Option(help="Target request rate, requests/s (Poisson).")] = None,
    ttft: Ttft_ = None,
    tpot: Tpot_ = None,
    attainment: Attainment_ = None,
    objective: Objective_ = None,
    price: Annotated[list[str] | None, typer.Option(help="GPU price GPU=USD_PER_HOUR (repeatable).")] = None,
    strategy: Strategies_ = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4.")] = "bf16",
    kv_dtype: KvDtype_ = None,
    engine: Engine_ = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Simulate the plans the simulator runs; re-rank when they disagree.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan as JSON (what simulate and export read).")
    ] = False,
    catalog: CatalogRoot = None,
) -> None:
    """The best deployment of a model on the GPUs given: strategy, layout, instance counts and knobs, with
    predicted throughput, goodput and latencies, and the best plan of every other strategy beside it."""
    from planner.recommendation import plan_payload
    from planner.recommendation import recommend as run_recommend
    from planner.report.plan import (
        ALTERNATIVE_HEADER,
        INSTANCE_HEADER,
        VERIFY_HEADER,
        alternative_rows,
        instance_rows,
        predicted_rows,
        verification_rows,
    )
    from planner.specs.catalog import load_catalog

    with _errors(), common.err.status("planning"):
        rec = run_recommend(
            model,
            gpus,
            workload,
            input_len,
            output_len,
            rate,
            ttft,
            tpot,
            attainment,
            objective,
            price,
            strategy,
            verify=verify,
            alternative_plans=False,  # the tables show each alternative's summary, not its predicted latencies
            dtype=dtype,
            kv_dtype=kv_dtype,
            engine=engine,
            network=network,
            catalog=load_catalog(catalog),
        )
    if as_json:
        inputs = {
            "model": rec.model,
            "gpus": gpus,
            "network": network,
            "workload": rec.workload,
            "engine": rec.engine,
            "dtype": dtype,
            "kv_dtype": kv_dtype,
            "rate": rate,
            "objective": rec.plan.objective,
        }
        _print_json(plan_payload(rec), inputs)
        return
    _listing(f"tdplan recommend: {model} on {gpus}: {rec.plan.strategy}", INSTANCE_HEADER, instance_rows(rec))
    common.out.print(_table(predicted_rows(rec), "predicted"))
    if rec.alternatives:
        _listing("the best plan of every other strategy", ALTERNATIVE_HEADER, alternative_rows(rec))
    if rec.verification:
        _listing("simulated at the planned load (--verify)", VERIFY_HEADER, verification_rows(rec))
    common.out.print(rec.reason)
    for note in rec.notes:
        common.out.print(f"note: {note}")


@app.command()
def report(
    model: Model_,
    gpus: Annotated[
        list[str],
        typer.Option(
            help="GPUs of one sweep point: COUNTxGPU, a mixed fleet with commas (8xL20,8xA100). Repeat for a sweep: --gpus 8xL20 --gpus 16xL20."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.html, report.md and plots/ (created).")],
    rate: Annotated[
        list[str] | None,
        typer.Option(
            help="Target request rates, requests/s: comma-separated or repeated (1,2,5,10); each is a sweep point."
        ),
    ] = None,
    network: Network_ = None,
    input_len: InputLen_ = None,
    output_len: OutputLen_ = None,
    workload: Workload_ = None,
    ttft: Ttft_ = None,
    tpot: Tpot_ = None,
    attainment: Attainment_ = None,
    objective: Objective_ = None,
    price: Annotated[
        list[str] | None, typer.Option(help="GPU price GPU=USD_PER_HOUR (repeatable); adds the cost plot.")
    ] = None,
    strategy: Strategies_ = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4.")] = "bf16",
    kv_dtype: KvDtype_ = None,
    engine: Engine_ = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Processes that run the scenarios in parallel.")] = 2,
    catalog: CatalogRoot = None,
) -> None:
    """A capacity-planning report: the recommendation and why, every strategy side by side, the assumptions and
    expected error, and plots (throughput-latency frontier, goodput against GPUs, GPUs needed against rate, cost
    per million tokens, memory per GPU, where an iteration's time goes), as self-contained HTML and Markdown."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from planner.recommendation import parse_prices
    from planner.report.capacity import ReportSpec, parse_rates, run, tasks
    from planner.report.files import report_files
    from planner.specs.catalog import load_catalog

    with _errors():
        loaded = load_catalog(catalog)
        spec = ReportSpec(
            model=model, fleets=tuple(gpus), rates=parse_rates(rate), workload=workload, input_len=input_len,
            output_len=output_len, ttft=ttft, tpot=tpot, attainment=attainment, objective=objective,
            prices=tuple(parse_prices(price, loaded).items()), strategies=tuple(strategy or ()), dtype=dtype, kv_dtype=kv_dtype, engine=engine,
            network=network, catalog_root=str(catalog) if catalog else None,
        )  # fmt: skip
        if out_dir.exists() and not out_dir.is_dir():
            _fail(f"{out_dir} is a file: give a folder", "out")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=common.err, transient=True) as bar:
            job = bar.add_task("scenarios", total=len(tasks(spec)))
            result = run(spec, workers, lambda done, total: bar.update(job, completed=done))
        files = report_files(result, loaded)
    for name, text in files.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    failed = [s for s in result.scenarios if s.recommendation is None]
    if failed:
        common.err.print(
            f"note: {len(failed)} of {len(result.scenarios)} scenarios have no feasible plan (see the sweep table)"
        )
    common.out.print(f"wrote {out_dir / 'report.html'}")
    common.out.print(f"wrote {out_dir / 'report.md'} (plots in {out_dir / 'plots'})")


@app.command()
def export(
    plan: Annotated[Path, typer.Option(help="A plan from `tdplan recommend --json`.")],
    engine: Annotated[str, typer.Option(help="Serving engine: vllm, sglang or trtllm.")],
    fallback: Annotated[
        bool, typer.Option("--fallback", help="Strategies no engine runs: emit the closest stock command.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the commands as JSON.")] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Print the launch commands of a plan's instances for a serving engine, with that engine's flag names,
    one per instance (plus the router of a disaggregated plan), as a shell script.

    Exit code 0 when every instance has a command; 1 when some run a strategy no stock engine implements (their
    statements follow the commands); 2 when none can be exported, or on bad input.
    """
    from planner.export import export_plan, shell_script
    from planner.simulation import load_plan
    from planner.specs.catalog import load_catalog

    with _errors():
        result = export_plan(load_plan(plan), engine, fallback=fallback, catalog=load_catalog(catalog))
    if as_json:
        payload = result.model_dump(mode="json")
        _print_json(payload, {"plan": str(plan), "engine": result.engine, "fallback": fallback})
    else:
        common.out.print(shell_script(result), markup=False, highlight=False)
    if result.unsupported:
        raise typer.Exit(code=1)
