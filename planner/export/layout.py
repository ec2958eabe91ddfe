"""A `recommend --json` plan read back, and laid out as engine processes on numbered GPUs.

The planner lays each GPU kind's instances out in the order of `plan.instances`, from GPU 0 of node 0 on, every
instance on consecutive GPUs (planner.search.plan.instances); `processes()` repeats that layout, so GPU i of a
kind is GPU i % gpus_per_node of node i // gpus_per_node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from planner.errors import PlannerError
from planner.search.plan import PlannedInstance
from planner.specs.catalog import Catalog
from planner.specs.precision import Dtype

NOT_A_PLAN = "is not a plan from `tdplan recommend --json`"


@dataclass(frozen=True)
class PlanView:
    """What the exporter reads from a plan: the model, precisions and instance groups."""

    model: str  # as the plan's inputs name it (id, alias or config.json)
    dtype: Dtype
    kv_dtype: Dtype | None  # None: the engine's default
    instances: tuple[PlannedInstance, ...]
    strategy: str


@dataclass(frozen=True)
class Process:
    """One engine process: an instance of a group, or one member of a macro instance."""

    label: str  # serve-0, prefill-1, decode-0 ...
    group: int  # index into plan.instances
    index: int  # position among all processes of the plan (sets the ports)
    instance: PlannedInstance
    node: int  # the first node it runs on (per GPU kind)
    nodes: int  # nodes it spans
    host: str  # the node's address: localhost on a one-node plan, else a name to replace
    gpu_ids: tuple[int, ...]  # GPUs on `node`
    gpu_memory_gib: float

    @property
    def role(self) -> str:
        return self.instance.role


def read_plan(plan_json: Mapping[str, Any]) -> PlanView:
    """The parts of a `recommend --json` payload the exporter needs; PlannerError (param "plan") otherwise."""
    try:
        plan, inputs = plan_json["plan"], plan_json["inputs"]
        raw_instances, model = plan["instances"], inputs["model"]
    except (KeyError, TypeError):
        raise PlannerError(f"{NOT_A_PLAN}: no plan.instances / inputs.model", "plan") from None
    try:
        instances = TypeAdapter(list[PlannedInstance]).validate_python(raw_instances)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlannerError(f"{NOT_A_PLAN}: plan.instances.{where}: {first['msg']}", "plan") from None
    if not instances:
        raise PlannerError(f"{NOT_A_PLAN}: plan.instances is empty", "plan")
    for i, inst in enumerate(instances):
        if inst.role not in ("serve", "prefill", "decode") or min(inst.tp, inst.pp, inst.count, inst.gpus) < 1:
            raise PlannerError(f"{NOT_A_PLAN}: plan.instances.{i} has role {inst.role!r}, tp/pp/count/gpus", "plan")
        if inst.gpus % inst.count or (inst.gpus // inst.count) % (inst.tp * inst.pp):
            raise PlannerError(f"{NOT_A_PLAN}: plan.instances.{i}: {inst.gpus} GPUs for {inst.count}", "plan")
    if not isinstance(model, str):
        raise PlannerError(f"{NOT_A_PLAN}: inputs.model is not a string", "plan")
    return PlanView(
        model=model,
        dtype=_dtype(inputs.get("dtype") or "bf16", "dtype"),
        kv_dtype=_dtype(inputs["kv_dtype"], "kv_dtype") if inputs.get("kv_dtype") else None,
        instances=tuple(instances),
        strategy=str(plan.get("strategy", instances[0].strategy)),
    )


def _dtype(value: Any, key: str) -> Dtype:
    try:
        return Dtype(value)
    except ValueError:
        choices = ", ".join(d.value for d in Dtype)
        raise PlannerError(f"{NOT_A_PLAN}: inputs.{key} {value!r} is not one of {choices}", "plan") from None


def processes(view: PlanView, catalog: Catalog, members: Mapping[int, int] | None = None) -> list[Process]:
    """Every engine process of the plan on its node and GPUs. `members[g]`: processes per instance of group g
    (default 1: the instance is one process on all its GPUs; a macro instance's fallback runs one per member)."""
    gpus = {inst.gpu: catalog.gpu(inst.gpu) for inst in view.instances}
    kinds_used: dict[str, int] = {}
    for inst in view.instances:
        kinds_used[inst.gpu] = kinds_used.get(inst.gpu, 0) + inst.gpus
    one_node = len(gpus) == 1 and all(n <= gpus[k].gpus_per_node for k, n in kinds_used.items())
    next_gpu: dict[str, int] = {}
    roles: dict[str, int] = {}
    out: list[Process] = []
    for g, inst in enumerate(view.instances):
        per_node = gpus[inst.gpu].gpus_per_node
        unit_gpus = inst.gpus // inst.count
        parts = (members or {}).get(g, 1)
        for _ in range(inst.count * parts):
            first = next_gpu.get(inst.gpu, 0)
            size = unit_gpus // parts
            next_gpu[inst.gpu] = first + size
            node = first // per_node
            local = tuple(range(first % per_node, first % per_node + min(size, per_node)))
            label = f"{inst.role}-{roles.get(inst.role, 0)}"
            roles[inst.role] = roles.get(inst.role, 0) + 1
            host = "localhost" if one_node else (f"node{node}" if len(gpus) == 1 else f"{inst.gpu}-node{node}")
            out.append(
                Process(
                    label=label,
                    group=g,
                    index=len(out),
                    instance=inst,
                    node=node,
                    nodes=math.ceil(size / per_node),
                    host=host,
                    gpu_ids=local,
                    gpu_memory_gib=gpus[inst.gpu].memory_gib,
                )
            )
    return out
