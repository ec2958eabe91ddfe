"""`planner.simulate()`: one configuration named as `estimate` names it, run through the discrete-event simulator
(planner.sim) on a request stream; and the simulation of a plan that `recommend --json` wrote.

The simulator runs engine schedulers (prefill-first continuous batching, chunked prefill with a token budget,
in-flight batching; the engine profile picks one), pipelined instances as virtual engines, and each strategy's
own scheduler: planner.sim.setup maps every registered strategy onto them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from planner.comparison import build_context
from planner.errors import PlannerError
from planner.estimation import resolve_deployment
from planner.sim import (
    RequestStream,
    SimResult,
    Slo,
    bursty,
    closed_loop,
    offline,
    poisson,
    static_batch,
    trace_stream,
)
from planner.sim.policy import Role
from planner.sim.setup import SIMULATED_STRATEGIES, PoolLayout, sim_pools
from planner.sim.simulate import Progress, simulate_pools
from planner.specs import inputs
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.workload import CsvSource, Workload, context_note

MAX_SIM_REQUESTS = 1_000_000  # requests one simulation runs: about two minutes on one core
DEFAULT_SIM_REQUESTS = 1000  # requests a synthetic stream holds when none are asked for


def build_stream(
    workload: Workload | None,
    requests: int | None,
    concurrency: int | None,
    rate: float | None,
    batch_size: int | None,
    burstiness: float | None,
    trace: str | Path | None,
) -> RequestStream:
    """The request stream the scenario flags describe (offline when none is given). `requests`: the requests
    counted (DEFAULT_SIM_REQUESTS when None); of a trace, its first that many (all when None); a static batch
    is its batch_size requests."""
    given = [name for name, value in (("concurrency", concurrency), ("rate", rate), ("batch_size", batch_size),
                                      ("trace", trace)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise PlannerError(f"give one of concurrency, rate, batch_size and trace, not {' and '.join(given)}", given[1])
    if burstiness is not None and rate is None:
        raise PlannerError("sets the arrival burstiness of a rate: add --rate", "burstiness")
    if trace is not None:
        return trace_stream(trace, requests)
    if batch_size is not None and requests is not None:
        raise PlannerError(f"a static batch is its {batch_size} requests: leave --requests out", "requests")
    requests = requests or DEFAULT_SIM_REQUESTS
    assert workload is not None
    if concurrency is not None:
        return closed_loop(concurrency, requests, workload, warmup_requests=concurrency)
    if rate is not None:
        return (
            bursty(rate, burstiness, requests, workload)
            if burstiness is not None
            else poisson(rate, requests, workload)
        )
    if batch_size is not None:
        return static_batch(batch_size, workload)
    return offline(requests, workload)


def simulate(
    model: str,
    gpus: str,
    tp: int | None = None,
    pp: int | None = None,
    dtype: str | None = None,
    input_len: int | None = None,
    output_len: int | None = None,
    workload: str | Workload | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    batch_size: int | None = None,
    *,
    burstiness: float | None = None,
    trace: str | Path | None = None,
    requests: int | None = None,
    seed: int = 0,
    ttft: float | None = None,
    tpot: float | None = None,
    strategy: str | None = None,
    knobs: Mapping[str, float] | None = None,
    kv_dtype: str | None = None,
    engine: str | None = None,
    network: str | None = None,
    gpus_per_node: int | None = None,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
) -> SimResult:
    """Simulate one configuration: every data-parallel replica the GPUs hold, requests routed round-robin.
    Offline (all requests queued) unless one of concurrency, rate (with burstiness: gamma inter-arrivals of
    that coefficient of variation), batch_size or a trace (a CSV, or a shipped trace's name) is given. `requests`
    (default DEFAULT_SIM_REQUESTS; a trace: all of it) are counted. The result's notes say what the run should
    be read with: what was chosen for the inputs not given (TP, engine profile), requests longer than the
    model's context (engines refuse them)."""
    catalog = catalog or load_catalog()
    concurrency = inputs.count(concurrency, "concurrency", inputs.MAX_CONCURRENCY)
    rate = inputs.positive(rate, "rate", inputs.MAX_RATE_REQ_S)
    batch_size = inputs.count(batch_size, "batch_size", inputs.MAX_CONCURRENCY)
    burstiness = inputs.positive(burstiness, "burstiness", 100.0)
    requests = inputs.count(requests, "requests", MAX_SIM_REQUESTS)
    if trace is not None and (workload is not None or input_len is not None or output_len is not None):
        given = "workload" if workload is not None else "input_len" if input_len is not None else "output_len"
        raise PlannerError("a trace carries its own request lengths: leave the workload and lengths out", given)
    work = None if trace is not None else Workload.resolve(workload, input_len, output_len)
    stream = build_stream(work, requests, concurrency, rate, batch_size, burstiness, trace)
    if work is None:
        work = Workload(name="trace", input_lens=stream.trace_input_lens, output_lens=stream.trace_output_lens)
    notes: list[str] = []
    deployment, _ = resolve_deployment(
        catalog, model, gpus, tp, pp, dtype or "bf16", kv_dtype, engine, network, gpus_per_node,
        work.max_request_tokens, notes,
    )  # fmt: skip
    beyond = context_note(deployment.model.id, deployment.model.max_position_embeddings, work)
    if beyond is not None:
        notes.append(beyond)
    slo = Slo(ttft_s=ttft, tpot_s=tpot) if ttft is not None or tpot is not None else None
    if strategy == "disaggregated":
        raise PlannerError(
            "a disaggregated deployment has two pools: simulate it from a plan "
            "(tdplan recommend --strategy disaggregated --json > plan.json; tdplan simulate --plan plan.json)",
            "strategy",
        )
    ctx = build_context(catalog, model, gpus, work, dtype or "bf16", kv_dtype, engine, network, gpus_per_node)
    count = deployment.replicas
    if strategy == "macro-instance":  # the layout counts macros: the instances the GPUs hold, in whole macros
        size = int((knobs or {}).get("macro_size", 3))
        count = deployment.replicas // size
        if count < 1:
            raise PlannerError(
                f"a macro of {size} instances of TP {deployment.tp_size} x PP {deployment.pp_size} needs "
                f"{size * deployment.gpus_per_replica} GPUs: give more GPUs or a smaller macro_size",
                "gpus",
            )
    layout = PoolLayout(Role.serve, deployment.tp_size, deployment.pp_size, count)
    pools, transfer = sim_pools(ctx, strategy, knobs, [layout], slo=slo)
    result = simulate_pools(pools, stream, transfer, slo=slo, seed=seed, progress=progress)
    return result.model_copy(update={"notes": tuple(notes)})


def simulate_plan(
    plan_json: Mapping[str, Any],
    requests: int | None = None,
    seed: int = 0,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
) -> list[tuple[list[dict[str, Any]], SimResult]]:
    """Each instance type of a `recommend --json` plan (its pools: one serving pool, or a disaggregated type's
    prefill and decode pools together) simulated under Poisson arrivals at the rate the plan sends it (offline,
    all requests queued at once, for a plan of the throughput objective), with the plan's workload and SLOs.
    Returns the plan's instance entries of each type with its simulation; `requests` per type (default
    DEFAULT_SIM_REQUESTS)."""
    requests = inputs.count(requests, "requests", MAX_SIM_REQUESTS) or DEFAULT_SIM_REQUESTS
    try:
        instances = plan_json["plan"]["instances"]
        inputs_json, workload = plan_json["inputs"], plan_json["workload"]
        model = inputs_json["model"]
    except (KeyError, TypeError):
        raise PlannerError("not a plan from `tdplan recommend --json`: no plan.instances / inputs", "plan") from None
    unknown = sorted({str(i.get("strategy")) for i in instances} - set(SIMULATED_STRATEGIES))
    if unknown:
        raise PlannerError(
            f"the plan names strategy {', '.join(unknown)}, which tdplan does not know "
            f"(it runs {', '.join(SIMULATED_STRATEGIES)}): write the plan with `tdplan recommend --json`",
            "plan",
        )
    catalog = catalog or load_catalog()
    work = _plan_workload(plan_json.get("workload_csv"), workload)
    slo_json = plan_json.get("slo") or {}
    slo = Slo(ttft_s=slo_json.get("ttft_s"), tpot_s=slo_json.get("tpot_s")) if slo_json else None
    # A throughput plan is judged by its offline capacity: every request queued at once, as planned.
    offline_plan = plan_json["plan"].get("objective") == "throughput"
    types: dict[int, list[dict[str, Any]]] = {}
    for entry in instances:
        types.setdefault(int(entry.get("type_id", 0)), []).append(entry)
    out = []
    for entries in types.values():
        entries.sort(key=lambda e: [role.value for role in Role].index(e["role"]))
        first = entries[0]
        ctx = build_context(
            catalog,
            model,
            f"{sum(e['gpus'] for e in entries)}x{first['gpu']}",
            work,
            inputs_json.get("dtype") or "bf16",
            inputs_json.get("kv_dtype"),
            inputs_json.get("engine"),
            inputs_json.get("network"),
            inputs_json.get("gpus_per_node"),
        )
        layouts = [PoolLayout(Role(e["role"]), e["tp"], e["pp"], e["count"]) for e in entries]
        pools, transfer = sim_pools(ctx, first["strategy"], first["knobs"], layouts, first["detail"], slo)
        rate = first["planned_rate_req_s"] * first["count"]
        stream = poisson(rate, requests, work) if rate > 0 and not offline_plan else offline(requests, work)
        out.append((entries, simulate_pools(pools, stream, transfer, slo=slo, seed=seed, progress=progress)))
    return out


def _plan_workload(csv: Any, workload: str) -> Workload:
    """The plan's requests: the CSV it was planned on (unchanged since), else its preset or fixed lengths by name."""
    if csv is None:
        return Workload.resolve(
            workload if not str(workload).startswith("fixed ") else None, _fixed(workload, 0), _fixed(workload, 1)
        )
    try:
        source = CsvSource.model_validate(csv)
    except ValidationError:
        raise PlannerError(
            "the plan's workload_csv needs a path and a sha256: write the plan with `tdplan recommend --json`", "plan"
        ) from None
    try:
        work = Workload.from_csv(Path(source.path))
    except PlannerError as e:
        raise PlannerError(f"the plan's workload CSV: {e.problem}: restore it, or plan again on it", "plan") from None
    if work.csv is None or work.csv.sha256 != source.sha256:
        raise PlannerError(
            f"the workload CSV {source.path} has changed since the plan was written: restore it, or plan again on it "
            "with `tdplan recommend --json`",
            "plan",
        )
    return work


def _fixed(workload: str, index: int) -> int | None:
    """Lengths of a `fixed I/O` workload name, else None."""
    text = str(workload)
    if not text.startswith("fixed "):
        return None
    return int(text.removeprefix("fixed ").split("/")[index])


def load_plan(path: str | Path) -> dict[str, Any]:
    """A plan file written by `tdplan recommend --json`."""
    text = inputs.read_text(Path(path), "plan", "plan file", inputs.MAX_CONFIG_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlannerError(
            f"{path} is not JSON (line {err.lineno}): write it with `tdplan recommend --json`", "plan"
        ) from None
    if not isinstance(data, dict):
        raise PlannerError(f"{path} does not hold a JSON object from `tdplan recommend --json`", "plan")
    return data
