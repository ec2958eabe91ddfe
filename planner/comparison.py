"""`planner.compare()`: every serving strategy on the same GPUs, each at its best plan.

The planner (planner.recommend) tabulates every strategy's instance types once and solves its integer program
with one strategy allowed at a time. This module also holds what `tdplan estimate --strategy` shares with it:
resolving names into a Context, the SLO defaults, and one strategy configuration evaluated in full
(`evaluate_strategy`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from planner.errors import PlannerError
from planner.estimation import resolve_names
from planner.search.plan import Plan, TypeSummary
from planner.specs import inputs
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.hardware import GpuPool
from planner.specs.workload import Workload
from planner.strategies import REGISTRY, get_strategy
from planner.strategies.base import Context, Slo, StrategyResult, evaluate

DEFAULT_SLO = Slo(ttft_s=1.0, tpot_s=0.1)


class StrategyPlan(BaseModel):
    """One strategy's best plan on the GPUs (None when it has none), and how far it is behind the best."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    feasible: bool
    plan: Plan | None
    margin_pct: float | None  # 0 for the best; positive: worse on the objective
    reason: str | None = None


class Comparison(BaseModel):
    """Every strategy's best plan on the same GPUs (the planner with one strategy allowed at a time), the
    instance types evaluated, and the best plan with why it wins."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    num_gpus: int
    workload: str
    engine: str
    slo: Slo | None
    objective: str  # "goodput" (latency targets or a rate given) or "throughput" (offline)
    rate_req_s: float | None
    per_strategy: list[StrategyPlan]
    best: StrategyPlan
    configs: list[TypeSummary]
    reason: str
    notes: list[str] = []


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
    """Resolve names into the fixed part of a comparison (estimation.resolve_names, the one resolver)."""
    if engine is not None:
        catalog.engine(engine)  # an empty or unknown name is an error, not the default profile
    spec, cluster, engine_spec, weight_dtype, kv = resolve_names(
        catalog, model, gpus, dtype, kv_dtype, engine, network, gpus_per_node, []
    )
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
) -> Comparison:
    """Every strategy (or those named) on the same GPUs, model and workload: the planner's integer program with
    one strategy allowed at a time (planner.recommend), ranked on goodput with a rate or latency targets, on
    offline throughput without them."""
    from planner.recommendation import recommend

    catalog = catalog or load_catalog()
    if isinstance(strategies, str):
        strategies = [strategies]
    if strategies is not None and not isinstance(strategies, Sequence):
        raise PlannerError(f"expected strategy names, got {strategies!r}", "strategies")
    names = [get_strategy(name).name for name in strategies] if strategies else sorted(REGISTRY)
    inputs.positive(rate, "rate", inputs.MAX_RATE_REQ_S)
    inputs.positive(attainment, "attainment", 1.0)
    pool = GpuPool.parse(gpus)  # the count and name, checked before the workload file is read
    work = Workload.resolve(workload, input_len, output_len)
    rec = recommend(
        model, gpus, work, rate=rate, ttft=ttft, tpot=tpot, attainment=attainment, strategies=names, dtype=dtype,
        kv_dtype=kv_dtype, engine=engine, network=network, gpus_per_node=gpus_per_node, catalog=catalog,
    )  # fmt: skip
    # The best row is the winning strategy alone, like every other row (the recommendation may mix strategies).
    own = rec.alone
    best = StrategyPlan(
        strategy=rec.plan.strategy,
        feasible=True,
        plan=own.plan if own is not None and own.plan is not None else rec.plan,
        margin_pct=own.margin_pct if own is not None else 0.0,
    )
    others = [
        StrategyPlan(strategy=a.strategy, feasible=a.feasible, plan=a.plan, margin_pct=a.margin_pct, reason=a.reason)
        for a in rec.alternatives
    ]
    return Comparison(
        model=rec.model,
        gpu=catalog.gpu(pool.gpu_name).id,
        num_gpus=pool.count,
        workload=rec.workload,
        engine=rec.engine,
        slo=rec.slo,
        objective=rec.plan.objective,
        rate_req_s=rate,
        per_strategy=[best, *others],
        best=best,
        configs=rec.evaluated,
        reason=rec.reason,
        notes=rec.notes,
    )
