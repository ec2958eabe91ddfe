"""The `tdplan` command line: the only module that prints or exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from planner import SCHEMA_VERSION
from planner.errors import PlannerError

if TYPE_CHECKING:  # the command modules import these when they run: `tdplan --help` stays fast
    from planner.specs.catalog import Catalog
    from planner.strategies.base import Context, StrategyResult


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


Workload_ = Annotated[
    str | None,
    typer.Option(
        "--workload",
        help="Request lengths: a preset (sharegpt, sharegpt-multiturn, arxiv-summarization, azure-conv, azure-code, longbench, humaneval), NAME:TOKENS to cap it, or a CSV of input_len,output_len.",
    ),
]


@app.command()
def estimate(
    model: Annotated[str, typer.Option(help="Model id or alias (llama-70b), or a Hugging Face config.json.")],
    gpus: Annotated[str, typer.Option(help="GPU count and type, e.g. 8xL20 (one node) or 32xL20.")],
    input_len: Annotated[int | None, typer.Option(help="Prompt tokens per request.")] = None,
    output_len: Annotated[int | None, typer.Option(help="Generated tokens per request.")] = None,
    workload: Workload_ = None,
    tp: Annotated[int | None, typer.Option(help="Tensor-parallel size (default: smallest that fits).")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline-parallel size (default 1).")] = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4 (weight-only).")] = "bf16",
    kv_dtype: Annotated[
        str | None,
        typer.Option(
            help="KV cache: bf16, fp16, fp8 or int8 (default: the weights' 16-bit format; fp8 weights: the engine's)."
        ),
    ] = None,
    concurrency: Annotated[float | None, typer.Option(help="Closed loop: C clients, one request each.")] = None,
    rate: Annotated[float | None, typer.Option(help="Poisson arrivals at R requests/s.")] = None,
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
    out.print(_table(_result_rows(result), "tdplan estimate"))


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
    out.print(_table(estimate_rows(result), "tdplan estimate"))
    for note in result.notes:
        out.print(f"note: {note}")


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


@app.command()
def compare(
    model: Annotated[str, typer.Option(help="Model id or alias, or a Hugging Face config.json.")],
    gpus: Annotated[str, typer.Option(help="GPU count and type, e.g. 8xL20.")],
    workload: Workload_ = None,
    input_len: Annotated[int | None, typer.Option(help="Prompt tokens per request (fixed lengths).")] = None,
    output_len: Annotated[int | None, typer.Option(help="Generated tokens per request (fixed lengths).")] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="Poisson arrival rate for the latency figures (default: each config's goodput rate)."),
    ] = None,
    ttft: Annotated[float | None, typer.Option(help="TTFT SLO, seconds (default 1).")] = None,
    tpot: Annotated[float | None, typer.Option(help="TPOT SLO, seconds (default 0.1).")] = None,
    attainment: Annotated[float, typer.Option(help="Share of requests that must meet both SLOs.")] = 0.9,
    strategy: Annotated[list[str] | None, typer.Option(help="Only these strategies (repeatable).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every configuration evaluated.")] = False,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4.")] = "bf16",
    kv_dtype: Annotated[
        str | None, typer.Option(help="KV cache dtype (default: the engine's for the weights).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="Calibration profile (default: most evidence).")] = None,
    network: Annotated[str | None, typer.Option(help="Network between nodes, e.g. 100gbe.")] = None,
    gpus_per_node: Annotated[int | None, typer.Option(help="GPUs per node.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {configs, best} as JSON.")] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Every serving strategy side by side on the same GPUs, each at its best plan (the planner's integer program
    with one strategy allowed at a time)."""
    from planner.comparison import compare as run_compare
    from planner.report.plan import COMPARISON_HEADER, CONFIG_HEADER, comparison_rows, config_rows
    from planner.specs.catalog import load_catalog

    with _errors(), err.status("comparing strategies"):
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
    out.print(f"why: {result.reason}")
    for note in result.notes:
        out.print(f"note: {note}")


@app.command()
def recommend(
    model: Annotated[str, typer.Option(help="Model id or alias (llama-70b), or a Hugging Face config.json.")],
    gpus: Annotated[str, typer.Option(help="GPUs: COUNTxGPU, several kinds separated by commas (8xL20,8xA100).")],
    network: Annotated[str | None, typer.Option(help="Network between nodes, e.g. 100gbe or 8xib-ndr.")] = None,
    input_len: Annotated[int | None, typer.Option(help="Prompt tokens per request (fixed lengths).")] = None,
    output_len: Annotated[int | None, typer.Option(help="Generated tokens per request (fixed lengths).")] = None,
    workload: Workload_ = None,
    rate: Annotated[float | None, typer.Option(help="Target request rate, requests/s (Poisson).")] = None,
    ttft: Annotated[float | None, typer.Option(help="TTFT SLO, seconds (default 1 when SLOs apply).")] = None,
    tpot: Annotated[float | None, typer.Option(help="TPOT SLO, seconds (default 0.1 when SLOs apply).")] = None,
    attainment: Annotated[float | None, typer.Option(help="Share of requests that must meet both SLOs (0.9).")] = None,
    objective: Annotated[
        str | None,
        typer.Option(help="goodput (default with --rate or SLOs), throughput (default without), min-gpus, min-cost."),
    ] = None,
    price: Annotated[list[str] | None, typer.Option(help="GPU price GPU=USD_PER_HOUR (repeatable).")] = None,
    strategy: Annotated[list[str] | None, typer.Option(help="Only these strategies (repeatable).")] = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4.")] = "bf16",
    kv_dtype: Annotated[
        str | None, typer.Option(help="KV cache dtype (default: the engine's for the weights).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="Engine profile (default: most evidence on the GPU).")] = None,
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

    with _errors(), err.status("planning"):
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
    out.print(_table(predicted_rows(rec), "predicted"))
    if rec.alternatives:
        _listing("the best plan of every other strategy", ALTERNATIVE_HEADER, alternative_rows(rec))
    if rec.verification:
        _listing("simulated at the planned load (--verify)", VERIFY_HEADER, verification_rows(rec))
    out.print(rec.reason)
    for note in rec.notes:
        out.print(f"note: {note}")


@app.command()
def report(
    model: Annotated[str, typer.Option(help="Model id or alias (llama-70b), or a Hugging Face config.json.")],
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
    network: Annotated[str | None, typer.Option(help="Network between nodes, e.g. 100gbe or 8xib-ndr.")] = None,
    input_len: Annotated[int | None, typer.Option(help="Prompt tokens per request (fixed lengths).")] = None,
    output_len: Annotated[int | None, typer.Option(help="Generated tokens per request (fixed lengths).")] = None,
    workload: Workload_ = None,
    ttft: Annotated[float | None, typer.Option(help="TTFT SLO, seconds (default 1 when SLOs apply).")] = None,
    tpot: Annotated[float | None, typer.Option(help="TPOT SLO, seconds (default 0.1 when SLOs apply).")] = None,
    attainment: Annotated[float | None, typer.Option(help="Share of requests that must meet both SLOs (0.9).")] = None,
    objective: Annotated[
        str | None,
        typer.Option(help="goodput (default with --rate or SLOs), throughput (default without), min-gpus, min-cost."),
    ] = None,
    price: Annotated[
        list[str] | None, typer.Option(help="GPU price GPU=USD_PER_HOUR (repeatable); adds the cost plot.")
    ] = None,
    strategy: Annotated[list[str] | None, typer.Option(help="Only these strategies (repeatable).")] = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4.")] = "bf16",
    kv_dtype: Annotated[
        str | None, typer.Option(help="KV cache dtype (default: the engine's for the weights).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="Engine profile (default: most evidence on the GPU).")] = None,
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
        with Progress(*columns, console=err, transient=True) as bar:
            job = bar.add_task("scenarios", total=len(tasks(spec)))
            result = run(spec, workers, lambda done, total: bar.update(job, completed=done))
        files = report_files(result, loaded)
    for name, text in files.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    failed = [s for s in result.scenarios if s.recommendation is None]
    if failed:
        err.print(
            f"note: {len(failed)} of {len(result.scenarios)} scenarios have no feasible plan (see the sweep table)"
        )
    out.print(f"wrote {out_dir / 'report.html'}")
    out.print(f"wrote {out_dir / 'report.md'} (plots in {out_dir / 'plots'})")


@app.command()
def simulate(
    model: Annotated[str | None, typer.Option(help="Model id or alias, or a Hugging Face config.json.")] = None,
    gpus: Annotated[str | None, typer.Option(help="GPU count and type, e.g. 8xL20.")] = None,
    plan: Annotated[Path | None, typer.Option(help="A plan from `tdplan recommend --json`: simulate it.")] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor-parallel size (default: smallest that fits).")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline-parallel size (default 1).")] = None,
    strategy: Annotated[str | None, typer.Option(help="colocated (default) or chunked.")] = None,
    knob: Annotated[list[str] | None, typer.Option(help="Strategy knob KEY=VALUE (chunk_size, max_batch).")] = None,
    input_len: Annotated[int | None, typer.Option(help="Prompt tokens per request (fixed lengths).")] = None,
    output_len: Annotated[int | None, typer.Option(help="Generated tokens per request (fixed lengths).")] = None,
    workload: Workload_ = None,
    concurrency: Annotated[int | None, typer.Option(help="Closed loop of C clients, starting together.")] = None,
    rate: Annotated[float | None, typer.Option(help="Poisson arrivals at R requests/s.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="One static batch of B requests.")] = None,
    burstiness: Annotated[
        float | None, typer.Option(help="With --rate: gamma inter-arrivals with this coefficient of variation.")
    ] = None,
    trace: Annotated[Path | None, typer.Option(help="CSV of arrival_time_s,input_len,output_len.")] = None,
    requests: Annotated[int, typer.Option(help="Requests counted (a closed loop adds C warm-up ones).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the request draws.")] = 0,
    ttft: Annotated[float | None, typer.Option(help="TTFT SLO, seconds (for SLO attainment).")] = None,
    tpot: Annotated[float | None, typer.Option(help="TPOT SLO, seconds (for SLO attainment).")] = None,
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4.")] = "bf16",
    kv_dtype: Annotated[str | None, typer.Option(help="KV cache dtype (default: the engine's).")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine profile (default: most evidence).")] = None,
    network: Annotated[str | None, typer.Option(help="Network between nodes.")] = None,
    gpus_per_node: Annotated[int | None, typer.Option(help="GPUs per node.")] = None,
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

    notes: list[str] = []
    with _errors(), LazyProgress(err, "simulating requests") as progress:
        cat = load_catalog(catalog)
        if plan is not None:
            if model is not None or gpus is not None:
                _fail("a plan names its model and GPUs: drop --model and --gpus", "plan")
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
                notes=notes,
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
        out.print(_table(sim_rows(result), f"tdplan simulate: {group[0].get('strategy')} on {pools}"))
    for note in notes:
        out.print(f"note: {note}")
    if out_csv is not None:
        out.print(f"wrote {out_csv}")


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
        out.print(shell_script(result), markup=False, highlight=False)
    if result.unsupported:
        raise typer.Exit(code=1)


@app.command()
def strategies() -> None:
    """List the serving strategies, their knobs and references."""
    from planner.strategies import REGISTRY

    table = Table(title="strategies", title_justify="left")
    for column in ("name", "what it does", "knobs", "reference"):
        table.add_column(column)
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        knobs = "; ".join(f"{k.name} (default {k.default:g}): {k.help}" for k in cls.knobs) or "-"
        table.add_row(name, cls.summary, knobs, cls.reference)
    out.print(table)


@app.command()
def validate(
    markdown: Annotated[Path | None, typer.Option(help="Also write the validation page (Markdown) here.")] = None,
    rows: Annotated[bool, typer.Option("--rows", help="List every row with its prediction and error.")] = False,
    kernels: Annotated[
        bool,
        typer.Option(
            "--kernels/--no-kernels", help="Also score the kernel constants against the kernel microbenchmarks."
        ),
    ] = True,
    catalog: CatalogRoot = None,
) -> None:
    """Predict every published measurement tdplan can express and print the error per source and metric."""
    from planner.specs.catalog import load_catalog
    from planner.specs.inputs import check_output_file
    from planner.validation.report import KERNEL_HEADER, SUMMARY_HEADER, markdown_page, summary_rows
    from planner.validation.validate import validate_all

    with _errors():
        if markdown is not None:
            check_output_file(markdown, "markdown")
        results = validate_all(load_catalog(catalog))
    table = Table(title="tdplan validate: prediction error against published measurements", title_justify="left")
    for column in SUMMARY_HEADER:
        table.add_column(column)
    for row in summary_rows(results):
        table.add_row(*row)
    out.print(table)
    if rows:
        for result in results.predicted:
            out.print(
                f"{result.row.id} {result.row.metric} measured {result.row.value:.4g} "
                f"predicted {result.predicted:.4g} ({result.error_pct:+.1f}%)"
            )
    out.print(
        f"{len(results.predicted)} rows predicted, {len(results.skipped)} skipped "
        f"({', '.join(f'{n} {r}' for r, n in results.skip_reasons().items())})"
    )
    kernel_rows = _kernel_errors(catalog) if kernels or markdown is not None else []
    if kernels:
        _listing("kernel constants vs kernel microbenchmarks (MdAPE %)", KERNEL_HEADER, kernel_rows)
    if markdown is not None:
        with _errors():
            try:
                markdown.parent.mkdir(parents=True, exist_ok=True)
                markdown.write_text(markdown_page(results, kernel_rows))
            except OSError as e:
                _fail(f"cannot write {markdown} ({e.strerror or e}): choose another path", "markdown")
        out.print(f"wrote {markdown}")


def _kernel_errors(catalog: Path | None) -> list[list[str]]:
    """The kernel constants of every measured GPU against the packaged kernel microbenchmarks."""
    from planner.specs.catalog import load_catalog
    from planner.validation.kernel_profiles import kernel_error_rows

    with _errors():
        cat = load_catalog(catalog)
        return kernel_error_rows(cat.gpus, cat.kernels)


@app.command()
def calibrate(
    write: Annotated[
        bool, typer.Option(help="Write hardware/calibration/<engine>.yaml (default: only print).")
    ] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Fit each engine's host-side constants on the published latency rows (kernel constants held fixed)."""
    from planner.specs.catalog import load_catalog
    from planner.validation.calibrate import fit_all, write_profiles

    with _errors():
        cat = load_catalog(catalog)
        profiles = fit_all(cat)
    for profile in profiles:
        c, u = profile.constants, profile.uncertainty
        errors = ", ".join(f"{family} {pct:.1f}%" for family, pct in profile.expected_error_pct.items())
        out.print(
            f"{profile.engine}: {profile.fitted_rows} latency rows, median |error| "
            f"{profile.fitted_median_abs_pct_error}%; iteration_overhead {c.iteration_overhead_s * 1e3:.3f} "
            f"+/- {u['iteration_overhead_s'] * 1e3:.3f} ms, per_seq_overhead {c.per_seq_overhead_s * 1e6:.2f} "
            f"+/- {u['per_seq_overhead_s'] * 1e6:.2f} us; held-out error by GPU family: {errors}"
        )
    if write:
        if cat.root.name == "_catalog":
            err.print(
                "[bold red]error:[/] the shipped catalog is inside the installed package: pass --catalog DIR "
                "(a copy of hardware/ and models/) to write a calibration"
            )
            raise typer.Exit(code=2)
        for path in write_profiles(profiles, cat.root):
            out.print(f"wrote {path}")


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


@hardware_app.command("list")
def hardware_list(catalog: CatalogRoot = None) -> None:
    """List the GPUs in the catalog."""
    from planner.specs.catalog import load_catalog

    with _errors():
        cat = load_catalog(catalog)
        gpus = cat.gpus.values()
        basis = {g.id: cat.kernel_profile(g.id).basis_label if cat.kernels else "-" for g in gpus}
    _listing(
        "GPUs",
        ["id", "name", "memory GiB", "GB/s", "bf16 TFLOPS", "fp8 TFLOPS", "link", "kernels"],
        [
            [
                g.id,
                g.name,
                f"{g.memory_gib:g}",
                f"{g.memory_bw_gb_s:g}",
                f"{g.dense_tflops.bf16:g}",
                f"{g.dense_tflops.fp8:g}" if g.dense_tflops.fp8 else "-",
                f"{g.interconnect.kind.value} {g.interconnect.bw_gb_s:g} GB/s",
                basis[g.id],
            ]
            for g in gpus
        ],
    )


@hardware_app.command("show")
def hardware_show(name: Annotated[str, typer.Argument(help="GPU id or alias.")], catalog: CatalogRoot = None) -> None:
    """Show one GPU's specs, sources and kernel constants (measured, derived or extrapolated)."""
    from planner.report.tables import gpu_rows, kernel_rows
    from planner.specs.catalog import load_catalog

    def rows() -> list[tuple[str, str]]:
        cat = load_catalog(catalog)
        gpu = cat.gpu(name)
        return gpu_rows(gpu) + (kernel_rows(cat.kernel_profile(gpu.id)) if cat.kernels else [])

    _show(rows, name)


@models_app.command("list")
def models_list(catalog: CatalogRoot = None) -> None:
    """List the models in the catalog."""
    from planner.specs.catalog import load_catalog
    from planner.specs.model import total_params

    with _errors():
        models = load_catalog(catalog).models.values()
    _listing(
        "models",
        ["id", "name", "params (B)", "layers", "heads/kv", "aliases"],
        [
            [
                m.id,
                m.name,
                f"{total_params(m) / 1e9:.1f}",
                str(m.num_hidden_layers),
                f"{m.num_attention_heads}/{m.num_key_value_heads}",
                ", ".join(m.aliases[:3]),
            ]
            for m in models
        ],
    )


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="Model id, alias or config.json.")], catalog: CatalogRoot = None
) -> None:
    """Show one model's architecture and parameter count."""
    from planner.report.tables import model_rows
    from planner.specs.catalog import load_catalog

    _show(lambda: model_rows(load_catalog(catalog).model(name)), name)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
