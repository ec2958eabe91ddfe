"""Serving-engine profiles: how an engine schedules, fuses kernels and reserves memory, and its fitted constants.

`hardware/engines/<id>.yaml` is written by hand from the engines' documented defaults, with sources and the
version they describe. `hardware/calibration/<id>.yaml` is written by `tdplan calibrate --write`
(planner.validation.calibrate): the engine's few free constants (host-side overheads per iteration), fitted on
latency rows with the per-GPU kernel constants (planner.specs.kernels) held fixed, with what they were fitted on,
their uncertainty, and the validation error per GPU family that every estimate carries.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from planner.specs.hardware import Frozen
from planner.specs.kernels import AllReduceImpl


class EngineSpec(Frozen):
    """Scheduling, kernel and memory behaviour of one serving engine, from its documented defaults."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    source: str
    version: str  # the engine versions these facts describe
    mixed_batching: bool  # prefill tokens share an iteration with running decodes (in-flight/chunked batching)
    max_batch_size: int = Field(ge=1)  # cap on sequences in one iteration
    max_num_tokens: int = Field(ge=1)  # cap on tokens (prefill + decode) in one iteration
    memory_utilization: float = Field(gt=0, le=1)  # share of GPU memory (or of free memory) the engine takes
    kv_fraction_of_free: bool  # memory_utilization applies to the memory left after weights (TensorRT-LLM)
    reserves_full_sequence: bool  # a request holds KV for input + output from admission (no eviction)
    runtime_reserve_gib: float = Field(ge=0)  # CUDA context, NCCL buffers, allocator slack: never KV cache
    allreduce: AllReduceImpl  # who runs the TP all-reduce: the engine's custom kernels, or NCCL
    custom_allreduce_on_pcie: bool  # the engine's custom all-reduce also runs over PCIe (else NCCL there)
    elementwise_kernels_per_layer: int = Field(ge=1)  # norm, rotary, activation... launches after fusions
    fp8_kv_cache_with_fp8_weights: bool  # an fp8 checkpoint's KV cache is fp8 by default
    # Decode-only iterations replay CUDA graphs captured at these batch sizes: a batch runs padded to the next
    # size (larger ones run eagerly). Empty: no padding (graphs off, or one per batch size).
    cuda_graph_batch_sizes: tuple[int, ...] = ()

    @field_validator("cuda_graph_batch_sizes")
    @classmethod
    def _ascending(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if any(size < 1 for size in sizes) or list(sizes) != sorted(set(sizes)):
            raise ValueError("CUDA-graph batch sizes must be positive and strictly ascending")
        return sizes


class EngineConstants(Frozen):
    """The engine's free constants, in seconds: host-side work the kernels do not show.

    iteration_overhead_s: per iteration: scheduling, input preparation, sampling, graph or engine launch.
    per_seq_overhead_s: per sequence per iteration: block tables, sampling and detokenisation of one sequence.
    """

    iteration_overhead_s: float = Field(ge=0)
    per_seq_overhead_s: float = Field(ge=0)


class CalibrationProfile(Frozen):
    """What `tdplan calibrate` writes for one engine.

    constants: the fitted values; uncertainty: one standard error of each (from the fit's Jacobian).
    expected_error_pct: median absolute error of this engine's predictions per GPU architecture family, from
    leave-one-source-out validation (each source predicted by a fit that never saw it); `all` pools them.
    """

    engine: str
    generated_by: str
    fitted_on: str
    constants: EngineConstants
    uncertainty: dict[str, float]
    fitted_rows: int = Field(ge=0)
    fitted_median_abs_pct_error: float | None = None
    fitted_sources: tuple[str, ...] = ()
    expected_error_pct: dict[str, float] = Field(default_factory=dict)
