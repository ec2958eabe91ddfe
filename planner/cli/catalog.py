"""`tdplan strategies`, `validate`, `calibrate`, `hardware` and `models`: what tdplan knows and how well."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from planner.cli import common
from planner.cli.app import app, hardware_app, models_app
from planner.cli.common import CatalogRoot, _errors, _fail, _listing, _show


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
    common.out.print(table)


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
    common.out.print(table)
    if rows:
        for result in results.predicted:
            common.out.print(
                f"{result.row.id} {result.row.metric} measured {result.row.value:.4g} "
                f"predicted {result.predicted:.4g} ({result.error_pct:+.1f}%)"
            )
    common.out.print(
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
        common.out.print(f"wrote {markdown}")


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
        common.out.print(
            f"{profile.engine}: {profile.fitted_rows} latency rows, median |error| "
            f"{profile.fitted_median_abs_pct_error}%; iteration_overhead {c.iteration_overhead_s * 1e3:.3f} "
            f"+/- {u['iteration_overhead_s'] * 1e3:.3f} ms, per_seq_overhead {c.per_seq_overhead_s * 1e6:.2f} "
            f"+/- {u['per_seq_overhead_s'] * 1e6:.2f} us; held-out error by GPU family: {errors}"
        )
    if write:
        if cat.root.name == "_catalog":
            common.err.print(
                "[bold red]error:[/] the shipped catalog is inside the installed package: pass --catalog DIR "
                "(a copy of hardware/ and models/) to write a calibration"
            )
            raise typer.Exit(code=2)
        for path in write_profiles(profiles, cat.root):
            common.out.print(f"wrote {path}")


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
