"""GPU, link, network and cluster specs.

Catalog files (`hardware/gpus/*.yaml`) keep datasheet units in their keys (GB/s, TFLOPS, GiB); the properties
here convert them to SI once (bytes, bytes/s, FLOP/s, seconds) so that formulas only ever see SI.
Datasheet peaks live here; measured efficiency factors live in the calibration profiles (`planner.specs.engine`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.errors import PlannerError
from planner.specs.inputs import MAX_GPUS, MAX_GPUS_PER_NODE, MAX_NETWORK_PORTS
from planner.specs.memo import IdentityMemo
from planner.specs.precision import Dtype

GIB = 1024**3
GB = 1e9
TERA = 1e12


class Frozen(BaseModel):
    """Base of every catalog spec: immutable, unknown keys rejected, no infinities or NaNs."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def __hash__(self) -> int:
        """pydantic's hash of the field values, remembered per object. Specs key the cost model's caches, and
        hashing a deployment anew walks its whole catalog entry (model, GPU and links, engine, kernel constants)
        on every lookup. The object is immutable, so its hash cannot change; a copy with updates is a new object."""
        value = _HASHES.get(self)
        if value is None:
            getter = _FIELD_GETTERS.get(type(self))
            if getter is None:
                fields = tuple(type(self).model_fields)
                getter = _FIELD_GETTERS[type(self)] = operator.itemgetter(*fields) if fields else (lambda _: 0)
            value = _HASHES.put(self, hash(getter(self.__dict__)))
        return value


_HASHES: IdentityMemo[int] = IdentityMemo()
_FIELD_GETTERS: dict[type[Frozen], Callable[[dict[str, Any]], Any]] = {}


# Physical bounds on catalog numbers: well above any GPU sold, low enough to catch a slipped unit or exponent.
MAX_MEMORY_GIB = 1024.0
MAX_MEMORY_BW_GB_S = 100_000.0
MAX_TFLOPS = 100_000.0
MAX_LINK_GB_S = 10_000.0
MAX_LATENCY_US = 1e6


class Architecture(str, Enum):
    """GPU architecture family: the unit that calibration constants generalise over."""

    ampere = "ampere"
    ada = "ada"
    hopper = "hopper"
    blackwell = "blackwell"
    cdna3 = "cdna3"


class LinkKind(str, Enum):
    """Intra-node GPU-to-GPU link technologies."""

    pcie3 = "pcie3"
    pcie4 = "pcie4"
    pcie5 = "pcie5"
    pcie6 = "pcie6"
    nvlink3 = "nvlink3"
    nvlink4 = "nvlink4"
    nvlink5 = "nvlink5"
    nvlink_bridge = "nvlink-bridge"
    infinity_fabric = "infinity-fabric"

    @property
    def is_pcie(self) -> bool:
        return self.value.startswith("pcie")


class LinkSpec(Frozen):
    """The link a GPU uses to reach its peers inside a node.

    `bw_gb_s` is the theoretical bandwidth per GPU per direction (GB/s, 1e9 bytes/s).
    `p2p` says whether GPUs exchange data directly over PCIe; without it traffic bounces through host memory.
    `max_peers` limits the group that enjoys this link (an NVLink bridge joins pairs only); a larger TP group on
    such GPUs falls back to the host link.
    """

    kind: LinkKind
    bw_gb_s: float = Field(gt=0, le=MAX_LINK_GB_S)
    p2p: bool = True
    max_peers: int | None = Field(default=None, ge=2, le=MAX_GPUS_PER_NODE, strict=True)
    latency_us: float = Field(default=10.0, gt=0, le=MAX_LATENCY_US)
    source: str

    @property
    def bw_bytes_s(self) -> float:
        return self.bw_gb_s * GB

    @property
    def latency_s(self) -> float:
        return self.latency_us * 1e-6


class DenseTflops(Frozen):
    """Dense (no sparsity) tensor-core peaks in TFLOPS (TOPS for int8); None where the GPU lacks the format."""

    fp16: float = Field(gt=0, le=MAX_TFLOPS)
    bf16: float = Field(gt=0, le=MAX_TFLOPS)
    fp8: float | None = Field(default=None, gt=0, le=MAX_TFLOPS)
    int8: float | None = Field(default=None, gt=0, le=MAX_TFLOPS)
    fp4: float | None = Field(default=None, gt=0, le=MAX_TFLOPS)


class GpuSpec(Frozen):
    """One GPU model, as sold. Numbers are datasheet values with their source."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    vendor: str = "NVIDIA"
    architecture: Architecture
    form_factor: str
    memory_gib: float = Field(gt=0, le=MAX_MEMORY_GIB)
    memory_bw_gb_s: float = Field(gt=0, le=MAX_MEMORY_BW_GB_S)
    dense_tflops: DenseTflops
    sm_count: int | None = Field(default=None, gt=0, le=100_000, strict=True)
    tdp_w: float | None = Field(default=None, gt=0, le=100_000)
    interconnect: LinkSpec
    host_link: LinkSpec
    gpus_per_node: int = Field(default=8, ge=1, le=MAX_GPUS_PER_NODE, strict=True)
    source: str
    notes: str = ""

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * GIB

    @property
    def memory_bw_bytes_s(self) -> float:
        return self.memory_bw_gb_s * GB

    def gemm_flops_s(self, weight_dtype: Dtype) -> float:
        """Peak dense FLOP/s of a GEMM whose weights are stored as `weight_dtype`.

        fp8 and int8 weights run on the matching tensor-core rate where the GPU has it (W8A8); otherwise, and
        always for int4, they are dequantised and the GEMM runs at the fp16 rate (weight-only quantisation).
        """
        tflops = self.dense_tflops
        if weight_dtype == Dtype.fp8 and tflops.fp8 is not None:
            return tflops.fp8 * TERA
        if weight_dtype == Dtype.int8 and tflops.int8 is not None:
            return tflops.int8 * TERA
        if weight_dtype == Dtype.bf16:
            return tflops.bf16 * TERA
        return tflops.fp16 * TERA

    def attention_flops_s(self) -> float:
        """Peak FLOP/s of attention kernels, which run at 16-bit precision."""
        return self.dense_tflops.fp16 * TERA


class NetworkKind(str, Enum):
    """Inter-node network technologies, by per-port line rate."""

    gbe10 = "10gbe"
    gbe25 = "25gbe"
    gbe100 = "100gbe"
    gbe200 = "200gbe"
    gbe400 = "400gbe"
    ib_hdr = "ib-hdr"
    ib_ndr = "ib-ndr"
    ib_xdr = "ib-xdr"

    @property
    def gbit_s(self) -> float:
        """Line rate of one port, Gb/s."""
        return _NETWORK_GBIT_S[self]

    @property
    def latency_s(self) -> float:
        """One-way latency of a small message: RDMA over InfiniBand about 2 us, TCP/RoCE Ethernet about 10 us."""
        return 2e-6 if self.value.startswith("ib") else 10e-6


_NETWORK_GBIT_S: dict[NetworkKind, float] = {
    NetworkKind.gbe10: 10,
    NetworkKind.gbe25: 25,
    NetworkKind.gbe100: 100,
    NetworkKind.gbe200: 200,
    NetworkKind.gbe400: 400,
    NetworkKind.ib_hdr: 200,
    NetworkKind.ib_ndr: 400,
    NetworkKind.ib_xdr: 800,
}


class NetworkSpec(Frozen):
    """The network between nodes: `ports_per_node` ports of one kind."""

    kind: NetworkKind
    ports_per_node: int = Field(default=1, ge=1, le=MAX_NETWORK_PORTS)

    @property
    def node_bw_bytes_s(self) -> float:
        """Bytes/s one node can send (per direction): ports x line rate / 8 bits per byte."""
        return self.ports_per_node * self.kind.gbit_s * 1e9 / 8

    @property
    def label(self) -> str:
        return self.kind.value if self.ports_per_node == 1 else f"{self.ports_per_node}x{self.kind.value}"

    @classmethod
    def parse(cls, text: str) -> NetworkSpec:
        """Read `100gbe`, `ib-ndr` or `8xib-ndr` (eight ports per node)."""
        if not isinstance(text, str):
            raise PlannerError(f"expected text such as 100gbe or 8xib-ndr, got {text!r}", "network")
        match = re.fullmatch(r"\s*(?:(\d+)\s*x\s*)?([a-z0-9-]+)\s*", text.lower())
        kinds = {k.value: k for k in NetworkKind}
        if match is None or match.group(2) not in kinds:
            choices = ", ".join(kinds)
            raise PlannerError(
                f"unknown network '{text}': use one of {choices}, optionally as PORTSxNAME (8xib-ndr)", "network"
            )
        ports = int(match.group(1) or 1)
        if not 1 <= ports <= MAX_NETWORK_PORTS:
            raise PlannerError(
                f"'{text}' asks for {ports} ports per node: give 1 to {MAX_NETWORK_PORTS}, e.g. 8xib-ndr", "network"
            )
        return cls(kind=kinds[match.group(2)], ports_per_node=ports)


DEFAULT_NETWORK = NetworkSpec(kind=NetworkKind.gbe100)


class GpuPool(Frozen):
    """What `--gpus 32xL20` says before the GPU name is looked up: a count and a name."""

    count: int = Field(ge=1, le=MAX_GPUS)
    gpu_name: str

    @classmethod
    def parse(cls, text: str) -> GpuPool:
        """Read `8xL20`, `8 x h100` or plain `L20` (one GPU); at most MAX_GPUS GPUs."""
        if not isinstance(text, str):
            raise PlannerError(f"expected text such as 8xL20, got {text!r}", "gpus")
        example = "write COUNTxGPU, for example 8xH100 (see `tdplan hardware list`)"
        match = re.fullmatch(r"\s*(?:([-+]?[0-9.eE+]+)\s*[xX*]\s*)?([A-Za-z0-9][A-Za-z0-9_.\- ]*?)?\s*", text)
        if match is None or not text.strip():
            raise PlannerError(f"cannot read '{text}': {example}", "gpus")
        raw_count, name = match.group(1), match.group(2)
        if name is None:
            raise PlannerError(f"'{text}' names no GPU: {example}", "gpus")
        if raw_count is not None and not re.fullmatch(r"\+?\d+", raw_count):
            raise PlannerError(f"'{text}' asks for {raw_count} GPUs: the count must be a whole number >= 1", "gpus")
        number = int(raw_count or 1)
        if not 1 <= number <= MAX_GPUS:
            raise PlannerError(
                f"'{text}' asks for {number:,} GPUs: give 1 to {MAX_GPUS:,} (the largest cluster tdplan models)",
                "gpus",
            )
        return cls(count=number, gpu_name=name)


class Cluster(Frozen):
    """GPUs of one kind in nodes of `gpus_per_node`, joined by `network`."""

    gpu: GpuSpec
    num_gpus: int = Field(ge=1, le=MAX_GPUS)
    gpus_per_node: int = Field(ge=1, le=MAX_GPUS_PER_NODE)
    network: NetworkSpec = DEFAULT_NETWORK

    @model_validator(mode="after")
    def _whole_nodes(self) -> Cluster:
        if self.num_gpus > self.gpus_per_node and self.num_gpus % self.gpus_per_node:
            raise PlannerError(
                f"{self.num_gpus} GPUs do not fill whole nodes of {self.gpus_per_node}: "
                f"use a multiple of {self.gpus_per_node} GPUs, or set gpus_per_node",
                "gpus",
            )
        return self

    @property
    def num_nodes(self) -> int:
        return max(1, -(-self.num_gpus // self.gpus_per_node))

    @property
    def gpus_in_node(self) -> int:
        """GPUs in one node as deployed (a single partial node holds fewer than gpus_per_node)."""
        return min(self.num_gpus, self.gpus_per_node)
