"""Serving strategies, one module each, behind the interface and registry in `base`.

Importing this package registers every strategy; `get_strategy(name)` returns one, `REGISTRY` lists them.
"""

from planner.strategies import (  # noqa: F401  (importing registers them)
    chunked,
    colocated,
    disaggregated,
    macro_instance,
    phase_resharding,
    sm_partition,
    temporal_pipeline,
    throttled_pipeline,
)
from planner.strategies.base import REGISTRY, get_strategy

__all__ = ["REGISTRY", "get_strategy"]
