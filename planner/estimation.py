"""`planner.estimate()`: one configuration, no search.

Resolves names against the catalog, picks the smallest TP that fits when none is given, costs memory and
iterations, and runs the colocated continuous-batching model under the requested scenario.
"""

from __future__ import annotations

import math
from enum import Enum

from pydantic import BaseModel, ConfigDict

from planner.cost.iteration import iteration_cost
from planner.cost.memory import MemoryBreakdown, memory_breakdown
from planner.cost.ops import BatchShape
from planner.errors import PlannerError
from planner.specs import inputs
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.deployment import Deployment
from planner.specs.engine import EngineSpec
from planner.specs.hardware import Cluster, GpuSpec
from planner.specs.model import ModelSpec
from planner.specs.precision import Dtype, resolve_dtypes
from planner.specs.workload import Workload, context_note
from planner.strategies import continuous


class Scenario(str, Enum):
    offline = "offline"  # every request queued at once
    concurrency = "concurrency"  # closed loop of C clients
    rate = "rate"  # Poisson arrivals
    static_batch = "static-batch"  # B requests prefilled together and decoded together to output_len


class Estimate(BaseModel):
    """Predicted performance of one configuration. Times in seconds, throughputs summed over replicas."""

    model_config = ConfigDict(frozen=True)

    model: str
    model_name: str
    gpu: str
    gpu_name: str
    num_gpus: int
    num_nodes: int
    network: str
    tp: int
    pp: int
    replicas: int
    dtype: str
    kv_dtype: str
    engine: str
    calibration: str  # the engine whose fitted constants apply (hardware/calibration/<engine>.yaml)
    kernel_basis: str  # where the GPU's kernel constants come from: measured, derived or extrapolated
    input_len: int
    output_len: int
    scenario: Scenario
    concurrency: float | None
    rate_req_s: float | None
    num_requests: int | None
    output_throughput_tok_s: float
    request_throughput_req_s: float
    ttft_s: float | None  # None when the arrival rate exceeds capacity (unstable queue)
    tpot_s: float
    batch_size: float
    kv_capacity_tokens: int
    prefill_time_s: float
    decode_step_time_s: float
    memory_gib: dict[str, float]
    bottleneck: str
    stable: bool
    latency_s: float | None = None  # static batch: end-to-end latency of the whole batch
    total_throughput_tok_s: float | None = None  # static batch: B x (input + output) / latency
    method: str = "analytic"  # "simulated": closed-loop and Poisson figures from the discrete-event simulator
    ttft_p90_s: float | None = None  # simulated scenarios only
    ttft_p99_s: float | None = None
    tpot_p90_s: float | None = None
    tpot_p99_s: float | None = None
    analytic: dict[str, float | None] | None = None  # the fast formulas' figures beside the simulated ones
    expected_error_pct: float | None = None  # held-out validation error of this engine on this GPU family
    calibration_basis: str = ""  # what the expected error and the constants rest on
    notes: list[str] = []


def calibration_basis(catalog: Catalog, deployment: Deployment) -> tuple[float | None, str]:
    """The expected error of a prediction on this deployment (the engine's median held-out validation error
    on the GPU's architecture family) and a sentence saying what it rests on."""
    gpu, engine = deployment.cluster.gpu, deployment.engine
    family = gpu.architecture.value
    kernels = f"kernel constants {deployment.kernels.basis_label}"
    errors = catalog.calibration(engine.id).expected_error_pct
    if family not in errors:
        return None, f"uncalibrated: no measurements of {engine.name} on {family} GPUs or this vendor; {kernels}"
    return errors[family], f"{engine.name} on {family} GPUs, held-out validation error; {kernels}"


def default_engine(catalog: Catalog, gpu: GpuSpec) -> EngineSpec:
    """The engine profile with the most published serving measurements on this GPU, then on its architecture
    family, then overall (ties broken by name): the rows its expected error is measured on (forward-time
    profiles run no engine and do not count)."""
    from planner.validation.measurements import engine_gpu_metrics

    def evidence(engine_id: str) -> tuple[int, int, int]:
        rows = [
            row_gpu
            for row_engine, row_gpu, metric in engine_gpu_metrics()
            if row_engine == engine_id and row_gpu in catalog.gpus and metric != "forward_time_s"
        ]
        same_gpu = sum(row_gpu == gpu.id for row_gpu in rows)
        same_family = sum(catalog.gpus[row_gpu].architecture == gpu.architecture for row_gpu in rows)
        return same_gpu, same_family, len(rows)

    engines = [e for e in sorted(catalog.engines) if e in catalog.calibrations]
    if not engines:
        raise PlannerError(
            f"the catalog at {catalog.root} has no calibrated engine profile: it needs "
            "hardware/engines/*.yaml and hardware/calibration/*.yaml (run `tdplan calibrate --write`)"
        )
    return catalog.engines[max(engines, key=evidence)]


def _smallest_fitting_tp(
    catalog: Catalog,
    model: ModelSpec,
    cluster: Cluster,
    pp: int,
    dtype: Dtype,
    kv_dtype: Dtype,
    engine: EngineSpec,
    tokens_per_request: int,
) -> int:
    limit = min(cluster.gpus_in_node, cluster.num_gpus // pp) if pp <= cluster.num_gpus else 0
    tried = []
    for tp in (1, 2, 4, 8, 16, 32, 64):
        if tp > limit or model.num_attention_heads % tp:
            continue
        tried.append(tp)
        deployment = catalog.deployment(model, cluster, tp, pp, dtype, kv_dtype, engine)
        try:
            if memory_breakdown(deployment).kv_capacity_tokens >= tokens_per_request:
                return tp
        except PlannerError:
            continue
    largest = max(tried, default=1)
    deployment = catalog.deployment(model, cluster, largest, pp, dtype, kv_dtype, engine)
    memory_breakdown(deployment)  # raises with the memory needed when even the largest TP does not fit
    raise PlannerError(
        f"{model.name} fits on {cluster.gpu.name} at TP {largest} x PP {pp} but its KV cache cannot hold one "
        f"request of {tokens_per_request} tokens: shorten the request, raise --pp or use more GPUs"
    )


def resolve_names(
    catalog: Catalog,
    model: str | ModelSpec,
    gpus: str | Cluster,
    dtype: str | Dtype,
    kv_dtype: str | Dtype | None,
    engine: str | None,
    network: str | None,
    gpus_per_node: int | None,
    notes: list[str],
) -> tuple[ModelSpec, Cluster, EngineSpec, Dtype, Dtype]:
    """The model, cluster, engine profile (by evidence when `engine` is None) and weight and KV formats a user's
    names describe; what was chosen or resolved for them is appended to `notes`."""
    if isinstance(model, str):
        spec = catalog.model(model)
        if spec.id != model.strip().lower():
            notes.append(f"model '{model}' resolved to {spec.name} ({spec.id})")
    else:
        spec = model
    cluster = catalog.cluster(gpus, network, gpus_per_node) if isinstance(gpus, str) else gpus
    engine_spec = catalog.engine(engine) if engine else default_engine(catalog, cluster.gpu)
    weight_dtype, kv = resolve_dtypes(dtype, kv_dtype, engine_spec.fp8_kv_cache_with_fp8_weights)
    gpu_flops = cluster.gpu.dense_tflops
    if (weight_dtype is Dtype.fp8 and gpu_flops.fp8 is None) or (weight_dtype is Dtype.int8 and gpu_flops.int8 is None):
        notes.append(
            f"{cluster.gpu.name} has no {weight_dtype.value} tensor-core rate: {weight_dtype.value} "
            "weights are dequantised and GEMMs run at the 16-bit rate (weight-only)"
        )
    if engine is None:
        notes.append(
            f"engine profile: {engine_spec.name}, the one with the most published serving measurements on "
            f"{cluster.gpu.name} or its family (choose with --engine)"
        )
    return spec, cluster, engine_spec, weight_dtype, kv


def resolve_deployment(
    catalog: Catalog,
    model: str | ModelSpec,
    gpus: str | Cluster,
    tp: int | None,
    pp: int | None,
    dtype: str | Dtype,
    kv_dtype: str | Dtype | None,
    engine: str | None,
    network: str | None,
    gpus_per_node: int | None,
    tokens_per_request: int,
    notes: list[str],
) -> tuple[Deployment, MemoryBreakdown]:
    """The deployment a user's names describe (the smallest TP within a node that fits when `tp` is None) and
    its memory; what was chosen or resolved for them is appended to `notes`."""
    spec, cluster, engine_spec, weight_dtype, kv = resolve_names(
        catalog, model, gpus, dtype, kv_dtype, engine, network, gpus_per_node, notes
    )
    pp = pp or 1
    if tp is None:
        tp = _smallest_fitting_tp(catalog, spec, cluster, pp, weight_dtype, kv, engine_spec, tokens_per_request)
        notes.append(f"TP {tp} chosen: the smallest TP within a node at which the model fits (PP {pp})")
    deployment = catalog.deployment(spec, cluster, tp, pp, weight_dtype, kv, engine_spec)
    memory = memory_breakdown(deployment)
    return deployment, memory


def estimate(
    model: str | ModelSpec,
    gpus: str | Cluster,
    tp: int | None = None,
    pp: int | None = None,
    dtype: str | Dtype = Dtype.bf16,
    input_len: int = 1024,
    output_len: int = 256,
    concurrency: float | None = None,
    rate: float | None = None,
    *,
    batch_size: int | None = None,
    analytic: bool = False,
    kv_dtype: str | Dtype | None = None,
    engine: str | None = None,
    network: str | None = None,
    gpus_per_node: int | None = None,
    num_requests: int = 1000,
    catalog: Catalog | None = None,
) -> Estimate:
    """Predict throughput, latency and memory of one configuration.

    model: catalog id/alias, a config.json path, or a ModelSpec. gpus: `8xL20`-style text or a Cluster.
    No concurrency, rate or batch_size: offline (all `num_requests` queued). concurrency: closed loop of C
    clients. rate: Poisson arrivals at `rate` requests/s. Both are split evenly over the data-parallel replicas.
    batch_size: one static batch of B requests on one instance, prefilled together and decoded together.
    Closed-loop and Poisson figures come from the discrete-event simulator (planner.sim: `num_requests`
    requests, seed 0; a closed loop first issues C warm-up requests), with the fast formulas' beside them under
    `analytic`; analytic=True gives the formulas alone.
    """
    catalog = catalog or load_catalog()
    notes: list[str] = []
    for value, param in ((input_len, "input_len"), (output_len, "output_len"), (num_requests, "num_requests")):
        if value is None:
            raise PlannerError("give a whole number, not None", param)
    input_len = inputs.count(input_len, "input_len", inputs.MAX_REQUEST_TOKENS) or 0
    output_len = inputs.count(output_len, "output_len", inputs.MAX_REQUEST_TOKENS) or 0
    concurrency = inputs.count(concurrency, "concurrency", inputs.MAX_CONCURRENCY)
    rate = inputs.positive(rate, "rate", inputs.MAX_RATE_REQ_S)
    tp = inputs.count(tp, "tp", inputs.MAX_GPUS)
    pp = inputs.count(pp, "pp", inputs.MAX_GPUS)
    num_requests = inputs.count(num_requests, "num_requests", inputs.MAX_NUM_REQUESTS) or 0
    gpus_per_node = inputs.count(gpus_per_node, "gpus_per_node", inputs.MAX_GPUS_PER_NODE)
    batch_size = inputs.count(batch_size, "batch_size", inputs.MAX_CONCURRENCY)
    if sum(x is not None for x in (concurrency, rate, batch_size)) > 1:
        raise PlannerError(
            "give one of concurrency (a closed loop), rate (Poisson arrivals) and batch_size (a static batch), "
            "not several",
            "batch_size" if batch_size is not None else "rate",
        )
    if not isinstance(model, str | ModelSpec):
        raise PlannerError(f"expected a model id, a config.json path or a ModelSpec, got {model!r}", "model")
    if not isinstance(gpus, str | Cluster):
        raise PlannerError(f"expected text such as 8xL20 or a Cluster, got {gpus!r}", "gpus")
    if engine is not None:
        catalog.engine(engine)  # an empty or unknown name is an error, not the default profile
    tokens_per_request = input_len + output_len
    deployment, memory = resolve_deployment(
        catalog, model, gpus, tp, pp, dtype, kv_dtype, engine, network, gpus_per_node, tokens_per_request, notes
    )
    tp, pp, cluster = deployment.tp_size, deployment.pp_size, deployment.cluster
    model_spec = deployment.model
    beyond = context_note(model_spec.id, model_spec.max_position_embeddings, Workload.fixed(input_len, output_len))
    if beyond is not None:
        notes.append(beyond)
    if batch_size is not None and memory.kv_capacity_tokens < batch_size * tokens_per_request:
        raise PlannerError(
            f"a static batch of {batch_size} x {tokens_per_request} tokens needs more KV cache than the "
            f"{memory.kv_capacity_tokens} tokens TP {tp} x PP {pp} holds: lower --batch-size or raise --tp/--pp"
        )
    if memory.kv_capacity_tokens < tokens_per_request:
        raise PlannerError(
            f"one request of {tokens_per_request} tokens needs more KV cache than the "
            f"{memory.kv_capacity_tokens} tokens TP {tp} x PP {pp} holds: raise --tp/--pp or shorten it"
        )
    if cluster.num_gpus % deployment.gpus_per_replica:
        notes.append(
            f"{cluster.num_gpus % deployment.gpus_per_replica} GPU(s) left idle: "
            f"{cluster.num_gpus} is not a multiple of TP x PP = {deployment.gpus_per_replica}"
        )
    expected, basis = calibration_basis(catalog, deployment)
    result = _serve(deployment, memory, input_len, output_len, concurrency, rate, batch_size, num_requests, notes)
    if not analytic and result.scenario in (Scenario.concurrency, Scenario.rate) and result.stable:
        result = _simulated(result, deployment, concurrency, rate, num_requests)
    return result.model_copy(update={"expected_error_pct": expected, "calibration_basis": basis})


def _simulated(
    result: Estimate, deployment: Deployment, concurrency: int | None, rate: float | None, num_requests: int
) -> Estimate:
    """The estimate with its throughput and latencies replaced by the simulator's for the same scenario."""
    from planner.sim import closed_loop, poisson, simulate

    workload = Workload.fixed(result.input_len, result.output_len)
    if concurrency is not None:
        stream = closed_loop(int(concurrency), num_requests, workload, warmup_requests=int(concurrency))
    else:
        assert rate is not None
        stream = poisson(rate, num_requests, workload)
    sim = simulate(deployment, stream, seed=0)
    figures = ("output_throughput_tok_s", "request_throughput_req_s", "ttft_s", "tpot_s")
    # A stable open stream is served at its arrival rate in steady state; the simulator's run-average throughput
    # also counts the ramp-up and the drain after the last arrival. A closed loop's throughput is the run's.
    served_req_s = rate if rate is not None else sim.request_throughput_req_s
    return result.model_copy(
        update={
            "method": "simulated",
            "analytic": {name: getattr(result, name) for name in figures},
            "output_throughput_tok_s": served_req_s * result.output_len
            if rate is not None
            else sim.output_throughput_tok_s,
            "request_throughput_req_s": served_req_s,
            "ttft_s": sim.ttft_s.mean,
            "tpot_s": sim.tpot_s.mean,
            "ttft_p90_s": sim.ttft_s.p90,
            "ttft_p99_s": sim.ttft_s.p99,
            "tpot_p90_s": sim.tpot_s.p90,
            "tpot_p99_s": sim.tpot_s.p99,
        }
    )


def _serve(
    deployment: Deployment,
    memory: MemoryBreakdown,
    input_len: int,
    output_len: int,
    concurrency: float | None,
    rate: float | None,
    batch_size: int | None,
    num_requests: int,
    notes: list[str],
) -> Estimate:
    replicas = deployment.replicas
    busy_replicas: float = replicas  # replicas with work: a request (and a client) runs on one replica at a time
    limit = continuous.batch_limit(deployment, [input_len], [output_len], memory.kv_capacity_tokens)
    max_batch = limit.max_batch
    latency_s = total_tok_s = None
    if batch_size is not None:
        scenario = Scenario.static_batch
        point = continuous.static_batch(deployment, input_len, output_len, batch_size)
        latency_s = batch_size / point.request_rate_req_s
        total_tok_s = batch_size * (input_len + output_len) / latency_s
        if replicas > 1:
            notes.append(f"the static batch runs on one instance; the other {replicas - 1} replica(s) stay idle")
        replicas = busy_replicas = 1
    elif rate is not None:
        scenario = Scenario.rate
        # one request length: every request holds its slot for the same time (service_scv 0)
        point = continuous.poisson(
            deployment, input_len, output_len, max_batch, rate / replicas, limit=limit, service_scv=0.0
        )
        if not point.stable:
            notes.append(
                f"--rate {rate:g} req/s exceeds the capacity of "
                f"{point.request_rate_req_s * replicas:.3g} req/s: the queue grows without bound"
            )
    elif concurrency is not None:
        scenario = Scenario.concurrency
        # Fewer clients than replicas leave replicas idle, each busy one serving a single client, rather than
        # a fraction of a client on every replica (which would decode fractions of a sequence per step).
        busy_replicas = min(replicas, concurrency)
        if busy_replicas < replicas:
            notes.append(
                f"{concurrency:g} client(s) keep at most {math.ceil(concurrency)} of the {replicas} replicas busy"
            )
        point = continuous.closed_loop(deployment, input_len, output_len, max_batch, concurrency / busy_replicas, limit)
    else:
        scenario = Scenario.offline
        busy_replicas = min(replicas, num_requests)
        per_replica = math.ceil(num_requests / busy_replicas)
        point = continuous.offline(deployment, input_len, output_len, max_batch, per_replica, limit)
    prefill = iteration_cost(deployment, BatchShape.prefill(input_len))
    decode_part = (output_len - 1) * point.decode_step.time_s
    batch_prefills = 1 if scenario is Scenario.static_batch else point.batch_size  # static: one batched prefill
    prefill_part = batch_prefills * point.prefill_time_s
    bottleneck = point.decode_step.bound if decode_part >= prefill_part else prefill.bound
    cluster = deployment.cluster
    return Estimate(
        model=deployment.model.id,
        model_name=deployment.model.name,
        gpu=cluster.gpu.id,
        gpu_name=cluster.gpu.name,
        num_gpus=cluster.num_gpus,
        num_nodes=cluster.num_nodes,
        network=cluster.network.label,
        tp=deployment.tp_size,
        pp=deployment.pp_size,
        replicas=replicas,
        dtype=deployment.dtype.value,
        kv_dtype=deployment.kv_dtype.value,
        engine=deployment.engine.id,
        calibration=deployment.engine.id,
        kernel_basis=deployment.kernels.basis_label,
        input_len=input_len,
        output_len=output_len,
        scenario=scenario,
        concurrency=concurrency,
        rate_req_s=rate,
        num_requests=num_requests if scenario is Scenario.offline else None,
        output_throughput_tok_s=point.request_rate_req_s * output_len * busy_replicas,
        request_throughput_req_s=point.request_rate_req_s * busy_replicas,
        ttft_s=point.ttft_s if point.stable else None,
        tpot_s=point.tpot_s,
        batch_size=point.batch_size,
        kv_capacity_tokens=memory.kv_capacity_tokens,
        prefill_time_s=prefill.time_s,
        decode_step_time_s=point.decode_step.time_s,
        memory_gib=memory.as_gib(),
        bottleneck=bottleneck.value,
        stable=point.stable,
        latency_s=latency_s,
        total_throughput_tok_s=total_tok_s,
        notes=notes,
    )
