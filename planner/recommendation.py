"""`planner.recommend()`: the best deployment of a model on the GPUs given, over every strategy, layout, knob
value and instance count, and the best plan of every other strategy beside it.

Instance types are enumerated and tabulated once (planner.search.instances), then the integer program
(planner.search.ilp) picks instance counts: once over every type, and once per strategy with only its types
(the alternatives, and `tdplan compare`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from planner.comparison import build_context, build_slo
from planner.errors import PlannerError
from planner.estimation import calibration_basis
from planner.search.ilp import Objective, Solution, solve_all
from planner.search.instances import InstanceType, instance_types
from planner.search.plan import Plan, TypeSummary, instances, main_strategy, predict, ratio
from planner.search.verify import Verification, simulatable
from planner.search.verify import verify as _verify
from planner.specs import inputs
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.hardware import GpuPool
from planner.specs.workload import CsvSource, Workload, context_note
from planner.strategies import REGISTRY, get_strategy
from planner.strategies.base import Context, Slo

OFFLINE_LOAD = 0.9  # offline plans report latencies at this share of their capacity
DEFAULT_WORKLOAD = "sharegpt"  # request lengths when none are given: chatbot traffic


class Alternative(BaseModel):
    """The best plan of one strategy alone, and how far it is from the recommendation."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    feasible: bool
    summary: str  # its instances, e.g. "2 x serve TP4 PP1"
    served_req_s: float
    output_throughput_tok_s: float
    gpus_used: int
    margin_pct: float | None  # how much worse than the recommendation on the objective (positive: worse)
    reason: str | None = None
    plan: Plan | None = None  # the whole plan, with its predicted latencies


class Recommendation(BaseModel):
    """`tdplan recommend`: the plan, the alternatives, and why the plan wins; with `verify`, the simulator's
    figures for the plans it can run, and the plan it switched from when simulation overturned the ranking."""

    model_config = ConfigDict(frozen=True)

    plan: Plan
    alternatives: list[Alternative]
    reason: str
    slo: Slo | None
    workload: str
    workload_csv: CsvSource | None = None  # the file a CSV workload was read from, with its hash
    model: str
    engine: str
    notes: list[str]
    verification: list[Verification] = []
    reranked_from: str | None = None
    alone: Alternative | None = None  # the winning strategy's best plan with no other strategy beside it
    evaluated: list[TypeSummary] = []  # every instance type tabulated (not part of the JSON plan)


def parse_fleet(gpus: str) -> list[str]:
    """`8xL20,8xA100` -> ["8xL20", "8xA100"]: one pool per GPU kind."""
    if not isinstance(gpus, str) or not gpus.strip():
        raise PlannerError("give GPUs as COUNTxGPU, several separated by commas (8xL20,8xA100)", "gpus")
    parts = [part.strip() for part in gpus.split(",")]
    for part in parts:
        GpuPool.parse(part)
    return parts


def parse_prices(prices: Mapping[str, float] | Sequence[str] | None, catalog: Catalog) -> dict[str, float]:
    """{gpu id: USD per GPU-hour} from a mapping or `GPU=USD` texts."""
    if prices is None:
        return {}
    items = prices.items() if isinstance(prices, Mapping) else [_split_price(p) for p in prices]
    out = {}
    for name, value in items:
        price = inputs.positive(float(value), "prices", 1e6)
        out[catalog.gpu(name).id] = price or 0.0
    return out


def _split_price(text: str) -> tuple[str, float]:
    name, sep, value = str(text).partition("=")
    try:
        if sep:
            return name.strip(), float(value)
    except ValueError:
        pass
    raise PlannerError(f"cannot read '{text}': write GPU=USD_PER_HOUR, for example L20=0.9", "prices")


def _summary(types: Sequence[InstanceType], solution: Solution) -> str:
    parts = []
    for (i, j), n in sorted(solution.counts.items()):
        if n:
            pool = types[i].pools[j]
            macro = f" (a macro of {pool.gpus // (pool.tp * pool.pp)})" if pool.gpus != pool.tp * pool.pp else ""
            parts.append(f"{n} x {pool.role} TP{pool.tp} PP{pool.pp}{macro}")
    return ", ".join(parts) or "nothing"


def _gpus_used(types: Sequence[InstanceType], solution: Solution) -> int:
    return sum(types[i].pools[j].gpus * n for (i, j), n in solution.counts.items())


def _cost(types: Sequence[InstanceType], solution: Solution, prices: Mapping[str, float]) -> float | None:
    if not prices:
        return None
    return sum(types[i].pools[j].gpus * n * prices.get(types[i].gpu, 0.0) for (i, j), n in solution.counts.items())


def _score(
    types: Sequence[InstanceType], solution: Solution, objective: Objective, prices: Mapping[str, float]
) -> float:
    if objective is Objective.min_gpus:
        return -float(_gpus_used(types, solution))
    if objective is Objective.min_cost:
        return -(_cost(types, solution, prices) or 0.0)
    return solution.served_req_s


def _feasible(solution: Solution, objective: Objective) -> bool:
    if solution.status != "Optimal":
        return False
    return objective in (Objective.min_gpus, Objective.min_cost) or solution.served_req_s > 0


def recommend(
    model: str,
    gpus: str,
    workload: str | Workload | None = None,
    input_len: int | None = None,
    output_len: int | None = None,
    rate: float | None = None,
    ttft: float | None = None,
    tpot: float | None = None,
    attainment: float | None = None,
    objective: str | Objective | None = None,
    prices: Mapping[str, float] | Sequence[str] | None = None,
    strategies: Sequence[str] | None = None,
    *,
    verify: bool = False,
    alternative_plans: bool = True,
    dtype: str = "bf16",
    kv_dtype: str | None = None,
    engine: str | None = None,
    network: str | None = None,
    gpus_per_node: int | None = None,
    catalog: Catalog | None = None,
) -> Recommendation:
    """The best deployment for `model` on `gpus` (e.g. "8xL20" or "8xL20,8xA100").

    objective: goodput (default with a rate or SLOs), throughput (default without), min-gpus or min-cost (both
    need `rate`). SLOs default to TTFT 1 s / TPOT 0.1 s at 90% attainment when only some are given.
    strategies: restrict the search to these strategy names. verify: simulate the plan and the other strategies'
    best plans that the simulator runs (planner.search.verify); with SLOs, a plan whose simulation misses the
    attainment target gives way to the best one whose simulation meets it. alternative_plans: predict each
    alternative's whole plan (`Alternative.plan`, `alone`, what `compare` shows); False leaves them None and
    skips their latency models (the command prints only the alternatives' summaries)."""
    catalog = catalog or load_catalog()
    rate = inputs.positive(rate, "rate", inputs.MAX_RATE_REQ_S)
    attainment = inputs.positive(attainment, "attainment", 1.0)
    if objective is None:
        goal = Objective.goodput if (rate is not None or ttft is not None or tpot is not None) else Objective.throughput
    else:
        try:
            goal = Objective(objective)
        except ValueError:
            choices = ", ".join(o.value for o in Objective)
            raise PlannerError(f"unknown objective '{objective}': choose one of {choices}", "objective") from None
    if goal is Objective.throughput and (rate is not None or ttft is not None or tpot is not None):
        raise PlannerError(
            "objective throughput plans offline capacity, with no rate or SLOs: drop --rate/--ttft/--tpot or use "
            "--objective goodput",
            "objective",
        )
    if goal in (Objective.min_gpus, Objective.min_cost) and rate is None:
        raise PlannerError(f"objective {goal.value} needs a target rate: add --rate", "rate")
    price_table = parse_prices(prices, catalog)
    if goal is Objective.min_cost and not price_table:
        raise PlannerError("objective min-cost needs GPU prices: add --price GPU=USD_PER_HOUR", "prices")
    slo = None if goal is Objective.throughput else build_slo(ttft, tpot, 0.9 if attainment is None else attainment)
    names = [get_strategy(n).name for n in strategies] if strategies else sorted(REGISTRY)
    notes: list[str] = []
    if workload is None and input_len is None and output_len is None:
        workload = DEFAULT_WORKLOAD
        notes.append(f"workload: {DEFAULT_WORKLOAD} (no --workload or --input-len/--output-len given)")
    work = Workload.resolve(workload, input_len, output_len)
    contexts: list[Context] = [
        build_context(catalog, model, part, work, dtype, kv_dtype, engine, network, gpus_per_node)
        for part in parse_fleet(gpus)
    ]
    if (beyond := context_note(contexts[0].model.id, contexts[0].model.max_position_embeddings, work)) is not None:
        notes.append(beyond)
    budget: dict[str, int] = {}
    for ctx in contexts:
        budget[ctx.cluster.gpu.id] = budget.get(ctx.cluster.gpu.id, 0) + ctx.cluster.num_gpus
    types: list[InstanceType] = []
    for ctx in contexts:
        found, skipped = instance_types(ctx, names, slo)
        types += found
        notes += skipped
    if not types:
        raise PlannerError(_nothing_fits(contexts, [n for n in notes if not n.startswith("workload:")]), "gpus")
    subsets = {name: sub for name in names if (sub := [t for t in types if t.strategy == name])}
    best, *alone_solutions = solve_all([types, *subsets.values()], budget, goal, rate, price_table)
    per_strategy = {name: (sub, sol) for (name, sub), sol in zip(subsets.items(), alone_solutions, strict=True)}
    if not _feasible(best, goal):
        raise PlannerError(_nothing_feasible(types, slo, goal, rate, budget), "gpus")
    plan = _plan(types, best, goal, slo, rate, work, budget, price_table)
    best_score = _score(types, best, goal, price_table)
    alone = {
        name: _alternative(name, sub, sol, goal, work, price_table, best_score).model_copy(
            update={
                "plan": _plan(sub, sol, goal, slo, rate, work, budget, price_table)
                if alternative_plans and _feasible(sol, goal)
                else None
            }
        )
        for name, (sub, sol) in per_strategy.items()
    }

    def others(winner: str) -> list[Alternative]:
        listed = [a for name, a in alone.items() if name != winner]
        return sorted(listed, key=lambda a: (not a.feasible, a.margin_pct if a.margin_pct is not None else 1e9))

    alternatives = others(plan.strategy)
    reason = _why(plan, alternatives, goal, slo)
    verification: list[Verification] = []
    reranked_from = None
    if verify:
        ranked = [
            (plan.strategy, types, best),
            *sorted(
                (
                    (name, sub, sol)
                    for name, (sub, sol) in per_strategy.items()
                    if name != plan.strategy and _feasible(sol, goal)
                ),
                key=lambda item: -_score(item[1], item[2], goal, price_table),
            ),
        ]
        checked = [(name, sub, sol) for name, sub, sol in ranked if simulatable(sub, sol)]
        for name, sub, sol in checked:
            predicted = (
                plan.predicted if sol is best else _plan(sub, sol, goal, slo, rate, work, budget, price_table).predicted
            )
            verification.append(_verify(name, sub, sol, predicted, slo))
        if not checked or checked[0][2] is not best:
            notes.append(f"not simulated: {plan.strategy} (the simulator has no scheduler for it)")
        elif slo is not None:
            passing = [v for v in verification if (v.simulated_attainment or 0) >= slo.attainment]
            if verification[0] not in passing and passing:
                name, sub, sol = next(c for c, v in zip(checked, verification, strict=True) if v is passing[0])
                reranked_from = plan.strategy
                plan = _plan(sub, sol, goal, slo, rate, work, budget, price_table)
                alternatives = others(plan.strategy)
                reason = (
                    f"re-ranked by simulation: {reranked_from} misses the {slo.attainment:.0%} attainment target in "
                    f"simulation ({verification[0].reason}); {name} meets it. " + reason
                )
    return Recommendation(
        plan=plan,
        alternatives=alternatives,
        alone=alone.get(plan.strategy),
        reason=reason,
        slo=slo,
        workload=work.name,
        workload_csv=work.csv,
        model=contexts[0].model.id,
        engine=contexts[0].engine.id,
        notes=notes,
        verification=verification,
        reranked_from=reranked_from,
        evaluated=[_type_summary(t) for t in types],
    )


def _type_summary(t: InstanceType) -> TypeSummary:
    return TypeSummary(
        strategy=t.strategy,
        label=t.label,
        gpu=t.gpu,
        knobs=t.knobs,
        pools=[
            {
                "role": p.role,
                "tp": p.tp,
                "pp": p.pp,
                "gpus": p.gpus,
                "capacity_req_s": p.capacity_req_s,
                "slo_rate_req_s": p.slo_rate_req_s,
            }
            for p in t.pools
        ],
    )


def _plan(
    types: Sequence[InstanceType],
    solution: Solution,
    goal: Objective,
    slo: Slo | None,
    rate: float | None,
    work: Workload,
    budget: Mapping[str, int],
    prices: Mapping[str, float],
) -> Plan:
    planned = instances(types, solution)
    served = solution.served_req_s
    if rate is not None and goal is not Objective.throughput:
        load = min(rate, served) if goal is Objective.goodput else rate
    else:
        load = served if goal is Objective.goodput else OFFLINE_LOAD * served
    predicted = predict(types, solution, slo, load, work.mean_output_len)
    first = next(i for (i, _), n in sorted(solution.counts.items()) if n)
    t = types[first]
    expected, basis = calibration_basis(t.ctx.catalog, t.ctx.deployment(t.pools[0].tp, t.pools[0].pp))
    return Plan(
        objective=goal.value,
        strategy=main_strategy(types, solution),
        instances=planned,
        prefill_decode_ratio=ratio(planned),
        gpus_used=_gpus_used(types, solution),
        gpus_available=sum(budget.values()),
        cost_usd_per_h=_cost(types, solution, prices),
        predicted=predicted,
        expected_error_pct=expected,
        calibration_basis=basis,
        solver_status=solution.status + (" (time limit)" if solution.hit_time_limit else ""),
    )


def _alternative(
    name: str,
    types: Sequence[InstanceType],
    solution: Solution,
    goal: Objective,
    work: Workload,
    prices: Mapping[str, float],
    best_score: float,
) -> Alternative:
    if not _feasible(solution, goal):
        return Alternative(
            strategy=name,
            feasible=False,
            summary="-",
            served_req_s=0.0,
            output_throughput_tok_s=0.0,
            gpus_used=0,
            margin_pct=None,
            reason="no plan meets the objective" + (" within the SLOs" if goal is not Objective.throughput else ""),
        )
    score = _score(types, solution, goal, prices)
    margin = (best_score - score) / abs(best_score) * 100 if best_score else None
    return Alternative(
        strategy=name,
        feasible=True,
        summary=_summary(types, solution),
        served_req_s=solution.served_req_s,
        output_throughput_tok_s=solution.served_req_s * work.mean_output_len,
        gpus_used=_gpus_used(types, solution),
        margin_pct=margin,
    )


def _why(plan: Plan, alternatives: Sequence[Alternative], goal: Objective, slo: Slo | None) -> str:
    """One paragraph on what decides the winner."""
    head = next((i for i in plan.instances if i.strategy == plan.strategy), plan.instances[0])
    layout = f"{head.count} x TP{head.tp} PP{head.pp}" + (
        f" ({plan.prefill_decode_ratio} prefill:decode)" if plan.prefill_decode_ratio else ""
    )
    feasible = [a for a in alternatives if a.feasible]
    what = {
        Objective.throughput: "offline throughput",
        Objective.goodput: "goodput within the SLOs",
        Objective.min_gpus: "GPUs needed",
        Objective.min_cost: "cost",
    }[goal]
    text = f"{plan.strategy} ({layout}) has the best {what}: {_value(plan, goal)}"
    if not feasible:
        return text + "; no other strategy has a feasible plan."
    runner = feasible[0]
    text += f"; the next best, {runner.strategy} ({runner.summary}), gives {_alt_value(runner, goal)}"
    if runner.margin_pct is not None:
        text += f", {runner.margin_pct:.0f}% worse"
    gpus_each = head.gpus // head.count
    text += (
        f". Per GPU one {plan.strategy} instance completes {head.capacity_req_s / gpus_each:.3g} req/s offline"
        + (f" and {head.slo_rate_req_s / gpus_each:.3g} req/s within the SLOs" if slo is not None else "")
        + "."
    )
    infeasible = [a.strategy for a in alternatives if not a.feasible]
    if infeasible:
        text += f" Not feasible: {', '.join(infeasible)}."
    return text


def _value(plan: Plan, goal: Objective) -> str:
    if goal is Objective.min_gpus:
        return f"{plan.gpus_used} GPUs"
    if goal is Objective.min_cost:
        return f"${plan.cost_usd_per_h:,.2f}/h"
    rate = plan.predicted.goodput_req_s if goal is Objective.goodput else plan.predicted.capacity_req_s
    return f"{rate or 0:.3g} req/s"


def _alt_value(alt: Alternative, goal: Objective) -> str:
    if goal is Objective.min_gpus:
        return f"{alt.gpus_used} GPUs"
    return f"{alt.served_req_s:.3g} req/s"


def _nothing_fits(contexts: Sequence[Context], notes: Sequence[str]) -> str:
    fleet = ", ".join(f"{c.cluster.num_gpus}x{c.cluster.gpu.id}" for c in contexts)
    first = notes[0] if notes else "no layout fits"
    return (
        f"{contexts[0].model.name} has no feasible instance on {fleet} ({first}): add GPUs, use fp8 or shorter requests"
    )


def _nothing_feasible(
    types: Sequence[InstanceType], slo: Slo | None, goal: Objective, rate: float | None, budget: Mapping[str, int]
) -> str:
    if slo is not None and all(p.slo_rate_req_s <= 0 for t in types for p in t.pools):
        fastest = max(types, key=lambda t: t.pools[0].capacity_req_s)
        return (
            f"no instance meets TTFT {slo.ttft_s:g} s and TPOT {slo.tpot_s:g} s for {slo.attainment:.0%} of requests "
            f"even at a trickle of traffic (e.g. {fastest.label}): loosen --ttft/--tpot or use faster GPUs"
        )
    if goal in (Objective.min_gpus, Objective.min_cost) and rate is not None:
        return (
            f"{sum(budget.values())} GPU(s) cannot serve {rate:g} req/s within the SLOs: lower --rate, loosen the "
            "SLOs or add GPUs"
        )
    return "no plan serves any request within the SLOs: loosen --ttft/--tpot or add GPUs"


def plan_payload(rec: Recommendation) -> dict[str, Any]:
    """The JSON body of `tdplan recommend --json` (after schema_version and inputs)."""
    return {
        "plan": rec.plan.model_dump(mode="json"),
        "alternatives": [a.model_dump(mode="json", exclude={"plan"}) for a in rec.alternatives],
        "reason": rec.reason,
        "slo": rec.slo.model_dump(mode="json") if rec.slo else None,
        "workload": rec.workload,
        "workload_csv": rec.workload_csv.model_dump(mode="json") if rec.workload_csv else None,
        "notes": rec.notes,
        "verification": [v.model_dump(mode="json") for v in rec.verification],
        "reranked_from": rec.reranked_from,
    }
