"""tdplan: analytical performance model and deployment planner for LLM inference serving.

>>> import planner
>>> est = planner.estimate(model="llama-70b", gpus="8xL20", input_len=1024, output_len=256)
>>> est.tp, round(est.output_throughput_tok_s)
"""

from planner.errors import PlannerError
from planner.estimate import Estimate, Scenario, estimate
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.deployment import Deployment
from planner.specs.engine import CalibrationProfile, EngineConstants, EngineSpec
from planner.specs.hardware import Cluster, GpuPool, GpuSpec, LinkSpec, NetworkSpec
from planner.specs.kernels import KernelProfile
from planner.specs.model import ModelSpec
from planner.specs.precision import Dtype

__all__ = [
    "CalibrationProfile",
    "Catalog",
    "Cluster",
    "Deployment",
    "Dtype",
    "EngineConstants",
    "EngineSpec",
    "Estimate",
    "GpuPool",
    "GpuSpec",
    "KernelProfile",
    "LinkSpec",
    "ModelSpec",
    "NetworkSpec",
    "PlannerError",
    "Scenario",
    "estimate",
    "load_catalog",
]
