"""The report as a document: sections of paragraphs, tables and figures, which planner.report.html and
planner.report.markdown render the same way, so the two files say the same thing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from planner.estimation import default_engine
from planner.recommendation import Recommendation
from planner.report import plots
from planner.report.capacity import CapacityReport, ScenarioResult
from planner.report.plan import ALTERNATIVE_HEADER, INSTANCE_HEADER, alternative_rows, instance_rows, predicted_rows
from planner.report.tables import gpu_rows
from planner.specs.catalog import Catalog

GPU_FACTS = ("name", "memory", "dense TFLOPS", "GPU link", "GPUs per node", "source")


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    id: str  # also the plot's file name in the Markdown twin
    title: str
    svg: str
    caption: str


Block = str | Table | Figure  # a paragraph is plain text


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    @property
    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


def _figure(blocks: list[Block], plot_id: str, title: str, svg: str | None, caption: str, missing: str) -> None:
    """The plot, or a sentence saying why there is none."""
    blocks.append(Figure(plot_id, title, svg, caption) if svg else missing)


def _recommendation(result: ScenarioResult, rec: Recommendation) -> Section:
    plan = rec.plan
    head = (
        f"For {result.scenario.label}: run **{plan.strategy}** on {plan.gpus_used} of {plan.gpus_available} GPUs "
        f"(objective: {plan.objective})."
    )
    rows = [[label, value] for label, value in predicted_rows(rec)]
    return Section(
        "recommendation",
        "Recommendation",
        [head, rec.reason, Table(INSTANCE_HEADER, instance_rows(rec)), Table(["predicted", "value"], rows)],
    )


def _strategies(report: CapacityReport, rec: Recommendation) -> Section:
    plan = rec.plan
    layout = ", ".join(f"{i.count} x {i.role} TP{i.tp} PP{i.pp}" for i in plan.instances)
    tok_s = f"{plan.predicted.output_throughput_tok_s:,.0f}"
    first = [plan.strategy + " (recommended)", layout, tok_s, str(plan.gpus_used), "-"]
    blocks: list[Block] = [
        "Each strategy's best plan on the same GPUs, by the same objective.",
        Table(ALTERNATIVE_HEADER, [first, *alternative_rows(rec)]),
    ]
    for c in report.curves:
        _figure(
            blocks,
            f"frontier-{c.gpu}",
            f"Throughput-latency frontier, {c.gpu}",
            plots.frontier(c),
            "Each point is one instance of one configuration at a share of its offline capacity; lines join each "
            "strategy's Pareto front (no other of its points has more throughput per GPU and a lower p90 TPOT). "
            "Lower right is better.",
            f"No instance of the model fits on {c.fleet_gpus} x {c.gpu}: no frontier.",
        )
    return Section("strategies", "All strategies side by side", blocks)


def _capacity(report: CapacityReport) -> Section:
    blocks: list[Block] = [
        "From one tabulation of the instance types of each GPU kind (instances at most as large as the largest "
        "fleet of that kind given; more GPUs replicate them), the integer program at other GPU counts and rates."
    ]
    for c in report.curves:
        _figure(
            blocks,
            f"goodput-{c.gpu}",
            f"Goodput against GPU count, {c.gpu}",
            plots.goodput_by_gpus(c),
            "Requests/s served within the SLOs by the best plan (black) and by each strategy alone; the dotted line "
            "marks the fleet given.",
            f"No goodput curve for {c.gpu}.",
        )
    _figure(
        blocks,
        "gpus-needed",
        "GPUs needed against request rate",
        plots.gpus_needed(report.curves),
        "The fewest GPUs of each type that serve the target rate within the SLOs (objective min-gpus).",
        "No GPU type serves any tabulated rate within the SLOs.",
    )
    _figure(
        blocks,
        "cost",
        "Cost per million output tokens",
        plots.cost_per_mtok(report.curves),
        "Dollars per million output tokens of the min-gpus plan at each target rate, at the prices given.",
        "No prices given: add --price GPU=USD_PER_HOUR for the cost per million tokens.",
    )
    return Section("capacity", "Capacity: goodput, GPUs needed and cost", blocks)


def _money(value: float | None, fmt: str = "{:,.2f}") -> str:
    return "-" if value is None else "$" + fmt.format(value)


def _sweep(report: CapacityReport) -> Section:
    header = ["scenario", "strategy", "plan", "GPUs", "req/s", "tok/s", "TTFT p90", "TPOT p90", "$/h", "$/M tok"]
    rows = []
    for s in report.scenarios:
        rec = s.recommendation
        if rec is None:
            rows.append([s.scenario.label, "-", s.error or "infeasible", *["-"] * 7])
            continue
        p, pred = rec.plan, rec.plan.predicted
        tok_s = pred.output_throughput_tok_s
        per_mtok = None if p.cost_usd_per_h is None or tok_s <= 0 else p.cost_usd_per_h / (tok_s * 3600) * 1e6
        rows.append([
            s.scenario.label, p.strategy, ", ".join(f"{i.count} x {i.role} TP{i.tp} PP{i.pp}" for i in p.instances),
            f"{p.gpus_used}/{p.gpus_available}", f"{pred.request_throughput_req_s:.3g}", f"{tok_s:,.0f}",
            "-" if pred.ttft_p90_s is None else f"{pred.ttft_p90_s * 1e3:,.0f} ms",
            "-" if pred.tpot_p90_s is None else f"{pred.tpot_p90_s * 1e3:,.0f} ms",
            _money(p.cost_usd_per_h), _money(per_mtok, "{:,.3f}"),
        ])  # fmt: skip
    return Section("sweep", f"Sweep: {len(rows)} scenarios", [Table(header, rows)])


def _memory(report: CapacityReport, rec: Recommendation, catalog: Catalog) -> Section:
    """The plan's instances, then each strategy's best instance on the first GPU kind (the plot leaves the
    knob values to the table)."""
    rows: list[tuple[str, str, dict[str, float]]] = []
    for i in rec.plan.instances:
        label = f"recommended: {i.strategy} {i.role} TP{i.tp} PP{i.pp} ({i.gpu})"
        rows.append((label, label, dict(i.memory_gib)))
    first = report.curves[0] if report.curves else None
    if first is not None:
        for label, parts in first.memory_gib.items():
            rows.append((f"{label} ({first.gpu})", label.split(" (")[0] + f" ({first.gpu})", parts))
    capacity = catalog.gpu(rec.plan.instances[0].gpu).memory_gib
    blocks: list[Block] = []
    _figure(
        blocks,
        "memory",
        "Memory per GPU by part",
        plots.memory({short: parts for _, short, parts in rows}, capacity),
        "GiB per GPU of the busiest pipeline stage: the recommended plan's instances, then the best instance of "
        "each strategy on the first GPU kind.",
        "No memory figures.",
    )
    names = sorted({p for _, _, parts in rows for p in parts})
    table = [[full] + [f"{parts.get(p, 0.0):.1f}" for p in names] for full, _, parts in rows]
    blocks.append(Table(["instance", *[n.replace("_", " ") + " GiB" for n in names]], table))
    return Section("memory", "Memory per GPU", blocks)


def _iteration(result: ScenarioResult) -> Section:
    b = result.breakdown
    if b is None:
        return Section("iteration", "Where an iteration's time goes", ["No breakdown."])
    blocks: list[Block] = []
    _figure(
        blocks,
        "iteration",
        "Where an iteration's time goes",
        plots.iteration(b),
        f"Prefill: {b.prefill.shape}. Decode: {b.decode.shape} (the plan's operating point, by Little's law).",
        "No breakdown.",
    )
    parts = list(b.prefill.seconds)
    rows = [
        [name, *[f"{p.seconds[part] * 1e3:,.2f}" for part in parts], f"{p.total_s * 1e3:,.2f}"]
        for name, p in (("prefill", b.prefill), ("decode", b.decode))
    ]
    blocks.append(Table(["iteration (ms)", *parts, "total"], rows))
    return Section("iteration", "Where an iteration's time goes", blocks)


def _assumptions(report: CapacityReport, rec: Recommendation, catalog: Catalog) -> Section:
    spec = report.spec
    model = catalog.model(spec.model)
    gpu_ids = list(dict.fromkeys([i.gpu for i in rec.plan.instances] + [c.gpu for c in report.curves]))
    work = spec.requests()
    slo = rec.slo or (report.curves[0].slo if report.curves else None)
    rows = [
        ["model", f"{model.name} ({model.id})"],
        ["precision", f"weights {spec.dtype}, KV cache {spec.kv_dtype or 'the engine default'}"],
        [
            "workload",
            f"{work.name}: mean {work.mean_input_len:,.0f} input + {work.mean_output_len:,.0f} output "
            + ("tokens, one request shape" if work.is_fixed else f"tokens over {len(work.input_lens):,} requests"),
        ],
        [
            "SLOs",
            "none (objective throughput)"
            if rec.slo is None
            else f"TTFT {rec.slo.ttft_s:g} s, TPOT {rec.slo.tpot_s:g} s for {rec.slo.attainment:.0%} of requests",
        ],
        [
            "SLOs of the curves",
            "-" if slo is None else f"TTFT {slo.ttft_s:g} s, TPOT {slo.tpot_s:g} s, {slo.attainment:.0%}",
        ],
        ["objective", rec.plan.objective],
        ["fleets", "; ".join(spec.fleets)],
        ["target rates", ", ".join(f"{r:g}" for r in spec.rates) or "none"],
        ["prices", ", ".join(f"{g} ${p:g}/h" for g, p in spec.prices) or "none"],
        ["network", spec.network or "the catalog default"],
    ]
    for gpu_id in gpu_ids:
        gpu = catalog.gpu(gpu_id)
        engine = catalog.engine(spec.engine) if spec.engine else default_engine(catalog, gpu)
        facts = dict(gpu_rows(gpu))
        rows += [[f"{gpu_id}: {k}", facts[k]] for k in GPU_FACTS]
        rows.append([f"{gpu_id}: kernel constants", catalog.kernel_profile(gpu_id).basis_label])
        rows.append([f"{gpu_id}: engine profile", f"{engine.name} ({engine.id}, {engine.version})"])
    plan = rec.plan
    expected = plan.calibration_basis if plan.expected_error_pct is None else (
        f"about {plan.expected_error_pct:.0f}% ({plan.calibration_basis})")  # fmt: skip
    rows.append(["expected error of the recommendation", expected])
    return Section("assumptions", "Assumptions and expected error", [Table(["what", "value"], rows)])


def build_document(report: CapacityReport, catalog: Catalog) -> Document:
    """The report's sections, in reading order; a sweep of several scenarios adds a table of them all."""
    primary = report.primary
    rec = primary.recommendation
    assert rec is not None
    builders: list[Callable[[], Section]] = [
        lambda: _recommendation(primary, rec),
        lambda: _strategies(report, rec),
        lambda: _capacity(report),
    ]
    if len(report.scenarios) > 1:
        builders.append(lambda: _sweep(report))
    builders += [
        lambda: _memory(report, rec, catalog),
        lambda: _iteration(primary),
        lambda: _assumptions(report, rec, catalog),
    ]
    sections = [build() for build in builders]
    notes = list(dict.fromkeys(rec.notes + [n for c in report.curves for n in c.notes]))
    if notes:
        sections.append(Section("notes", "Notes", list[Block](notes)))
    spec = report.spec
    return Document(
        title=f"tdplan capacity report: {spec.model}",
        subtitle=f"{'; '.join(spec.fleets)}"
        + (f" at {', '.join(f'{r:g}' for r in spec.rates)} req/s" if spec.rates else "")
        + f"; workload {rec.workload}",
        sections=sections,
    )
