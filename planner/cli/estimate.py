"""`tdplan estimate`: one deployment's throughput and latencies, by the engine model or a strategy's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from planner.errors import PlannerError

if TYPE_CHECKING:  # the command modules import these when they run: `tdplan --help` stays fast
    from planner.specs.catalog import Catalog
    from planner.strategies.base import Context, StrategyResult
from planner.cli import common
from planner.cli.app import app
from planner.cli.common import CatalogRoot, Model_, Pp_, Rate_, Tp_, Workload_, _errors, _fail, _print_json, _table


def _result_rows(result: StrategyResult) -> list[tuple[str, str]]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1e3:,.1f} ms"

    knobs = ", ".join(f"{k}={v:g}" for k, v in result.knobs.items()) or "-"
    detail = ", ".join(f"{k}={v}" for k, v in result.detail.items()) or "-"
    return [
        ("strategy", result.strategy),
        ("layout", f"TP {result.tp} x PP {result.pp}, {result.replicas} instance(s), {result.gpus_used} GPU(s)"),
        ("detail", detail),
        ("knobs", knobs),
        (
            "offline throughput",
            f"{result.output_throughput_tok_s or 0:,.0f} tok/s ({result.request_throughput_req_s or 0:,.3f} req/s)",
        ),
        ("at rate", f"{result.rate_req_s:,.3g} req/s" if result.rate_req_s is not None else "-"),
        ("TTFT mean / p90 / p99", f"{ms(result.ttft_s)} / {ms(result.ttft_p90_s)} / {ms(result.ttft_p99_s)}"),
        ("TPOT mean / p90 / p99", f"{ms(result.tpot_s)} / {ms(result.tpot_p90_s)} / {ms(result.tpot_p99_s)}"),
        ("TBT p99", ms(result.tbt_p99_s)),
        ("SLO attainment", "-" if result.slo_attainment is None else f"{result.slo_attainment:.0%}"),
        ("goodput", f"{result.goodput_req_s or 0:,.3g} req/s"),
        ("KV capacity per instance", f"{result.kv_capacity_tokens or 0:,} tokens"),
    ]


@app.command()
def estimate(
    model: Model_,
    gpus: Annotated[str, typer.Option(help="GPU count and type, e.g. 8xL20 (one node) or 32xL20.")],
    input_len: Annotated[int | None, typer.Option(help="Prompt tokens per request.")] = None,
    output_len: Annotated[int | None, typer.Option(help="Generated tokens per request.")] = None,
    workload: Workload_ = None,
    tp: Tp_ = None,
    pp: Pp_ = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4 (weight-only).")] = "bf16",
    kv_dtype: Annotated[
        str | None,
        typer.Option(
            help="KV cache: bf16, fp16, fp8 or int8 (default: the weights' 16-bit format; fp8 weights: the engine's)."
        ),
    ] = None,
    concurrency: Annotated[float | None, typer.Option(help="Closed loop: C clients, one request each.")] = None,
    rate: Rate_ = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Static batch: B requests prefilled and decoded together (one instance).")
    ] = None,
    analytic: Annotated[
        bool, typer.Option("--analytic", help="Closed loop and Poisson: the fast formulas, not the simulator.")
    ] = False,
    num_requests: Annotated[
        int | None, typer.Option(help="Offline: requests queued at once (sets mean TTFT; default 1000).")
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Serving strategy (default colocated); see `tdplan strategies`.")
    ] = None,
    knob: Annotated[list[str] | None, typer.Option(help="Strategy knob KEY=VALUE (repeatable).")] = None,
    ttft: Annotated[
        float | None, typer.Option(help="TTFT SLO in seconds (strategy estimates only; default 1).")
    ] = None,
    tpot: Annotated[
        float | None, typer.Option(help="TPOT SLO in seconds (strategy estimates only; default 0.1).")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="Calibration profile: trtllm or vllm (default: most evidence).")
    ] = None,
    network: Annotated[
        str | None, typer.Option(help="Network between nodes: 25gbe, 100gbe, 400gbe, ib-ndr, 8xib-ndr...")
    ] = None,
    gpus_per_node: Annotated[int | None, typer.Option(help="GPUs per node (default: the GPU's usual 8).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Predict throughput, TTFT, TPOT and memory of one configuration (no search).

    Without --strategy, --knob or --workload this is the colocated continuous-batching estimate of one request
    shape. With them, the strategy's best configuration at the given --tp/--pp and knobs is evaluated, with
    latency percentiles, SLO attainment (against --ttft/--tpot) and goodput.
    """
    from planner.specs.catalog import load_catalog

    with _errors():
        if batch_size is not None and (strategy is not None or knob or workload is not None):
            raise PlannerError("is a single-instance scenario: drop --strategy, --knob and --workload", "batch_size")
        if strategy is None and not knob and workload is None:
            for value, param in ((ttft, "ttft"), (tpot, "tpot")):
                if value is not None:
                    _fail(
                        "SLO targets apply to strategy estimates, which report SLO attainment: "
                        "add --strategy colocated (or --workload)",
                        param,
                    )
            cat = load_catalog(catalog)
            _colocated_estimate(
                cat,
                model,
                gpus,
                input_len,
                output_len,
                tp,
                pp,
                dtype,
                kv_dtype,
                concurrency,
                rate,
                batch_size,
                num_requests,
                engine,
                network,
                gpus_per_node,
                as_json,
                analytic,
            )
            return
        if num_requests is not None:
            _fail(
                "applies to the plain estimate only: a strategy estimate is offline capacity plus latencies at "
                "--rate or --concurrency; drop it",
                "num_requests",
            )
        from planner.strategies.knobs import parse_knobs

        knobs = parse_knobs(knob or [])
        cat = load_catalog(catalog)
        result, ctx = _strategy_estimate(
            cat,
            model,
            gpus,
            input_len,
            output_len,
            workload,
            tp,
            pp,
            dtype,
            kv_dtype,
            concurrency,
            rate,
            "colocated" if strategy is None else strategy,
            knobs,
            ttft,
            tpot,
            engine,
            network,
            gpus_per_node,
        )
    if as_json:
        _print_json(result.model_dump(mode="json"), _context_inputs(ctx))
        return
    common.out.print(_table(_result_rows(result), "tdplan estimate"))


def _context_inputs(ctx: Context) -> dict[str, Any]:
    return {
        "model": ctx.model.id,
        "gpu": ctx.cluster.gpu.id,
        "num_gpus": ctx.cluster.num_gpus,
        "engine": ctx.engine.id,
        "workload": ctx.workload.name,
        "dtype": ctx.dtype.value,
        "kv_dtype": ctx.kv_dtype.value,
        "network": ctx.cluster.network.label,
    }


def _colocated_estimate(
    cat: Catalog,
    model: str,
    gpus: str,
    input_len: int | None,
    output_len: int | None,
    tp: int | None,
    pp: int | None,
    dtype: str,
    kv_dtype: str | None,
    concurrency: float | None,
    rate: float | None,
    batch_size: int | None,
    num_requests: int | None,
    engine: str | None,
    network: str | None,
    gpus_per_node: int | None,
    as_json: bool,
    analytic: bool,
) -> None:
    from planner.estimation import estimate as run_estimate
    from planner.report.tables import estimate_rows

    if input_len is None or output_len is None:
        _fail("give --input-len and --output-len (or --workload NAME)", "output_len" if input_len else "input_len")
    if (concurrency is not None or rate is not None) and analytic and num_requests is not None:
        _fail(
            "sets the simulated requests and the offline queue, not the formulas: drop it or --analytic", "num_requests"
        )
    if analytic and concurrency is None and rate is None:
        _fail("applies to --concurrency and --rate, which are simulated unless asked for the formulas", "analytic")
    result = run_estimate(
        model,
        gpus,
        tp=tp,
        pp=pp,
        dtype=dtype,
        input_len=input_len,
        output_len=output_len,
        concurrency=concurrency,
        rate=rate,
        batch_size=batch_size,
        kv_dtype=kv_dtype,
        engine=engine,
        network=network,
        gpus_per_node=gpus_per_node,
        num_requests=1000 if num_requests is None else num_requests,
        analytic=analytic,
        catalog=cat,
    )
    if as_json:
        inputs = {
            "model": result.model,
            "gpu": result.gpu,
            "num_gpus": result.num_gpus,
            "engine": result.engine,
            "workload": f"fixed {result.input_len}/{result.output_len}",
            "dtype": result.dtype,
            "kv_dtype": result.kv_dtype,
            "network": result.network,
        }
        _print_json(result.model_dump(mode="json"), inputs)
        return
    common.out.print(_table(estimate_rows(result), "tdplan estimate"))
    for note in result.notes:
        common.out.print(f"note: {note}")


def _strategy_estimate(
    cat: Catalog,
    model: str,
    gpus: str,
    input_len: int | None,
    output_len: int | None,
    workload: str | None,
    tp: int | None,
    pp: int | None,
    dtype: str,
    kv_dtype: str | None,
    concurrency: float | None,
    rate: float | None,
    strategy: str,
    knobs: dict[str, float],
    ttft: float | None,
    tpot: float | None,
    engine: str | None,
    network: str | None,
    gpus_per_node: int | None,
) -> tuple[StrategyResult, Context]:
    from planner.comparison import build_context, build_slo, evaluate_strategy, objective_for, rank_key
    from planner.specs import inputs
    from planner.specs.workload import Workload

    if concurrency is not None and rate is not None:
        _fail("give --concurrency (a closed loop) or --rate (Poisson arrivals), not both", "rate")
    concurrency = inputs.count(concurrency, "concurrency", inputs.MAX_CONCURRENCY)
    rate = inputs.positive(rate, "rate", inputs.MAX_RATE_REQ_S)
    tp = inputs.count(tp, "tp", inputs.MAX_GPUS)
    pp = inputs.count(pp, "pp", inputs.MAX_GPUS)
    slo = build_slo(ttft, tpot)
    work = Workload.resolve(workload, input_len, output_len)
    ctx = build_context(cat, model, gpus, work, dtype, kv_dtype, engine, network, gpus_per_node)
    results = evaluate_strategy(ctx, strategy, slo, rate, knobs, tp, pp, concurrency)
    feasible = [r for r in results if r.feasible]
    if not feasible:
        reasons = sorted({r.reason or "no configuration" for r in results}) or ["no configuration matches --tp/--pp"]
        _fail(f"{strategy} has no feasible configuration here: {reasons[0]}")
    objective = objective_for(rate, ttft, tpot) if concurrency is None else "goodput"
    return max(feasible, key=lambda r: rank_key(r, objective)), ctx
