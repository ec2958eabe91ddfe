"""`tdplan simulate`: the discrete-event simulator on a configuration or on a plan from `recommend --json`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from planner.cli import common
from planner.cli.app import app
from planner.cli.common import (
    CatalogRoot,
    GpusPerNode_,
    InputLen_,
    OutputLen_,
    Pp_,
    Rate_,
    Tp_,
    Workload_,
    _errors,
    _fail,
    _print_json,
    _table,
    flag,
)


@app.command()
def simulate(
    model: Annotated[str | None, typer.Option(help="Model id or alias, or a Hugging Face config.json.")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU count and type, e.g. 8xL20.")] = None,
    plan: Annotated[Path | None, typer.Option(help="A plan from `tdplan recommend --json`: simulate it.")] = None,
    tp: Tp_ = None,
    pp: Pp_ = None,
    strategy: Annotated[str | None, typer.Option(help="colocated (default) or chunked.")] = None,
    knob: Annotated[list[str] | None, typer.Option(help="Strategy knob KEY=VALUE (chunk_size, max_batch).")] = None,
    input_len: InputLen_ = None,
    output_len: OutputLen_ = None,
    workload: Workload_ = None,
    concurrency: Annotated[int | None, typer.Option(help="Closed loop of C clients, starting together.")] = None,
    rate: Rate_ = None,
    batch_size: Annotated[int | None, typer.Option(help="One static batch of B requests.")] = None,
    burstiness: Annotated[
        float | None, typer.Option(help="With --rate: gamma inter-arrivals with this coefficient of variation.")
    ] = None,
    trace: Annotated[
        str | None,
        typer.Option(
            help="A trace to replay: a CSV of arrival_time_s,input_len,output_len, or azure-conv / azure-code (one "
            "hour of Azure's conversation / code LLM service, 2023)."
        ),
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option(
            help="Requests counted, default 1000 (a closed loop adds C warm-up ones; a trace: its first N, "
            "default all; a plan: default 1000)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the request draws.")] = 0,
    ttft: Annotated[float | None, typer.Option(help="TTFT SLO, seconds (for SLO attainment).")] = None,
    tpot: Annotated[float | None, typer.Option(help="TPOT SLO, seconds (for SLO attainment).")] = None,
    dtype: Annotated[str | None, typer.Option(help="Weights: bf16 (default), fp16, fp8, int8 or int4.")] = None,
    kv_dtype: Annotated[str | None, typer.Option(help="KV cache dtype (default: the engine's).")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine profile (default: most evidence).")] = None,
    network: Annotated[str | None, typer.Option(help="Network between nodes.")] = None,
    gpus_per_node: GpusPerNode_ = None,
    out_csv: Annotated[Path | None, typer.Option("--out", help="Write per-request records to this CSV.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Run engines' schedulers on a request stream, iteration by iteration (discrete-event simulation):
    throughput and TTFT/TPOT/ITL/end-to-end latency percentiles, SLO attainment, preemptions."""
    from planner.report.progress import LazyProgress
    from planner.report.sim import sim_rows
    from planner.sim import write_requests_csv
    from planner.simulation import load_plan, simulate_plan
    from planner.simulation import simulate as run_simulate
    from planner.specs.catalog import load_catalog
    from planner.specs.inputs import check_output_file
    from planner.strategies.knobs import parse_knobs

    with _errors(), LazyProgress(common.err, "simulating requests") as progress:
        cat = load_catalog(catalog)
        if plan is not None:
            if model is not None or gpus is not None:
                _fail("a plan names its model and GPUs: drop --model and --gpus", "plan")
            flags = {"tp": tp, "pp": pp, "input_len": input_len, "output_len": output_len, "workload": workload,
                     "dtype": dtype, "concurrency": concurrency, "rate": rate, "batch_size": batch_size, "burstiness": burstiness,
                     "trace": trace, "ttft": ttft, "tpot": tpot, "strategy": strategy, "knobs": knob or None,
                     "kv_dtype": kv_dtype, "engine": engine, "network": network, "gpus_per_node": gpus_per_node}  # fmt: skip
            ignored = [flag(name) for name, value in flags.items() if value is not None]
            if ignored:
                _fail(f"a plan sets its layout, workload, load and SLOs: drop {', '.join(ignored)}", "plan")
            groups = simulate_plan(load_plan(plan), requests=requests, seed=seed, catalog=cat, progress=progress)
        else:
            if model is None or gpus is None:
                _fail("give --model and --gpus (or --plan plan.json)", "model" if model is None else "gpus")
            result = run_simulate(
                model,
                gpus,
                tp=tp,
                pp=pp,
                dtype=dtype,
                input_len=input_len,
                output_len=output_len,
                workload=workload,
                concurrency=concurrency,
                rate=rate,
                batch_size=batch_size,
                burstiness=burstiness,
                trace=trace,
                requests=requests,
                seed=seed,
                ttft=ttft,
                tpot=tpot,
                strategy=strategy,
                knobs=parse_knobs(knob or []),
                kv_dtype=kv_dtype,
                engine=engine,
                network=network,
                gpus_per_node=gpus_per_node,
                catalog=cat,
                progress=progress,
            )
            groups = [([{"strategy": strategy or "colocated", "gpus": gpus}], result)]
        if out_csv is not None:
            check_output_file(out_csv, "out_csv")
            write_requests_csv(groups[0][1], out_csv)
    if as_json:
        payload = [
            {
                "instances": group if plan is not None else group[0],
                **result.model_dump(mode="json", exclude={"requests", "queue"}),
            }
            for group, result in groups
        ]
        _print_json({"simulations": payload} if plan is not None else payload[0], {"model": model, "gpus": gpus})
        return
    for group, result in groups:
        pools = " + ".join(
            f"{e.get('role', 'serve')} {e.get('gpus')} {e.get('gpu', '')}".rstrip() if len(group) > 1
            else f"{e.get('gpus')} {e.get('gpu', '')}".rstrip()
            for e in group
        )  # fmt: skip
        common.out.print(_table(sim_rows(result), f"tdplan simulate: {group[0].get('strategy')} on {pools}"))
        for note in result.notes:
            common.out.print(f"note: {note}")
    if out_csv is not None:
        common.out.print(f"wrote {out_csv}")
