"""Serving-engine profiles: how an engine batches and reserves memory, and its calibrated efficiencies.

`hardware/engines/<id>.yaml` is written by hand from the engines' documented defaults, with sources.
`hardware/calibration/<id>.yaml` is written by `tdplan calibrate` (planner.validation.calibrate), which fits the
efficiency and overhead constants per architecture family to the published measurements and records what it
fitted on. A family with no measurements uses the `default` entry, fitted on every family's rows pooled.
"""

from __future__ import annotations

from pydantic import Field

from planner.specs.hardware import Architecture, Frozen


class EngineSpec(Frozen):
    """Scheduling and memory behaviour of one serving engine, from its documented defaults."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    source: str
    mixed_batching: bool  # prefill tokens share an iteration with running decodes (in-flight/chunked batching)
    max_batch_size: int = Field(ge=1)  # cap on sequences in one iteration
    max_num_tokens: int = Field(ge=1)  # cap on tokens (prefill + decode) in one iteration
    memory_utilization: float = Field(gt=0, le=1)  # share of GPU memory (or of free memory) the engine takes
    kv_fraction_of_free: bool  # memory_utilization applies to the memory left after weights (TensorRT-LLM)
    reserves_full_sequence: bool  # a request holds KV for input + output from admission (no eviction)
    runtime_reserve_gib: float = Field(ge=0)  # CUDA context, NCCL buffers, allocator slack: never KV cache


class Calibration(Frozen):
    """Measured efficiency factors for one (engine, architecture family). All dimensionless or SI.

    compute_eff: share of the dense tensor peak a large GEMM reaches.
    gemm_ridge_scale: how fast GEMM efficiency rises with its rows m (tokens), as a share of the GPU's ridge
        point m_ridge = peak FLOP/s x bytes per weight / (2 x bandwidth), the rows at which a GEMM turns
        compute-bound: eff(m) = compute_eff * (1 - exp(-m / (gemm_ridge_scale * m_ridge))). Small batches
        leave tensor-core tiles idle; measuring m against the ridge point lets one constant serve GPUs of a
        family whose peak-to-bandwidth ratios differ (L20: 138 rows in bf16, L40S: 419).
    memory_bw_eff: share of the datasheet memory bandwidth that streaming weights and activations reaches.
    attention_bw_eff: share of the datasheet bandwidth that attention kernels reach reading a paged KV cache.
    comm_bw_eff: share of the link bandwidth a collective reaches (NCCL bus bandwidth over line rate).
    iteration_overhead_s: fixed cost of one engine iteration (scheduling, sampling, launch of the graph).
    layer_overhead_s: fixed cost per transformer layer per iteration (kernel launches, norms, small kernels).
    seq_layer_overhead_s: cost per sequence per layer per iteration (per-sequence work of paged attention:
        block-table walks, per-sequence thread blocks, split-K reductions), beyond its bytes and FLOPs.
    """

    compute_eff: float = Field(gt=0, le=1)
    gemm_ridge_scale: float = Field(gt=0)
    memory_bw_eff: float = Field(gt=0, le=1)
    attention_bw_eff: float = Field(gt=0, le=1)
    comm_bw_eff: float = Field(gt=0, le=1)
    iteration_overhead_s: float = Field(ge=0)
    layer_overhead_s: float = Field(ge=0)
    seq_layer_overhead_s: float = Field(default=0.0, ge=0)
    fitted_rows: int = Field(ge=0)
    fitted_median_abs_pct_error: float | None = None
    fitted_sources: tuple[str, ...] = ()


class CalibrationProfile(Frozen):
    """What `tdplan calibrate` writes for one engine."""

    engine: str
    generated_by: str
    fitted_on: str
    families: dict[str, Calibration]

    def for_architecture(self, architecture: Architecture) -> tuple[Calibration, str]:
        """The constants for a family and the name of the entry used (the family, or `default`)."""
        if architecture.value in self.families:
            return self.families[architecture.value], architecture.value
        return self.families["default"], "default"
