"""`tdplan report`: what a capacity-planning report computes, as independent tasks a process pool can run.

A report is one `ReportSpec`: a model, one or more fleets (`8xL20`, or a mixed `8xL20,8xA100`) and zero or
more target rates; the scenarios are every fleet at every rate. The tasks are

- one `planner.recommend()` per scenario, with where an iteration of its plan spends its time
  (planner.report.breakdown), and
- one `Curves` per GPU kind in the sweep (planner.report.curves): the throughput-latency frontier of every
  strategy, goodput against GPU count and GPUs needed against request rate.

`run()` runs them in `workers` processes (in-process when 1) and calls `progress(done, total)` after each;
`planner.report.html` and `planner.report.markdown` render the result.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from planner.comparison import build_slo
from planner.errors import PlannerError
from planner.recommendation import DEFAULT_WORKLOAD, Recommendation, parse_fleet, recommend
from planner.report.breakdown import IterationBreakdown, iteration_breakdown
from planner.report.curves import Curves, build_curves
from planner.specs import inputs
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.hardware import GpuPool
from planner.specs.workload import Workload
from planner.strategies import get_strategy

MAX_SCENARIOS = 2000  # fleets x rates; a report of more would take hours


class ReportSpec(BaseModel):
    """The inputs of a report. `fleets`: GPUs per sweep point, as `recommend` reads them; `rates`: target
    request rates (requests/s) per sweep point, empty for none; the rest as `planner.recommend()` takes them."""

    model_config = ConfigDict(frozen=True)

    model: str
    fleets: tuple[str, ...]
    rates: tuple[float, ...] = ()
    workload: str | None = None
    input_len: int | None = None
    output_len: int | None = None
    ttft: float | None = None
    tpot: float | None = None
    attainment: float | None = None
    objective: str | None = None
    prices: tuple[tuple[str, float], ...] = ()
    strategies: tuple[str, ...] = ()  # only these strategies; empty: all
    dtype: str = "bf16"
    kv_dtype: str | None = None
    engine: str | None = None
    network: str | None = None
    catalog_root: str | None = None  # None: the shipped catalogs (workers load it by this path)

    def catalog(self) -> Catalog:
        return load_catalog(Path(self.catalog_root) if self.catalog_root else None)

    def requests(self) -> Workload:
        """The request lengths, as `recommend` resolves them (its default preset when none are given)."""
        lengths_given = self.input_len is not None or self.output_len is not None
        chosen = self.workload or (None if lengths_given else DEFAULT_WORKLOAD)
        return Workload.resolve(chosen, self.input_len, self.output_len)


class Scenario(BaseModel):
    """One sweep point: a fleet at a target rate (None: no target)."""

    model_config = ConfigDict(frozen=True)

    fleet: str
    rate_req_s: float | None

    @property
    def label(self) -> str:
        return self.fleet + ("" if self.rate_req_s is None else f" @ {self.rate_req_s:g} req/s")


class ScenarioResult(BaseModel):
    """A scenario's recommendation and its iteration breakdown, or why it has none."""

    model_config = ConfigDict(frozen=True)

    scenario: Scenario
    recommendation: Recommendation | None = None
    breakdown: IterationBreakdown | None = None
    error: str | None = None


class CapacityReport(BaseModel):
    """Everything a report shows."""

    model_config = ConfigDict(frozen=True)

    spec: ReportSpec
    scenarios: list[ScenarioResult]
    curves: list[Curves]

    @property
    def primary(self) -> ScenarioResult:
        """The scenario the report details: the first one with a recommendation (else the first)."""
        return next((s for s in self.scenarios if s.recommendation is not None), self.scenarios[0])


def parse_rates(texts: Sequence[str] | None) -> tuple[float, ...]:
    """`["1,2", "5"]` -> (1.0, 2.0, 5.0): rates from repeated or comma-separated values, in order, once each."""
    rates: list[float] = []
    for text in texts or ():
        for part in str(text).split(","):
            try:
                value = float(part)
            except ValueError:
                raise PlannerError(f"cannot read '{part.strip()}' as a rate in requests/s", "rate") from None
            rate = inputs.positive(value, "rate", inputs.MAX_RATE_REQ_S)
            if rate is not None and rate not in rates:
                rates.append(rate)
    return tuple(rates)


def scenarios(spec: ReportSpec) -> list[Scenario]:
    """Every fleet at every rate (each fleet once without a rate when no rate is given)."""
    if not spec.fleets:
        raise PlannerError("give at least one fleet of GPUs (8xL20)", "gpus")
    gpu_kinds(spec)  # every fleet reads and names catalog GPUs
    rates: Sequence[float | None] = spec.rates or (None,)
    found = [Scenario(fleet=fleet, rate_req_s=rate) for fleet in spec.fleets for rate in rates]
    if len(found) > MAX_SCENARIOS:
        raise PlannerError(f"{len(found)} scenarios is more than {MAX_SCENARIOS}: sweep fewer fleets or rates", "rate")
    return found


def gpu_kinds(spec: ReportSpec) -> list[tuple[str, int]]:
    """(GPU name, largest count in any fleet) per GPU kind of the sweep, in order of first appearance."""
    catalog = spec.catalog()
    kinds: dict[str, tuple[str, int]] = {}
    for fleet in spec.fleets:
        for part in parse_fleet(fleet):
            pool = GpuPool.parse(part)
            gpu_id = catalog.gpu(pool.gpu_name).id
            name, count = kinds.get(gpu_id, (pool.gpu_name, 0))
            kinds[gpu_id] = (name, max(count, pool.count))
    return list(kinds.values())


Task = tuple[str, Scenario | tuple[str, int]]  # ("recommend", scenario) or ("curves", (gpu, count))


def check(spec: ReportSpec) -> None:
    """PlannerError for inputs every scenario shares, before any runs: the model, the request lengths, the
    strategies and the SLOs (what is infeasible in one scenario only is that scenario's finding)."""
    spec.catalog().model(spec.model)
    spec.requests()
    for name in spec.strategies:
        get_strategy(name)
    build_slo(spec.ttft, spec.tpot, 0.9 if spec.attainment is None else spec.attainment)


def tasks(spec: ReportSpec) -> list[Task]:
    """The report's tasks: the curves first (the longest), then one recommendation per scenario."""
    check(spec)
    curves: list[Task] = [("curves", kind) for kind in gpu_kinds(spec)]
    return curves + [("recommend", s) for s in scenarios(spec)]


def recommend_scenario(spec: ReportSpec, scenario: Scenario) -> ScenarioResult:
    """`planner.recommend()` for one scenario, with its plan's iteration breakdown; a PlannerError becomes the
    scenario's `error` (an infeasible sweep point is a finding, not a failure)."""
    catalog = spec.catalog()
    try:
        rec = recommend(
            spec.model,
            scenario.fleet,
            spec.workload,
            spec.input_len,
            spec.output_len,
            scenario.rate_req_s,
            spec.ttft,
            spec.tpot,
            spec.attainment,
            spec.objective,
            dict(spec.prices) or None,
            list(spec.strategies) or None,
            dtype=spec.dtype,
            kv_dtype=spec.kv_dtype,
            engine=spec.engine,
            network=spec.network,
            catalog=catalog,
        )
    except PlannerError as e:
        return ScenarioResult(scenario=scenario, error=str(e))
    return ScenarioResult(scenario=scenario, recommendation=rec, breakdown=iteration_breakdown(spec, catalog, rec))


def run_task(spec: ReportSpec, task: Task) -> ScenarioResult | Curves:
    kind, arg = task
    if kind == "recommend":
        assert isinstance(arg, Scenario)
        return recommend_scenario(spec, arg)
    assert isinstance(arg, tuple)
    return build_curves(spec, spec.catalog(), arg[0], arg[1])


def run(spec: ReportSpec, workers: int = 1, progress: Callable[[int, int], None] | None = None) -> CapacityReport:
    """Run every task of the report, in `workers` processes (in this one when 1), and collect the results in
    task order. `progress(done, total)` is called after each task."""
    todo = tasks(spec)
    results: list[ScenarioResult | Curves | None] = [None] * len(todo)
    if workers <= 1:
        for k, task in enumerate(todo):
            results[k] = run_task(spec, task)
            if progress:
                progress(k + 1, len(todo))
    else:
        # forkserver, not fork: the caller may run threads (a progress bar) that fork would copy mid-lock; the
        # server imports this module once, so workers start with the cost model loaded
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(run_task, spec, task): k for k, task in enumerate(todo)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress:
                    progress(done, len(todo))
    found = [r for r in results if isinstance(r, ScenarioResult)]
    if all(r.recommendation is None for r in found):
        raise PlannerError(f"no scenario has a feasible plan: {found[0].error}", "gpus")
    return CapacityReport(spec=spec, scenarios=found, curves=[r for r in results if isinstance(r, Curves)])
