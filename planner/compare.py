"""`planner.compare()`: every serving strategy on the same GPUs, each at its best configuration and knobs.

Each strategy enumerates its configurations (layouts x knob values); every configuration is evaluated
(`planner.strategies.base.evaluate`): offline capacity, latency percentiles at the requested rate (or at its
goodput rate), SLO attainment and goodput. With latency targets or a rate, a strategy's best configuration has
the highest goodput (then the highest offline throughput); without them, the highest offline throughput. The
overall best is the best of those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from planner.errors import PlannerError
from planner.estimate import default_engine
from planner.specs import inputs
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.hardware import GpuPool
from planner.specs.precision import resolve_dtypes
from planner.specs.workload import Workload
from planner.strategies import REGISTRY, get_strategy
from planner.strategies.base import Context, Slo, StrategyResult, evaluate

DEFAULT_SLO = Slo(ttft_s=1.0, tpot_s=0.1)


class Comparison(BaseModel):
    """All evaluated configurations, each strategy's best, and the overall best with why it wins."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    num_gpus: int
    workload: str
    engine: str
    slo: Slo
    objective: str  # "goodput" (latency targets or a rate given) or "throughput" (offline)
    rate_req_s: float | None
    configs: list[StrategyResult]
    per_strategy: list[StrategyResult]
    best: StrategyResult | None
    reason: str


def build_slo(ttft: float | None, tpot: float | None, attainment: float = 0.9) -> Slo:
    """Latency targets from `ttft`/`tpot` (seconds; omitted ones take DEFAULT_SLO's) and `attainment`, the
    share of requests that must meet both."""
    ttft = inputs.positive(ttft, "ttft", inputs.MAX_SLO_S)
    tpot = inputs.positive(tpot, "tpot", inputs.MAX_SLO_S)
    share = inputs.positive(attainment, "attainment", 1.0)
    return Slo(
        ttft_s=DEFAULT_SLO.ttft_s if ttft is None else ttft,
        tpot_s=DEFAULT_SLO.tpot_s if tpot is None else tpot,
        attainment=DEFAULT_SLO.attainment if share is None else share,
    )


def rank_key(result: StrategyResult, objective: str = "goodput") -> tuple[float, float]:
    """Goodput then offline throughput (objective "goodput"), or the reverse ("throughput"); infeasible
    configurations last."""
    if not result.feasible:
        return (-1.0, -1.0)
    goodput, throughput = result.goodput_req_s or 0.0, result.output_throughput_tok_s or 0.0
    return (goodput, throughput) if objective == "goodput" else (throughput, goodput)


def objective_for(rate: float | None, ttft: float | None, tpot: float | None) -> str:
    """Rank by goodput when the user states latency targets or a rate; by offline throughput otherwise."""
    return "goodput" if rate is not None or ttft is not None or tpot is not None else "throughput"


def why(best: StrategyResult, runner_up: StrategyResult | None, slo: Slo, objective: str = "goodput") -> str:
    """One line on why the best configuration beats the next strategy's best."""
    if runner_up is None:
        return f"{best.strategy} is the only feasible strategy"
    if objective == "throughput":
        tb, tr = best.output_throughput_tok_s or 0.0, runner_up.output_throughput_tok_s or 0.0
        return (
            f"{best.strategy} has the highest offline throughput, {tb:,.0f} tok/s, {tb / max(tr, 1e-9):.2f}x the "
            f"{tr:,.0f} tok/s of {runner_up.strategy} (no latency targets given: pass --ttft/--tpot to rank by goodput)"
        )
    good_b, good_r = best.goodput_req_s or 0.0, runner_up.goodput_req_s or 0.0
    slo_text = f"TTFT <= {slo.ttft_s:g} s and TPOT <= {slo.tpot_s:g} s for {slo.attainment:.0%} of requests"
    if good_b > 0 and good_b > good_r:
        gain = f"{good_b / good_r:.2f}x" if good_r > 0 else "where it meets none"
        detail = ""
        if best.tpot_p90_s is not None and runner_up.tpot_p90_s is not None and best.ttft_p90_s is not None:
            detail = (
                f"; at its operating point p90 TTFT {best.ttft_p90_s:.3g} s and p90 TPOT {best.tpot_p90_s * 1e3:.3g} ms"
            )
        return (
            f"{best.strategy} sustains {good_b:.3g} req/s within {slo_text}, {gain} the "
            f"{good_r:.3g} req/s of {runner_up.strategy}{detail}"
        )
    tb, tr = best.output_throughput_tok_s or 0.0, runner_up.output_throughput_tok_s or 0.0
    return (
        f"no strategy meets {slo_text} at any rate; {best.strategy} has the highest offline throughput, "
        f"{tb:,.0f} tok/s against {tr:,.0f} for {runner_up.strategy}"
    )


def build_context(
    catalog: Catalog,
    model: str,
    gpus: str,
    workload: Workload,
    dtype: str,
    kv_dtype: str | None,
    engine: str | None,
    network: str | None,
    gpus_per_node: int | None,
) -> Context:
    """Resolve names into the fixed part of a comparison."""
    spec = catalog.model(model)
    cluster = catalog.cluster(gpus, network, gpus_per_node)
    gpu = cluster.gpu
    engine_spec = catalog.engine(engine) if engine is not None else default_engine(catalog, gpu)
    weight_dtype, kv = resolve_dtypes(dtype, kv_dtype, engine_spec.fp8_kv_cache_with_fp8_weights)
    return Context(
        catalog=catalog,
        model=spec,
        cluster=cluster,
        workload=workload,
        dtype=weight_dtype,
        kv_dtype=kv,
        engine=engine_spec,
    )


def evaluate_strategy(
    ctx: Context,
    name: str,
    slo: Slo,
    rate_req_s: float | None,
    knobs: Mapping[str, float] | None = None,
    tp: int | None = None,
    pp: int | None = None,
    concurrency: float | None = None,
) -> list[StrategyResult]:
    """Every configuration of one strategy (optionally pinned to a TP/PP and knob values), evaluated."""
    strategy = get_strategy(name)
    strategy.check_knobs(knobs)
    results = []
    for candidate in strategy.candidates(ctx, knobs):
        if (tp is not None and candidate.tp != tp) or (pp is not None and candidate.pp != pp):
            continue
        results.append(evaluate(strategy, ctx, candidate, slo, rate_req_s, concurrency))
    return results


def compare(
    model: str,
    gpus: str,
    workload: str | Workload | None = None,
    input_len: int | None = None,
    output_len: int | None = None,
    rate: float | None = None,
    ttft: float | None = None,
    tpot: float | None = None,
    attainment: float = 0.9,
    strategies: Sequence[str] | None = None,
    *,
    dtype: str = "bf16",
    kv_dtype: str | None = None,
    engine: str | None = None,
    network: str | None = None,
    gpus_per_node: int | None = None,
    catalog: Catalog | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Comparison:
    """Evaluate every strategy (or those named) on the same GPUs, model and workload.

    progress: called as progress(strategy, index, count) before each strategy is evaluated (for a status line;
    a comparison on a large cluster takes a minute)."""
    catalog = catalog or load_catalog()
    rate = inputs.positive(rate, "rate", inputs.MAX_RATE_REQ_S)
    slo = build_slo(ttft, tpot, attainment)
    if isinstance(strategies, str):
        strategies = [strategies]
    if strategies is not None and not isinstance(strategies, Sequence):
        raise PlannerError(f"expected strategy names, got {strategies!r}", "strategies")
    names = [get_strategy(name).name for name in strategies] if strategies else sorted(REGISTRY)
    GpuPool.parse(gpus)  # the count and name, checked before the workload file is read
    work = Workload.resolve(workload, input_len, output_len)
    objective = objective_for(rate, ttft, tpot)
    ctx = build_context(catalog, model, gpus, work, dtype, kv_dtype, engine, network, gpus_per_node)
    configs: list[StrategyResult] = []
    per_strategy: list[StrategyResult] = []
    for index, name in enumerate(names):
        if progress is not None:
            progress(name, index, len(names))
        results = evaluate_strategy(ctx, name, slo, rate)
        configs += results
        feasible = [r for r in results if r.feasible]
        if feasible:
            per_strategy.append(max(feasible, key=lambda r: rank_key(r, objective)))
    per_strategy.sort(key=lambda r: rank_key(r, objective), reverse=True)
    best = per_strategy[0] if per_strategy else None
    if best is None:
        reasons = sorted({r.reason or "no reason given" for r in configs})
        others = f" (and {len(configs) - 1} other configurations)" if len(configs) > 1 else ""
        first = reasons[0] if reasons else f"no configuration fits {ctx.cluster.num_gpus} GPU(s)"
        reason = f"no strategy has a feasible configuration: {first}{others}"
    else:
        reason = why(best, per_strategy[1] if len(per_strategy) > 1 else None, slo, objective)
    return Comparison(
        model=ctx.model.id,
        gpu=ctx.cluster.gpu.id,
        num_gpus=ctx.cluster.num_gpus,
        workload=work.name,
        engine=ctx.engine.id,
        slo=slo,
        objective=objective,
        rate_req_s=rate,
        configs=configs,
        per_strategy=per_strategy,
        best=best,
        reason=reason,
    )
