"""The `tdplan` command line: the only module that prints or exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from planner.errors import PlannerError

app = typer.Typer(
    help="tdplan: analytical performance model and deployment planner for LLM inference serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
hardware_app = typer.Typer(help="The GPU catalog.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalog.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")
app.add_typer(models_app, name="models")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn domain and validation errors into one line on stderr and exit code 2."""
    try:
        yield
    except PlannerError as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(code=2) from None
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        err.print(f"[bold red]error:[/] {field}: {first['msg']}")
        raise typer.Exit(code=2) from None


def _table(rows: list[tuple[str, str]], title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    return table


CatalogRoot = Annotated[
    Optional[Path],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10
    typer.Option("--catalog", help="Folder holding hardware/ and models/ (default: the shipped catalogs)."),
]


@app.command()
def estimate(
    model: Annotated[str, typer.Option(help="Model id or alias (llama-70b), or a Hugging Face config.json.")],
    gpus: Annotated[str, typer.Option(help="GPU count and type, e.g. 8xL20 (one node) or 32xL20.")],
    input_len: Annotated[int, typer.Option(help="Prompt tokens per request.")],
    output_len: Annotated[int, typer.Option(help="Generated tokens per request.")],
    tp: Annotated[int | None, typer.Option(help="Tensor-parallel size (default: smallest that fits).")] = None,
    pp: Annotated[Optional[int], typer.Option(help="Pipeline-parallel size (default 1).")] = None,  # noqa: UP045
    dtype: Annotated[str, typer.Option(help="Weights: bf16, fp16, fp8, int8 or int4 (weight-only).")] = "bf16",
    kv_dtype: Annotated[str | None, typer.Option(help="KV cache: bf16, fp16, fp8 or int8 (default: 16-bit).")] = None,
    concurrency: Annotated[float | None, typer.Option(help="Closed loop: C clients, one request each.")] = None,
    rate: Annotated[Optional[float], typer.Option(help="Poisson arrivals at R requests/s.")] = None,  # noqa: UP045
    num_requests: Annotated[int, typer.Option(help="Offline: requests queued at once (sets mean TTFT).")] = 1000,
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
    """Predict throughput, TTFT, TPOT and memory of one configuration (no search)."""
    from planner.estimate import estimate as run_estimate
    from planner.report.tables import estimate_rows
    from planner.specs.catalog import load_catalog

    with _errors():
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
            kv_dtype=kv_dtype,
            engine=engine,
            network=network,
            gpus_per_node=gpus_per_node,
            num_requests=num_requests,
            catalog=load_catalog(catalog),
        )
    if as_json:
        out.print_json(json.dumps(result.model_dump(mode="json")))
        return
    out.print(_table(estimate_rows(result), "tdplan estimate"))
    for note in result.notes:
        out.print(f"note: {note}")


@app.command()
def validate(
    markdown: Annotated[Path | None, typer.Option(help="Also write the validation page (Markdown) here.")] = None,
    rows: Annotated[bool, typer.Option("--rows", help="List every row with its prediction and error.")] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Predict every published measurement tdplan can express and print the error per source and metric."""
    from planner.specs.catalog import load_catalog
    from planner.validation.report import SUMMARY_HEADER, markdown_page, summary_rows
    from planner.validation.validate import validate_all

    with _errors():
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
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(markdown_page(results))
        out.print(f"wrote {markdown}")


@app.command()
def calibrate(
    write: Annotated[
        bool, typer.Option(help="Write hardware/calibration/<engine>.yaml (default: only print).")
    ] = False,
    catalog: CatalogRoot = None,
) -> None:
    """Fit efficiency and overhead constants per engine and GPU family to the published measurements."""
    from planner.specs.catalog import load_catalog
    from planner.validation.calibrate import fit_all, write_profiles

    with _errors():
        cat = load_catalog(catalog)
        profiles = fit_all(cat)
    for profile in profiles:
        for family, cal in profile.families.items():
            out.print(
                f"{profile.engine}/{family}: {cal.fitted_rows} rows, median |error| "
                f"{cal.fitted_median_abs_pct_error if cal.fitted_median_abs_pct_error is not None else '-'}%, "
                f"compute_eff {cal.compute_eff:.3f}, gemm_ridge_scale {cal.gemm_ridge_scale:.2f}, "
                f"memory_bw_eff {cal.memory_bw_eff:.3f}, attention_bw_eff {cal.attention_bw_eff:.3f}, "
                f"iteration_overhead {cal.iteration_overhead_s * 1e3:.2f} ms, "
                f"layer_overhead {cal.layer_overhead_s * 1e6:.1f} us, "
                f"seq_layer_overhead {cal.seq_layer_overhead_s * 1e9:.1f} ns"
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
    with _errors():
        rows = lookup()
    out.print(_table(rows, title))


@hardware_app.command("list")
def hardware_list(catalog: CatalogRoot = None) -> None:
    """List the GPUs in the catalog."""
    from planner.specs.catalog import load_catalog

    with _errors():
        gpus = load_catalog(catalog).gpus.values()
    _listing(
        "GPUs",
        ["id", "name", "memory GiB", "GB/s", "bf16 TFLOPS", "fp8 TFLOPS", "link"],
        [
            [
                g.id,
                g.name,
                f"{g.memory_gib:g}",
                f"{g.memory_bw_gb_s:g}",
                f"{g.dense_tflops.bf16:g}",
                f"{g.dense_tflops.fp8:g}" if g.dense_tflops.fp8 else "-",
                f"{g.interconnect.kind.value} {g.interconnect.bw_gb_s:g} GB/s",
            ]
            for g in gpus
        ],
    )


@hardware_app.command("show")
def hardware_show(name: Annotated[str, typer.Argument(help="GPU id or alias.")], catalog: CatalogRoot = None) -> None:
    """Show one GPU's specs and sources."""
    from planner.report.tables import gpu_rows
    from planner.specs.catalog import load_catalog

    _show(lambda: gpu_rows(load_catalog(catalog).gpu(name)), name)


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
