"""One configuration to cost: a model on a cluster with a parallel layout, precisions and an engine profile."""

from __future__ import annotations

from pydantic import Field, model_validator

from planner.errors import PlannerError
from planner.specs.engine import EngineConstants, EngineSpec
from planner.specs.hardware import Cluster, Frozen
from planner.specs.kernels import KernelProfile
from planner.specs.model import ModelSpec
from planner.specs.precision import Dtype


class Deployment(Frozen):
    """A model instance of tp_size x pp_size GPUs, replicated over the cluster (data parallel), with the kernel
    constants of its GPU and the constants of its engine."""

    model: ModelSpec
    cluster: Cluster
    tp_size: int = Field(ge=1)
    pp_size: int = Field(ge=1)
    dtype: Dtype
    kv_dtype: Dtype
    engine: EngineSpec
    kernels: KernelProfile  # the GPU's kernel constants (measured, or derived from a measured GPU)
    calibration: EngineConstants  # the engine's fitted host-side constants

    @model_validator(mode="after")
    def _layout_fits(self) -> Deployment:
        model, cluster = self.model, self.cluster
        if model.num_attention_heads % self.tp_size:
            divisors = [t for t in (1, 2, 4, 8, 16) if model.num_attention_heads % t == 0]
            raise PlannerError(
                f"TP {self.tp_size} does not divide the {model.num_attention_heads} attention heads of "
                f"{model.name}: use --tp {' or '.join(map(str, divisors))}"
            )
        if self.pp_size > model.num_hidden_layers:
            raise PlannerError(
                f"PP {self.pp_size} exceeds the {model.num_hidden_layers} layers of {model.name}: lower --pp"
            )
        if self.gpus_per_replica > cluster.num_gpus:
            raise PlannerError(
                f"TP {self.tp_size} x PP {self.pp_size} needs {self.gpus_per_replica} GPUs but --gpus gives "
                f"{cluster.num_gpus}: lower --tp/--pp or add GPUs"
            )
        if self.tp_size > cluster.gpus_per_node and self.tp_size % cluster.gpus_per_node:
            raise PlannerError(
                f"TP {self.tp_size} spans nodes of {cluster.gpus_per_node} GPUs unevenly: "
                f"use a multiple of {cluster.gpus_per_node} or at most {cluster.gpus_per_node}"
            )
        return self

    @property
    def gpus_per_replica(self) -> int:
        return self.tp_size * self.pp_size

    @property
    def replicas(self) -> int:
        """Data-parallel copies of the instance that the cluster holds."""
        return self.cluster.num_gpus // self.gpus_per_replica

    @property
    def tp_spans_nodes(self) -> bool:
        return self.tp_size > self.cluster.gpus_per_node

    @property
    def pp_spans_nodes(self) -> bool:
        return self.gpus_per_replica > self.cluster.gpus_per_node
