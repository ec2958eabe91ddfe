"""tdplan: analytical performance model and deployment planner for LLM inference serving.

>>> import planner
>>> est = planner.estimate(model="llama-70b", gpus="8xL20", input_len=1024, output_len=256)
>>> est.tp, round(est.output_throughput_tok_s)

The names below are imported on first use (PEP 562), so that `import planner` and `tdplan --help` do not pay for
numpy, scipy and the cost model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from planner.errors import PlannerError

# Version of the layout of every `--json` output (schema_version, inputs, then the command's fields); bump it
# when a field is renamed or removed.
SCHEMA_VERSION = 1

_LAZY = {
    "CalibrationProfile": "planner.specs.engine",
    "Catalog": "planner.specs.catalog",
    "Cluster": "planner.specs.hardware",
    "Deployment": "planner.specs.deployment",
    "Dtype": "planner.specs.precision",
    "EngineConstants": "planner.specs.engine",
    "EngineSpec": "planner.specs.engine",
    "Estimate": "planner.estimation",
    "GpuPool": "planner.specs.hardware",
    "GpuSpec": "planner.specs.hardware",
    "KernelProfile": "planner.specs.kernels",
    "LinkSpec": "planner.specs.hardware",
    "ModelSpec": "planner.specs.model",
    "NetworkSpec": "planner.specs.hardware",
    "Scenario": "planner.estimation",
    "estimate": "planner.estimation",
    "load_catalog": "planner.specs.catalog",
    "recommend": "planner.recommendation",
    "Recommendation": "planner.recommendation",
    "Plan": "planner.search.plan",
    "compare": "planner.comparison",
    "simulate": "planner.simulation",
    "SimResult": "planner.sim",
}

if TYPE_CHECKING:
    from planner.comparison import compare
    from planner.estimation import Estimate, Scenario, estimate
    from planner.recommendation import Recommendation, recommend
    from planner.search.plan import Plan
    from planner.sim import SimResult
    from planner.simulation import simulate
    from planner.specs.catalog import Catalog, load_catalog
    from planner.specs.deployment import Deployment
    from planner.specs.engine import CalibrationProfile, EngineConstants, EngineSpec
    from planner.specs.hardware import Cluster, GpuPool, GpuSpec, LinkSpec, NetworkSpec
    from planner.specs.kernels import KernelProfile
    from planner.specs.model import ModelSpec
    from planner.specs.precision import Dtype


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'planner' has no attribute {name!r}")


__all__ = [
    "SCHEMA_VERSION",
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
    "Plan",
    "PlannerError",
    "Recommendation",
    "Scenario",
    "SimResult",
    "compare",
    "estimate",
    "load_catalog",
    "recommend",
    "simulate",
]
