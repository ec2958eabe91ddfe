"""Communication time: tensor-parallel all-reduce and pipeline-parallel sends over the real link.

Which link carries the traffic:
- inside a node: the GPU's interconnect (NVLink, or PCIe peer-to-peer); a group larger than the link joins
  (NVLink bridges join pairs) uses the PCIe host link; where PCIe peer-to-peer is off (GeForce cards) data
  bounces through host memory: each transfer crosses the host link twice, halving bandwidth and doubling
  latency;
- across nodes: the network (`group_link`).
"""

from __future__ import annotations

from planner.specs.deployment import Deployment
from planner.specs.hardware import Cluster, LinkSpec
from planner.specs.kernels import AllReduceImpl


def _intra_node_link(cluster: Cluster, group_size: int) -> tuple[float, float]:
    """(bytes/s per GPU per direction, latency s) of the link joining `group_size` GPUs inside a node."""
    link: LinkSpec = cluster.gpu.interconnect
    if link.max_peers is not None and group_size > link.max_peers:
        link = cluster.gpu.host_link  # a bridge joins pairs only: the rest of the group talks over PCIe
    if link.kind.is_pcie and not (link.p2p and cluster.gpu.interconnect.p2p):
        return _through_host(link)
    return link.bw_bytes_s, link.latency_s


def _through_host(link: LinkSpec) -> tuple[float, float]:
    """Without peer-to-peer a GPU-to-GPU copy goes device -> host memory -> device: half the bandwidth, twice
    the latency of the host link."""
    return link.bw_bytes_s / 2, 2 * link.latency_s


def group_link(cluster: Cluster, group_size: int, spans_nodes: bool) -> tuple[float, float]:
    """(bytes/s, latency s) of the slowest hop of a ring over `group_size` GPUs.

    Across nodes NCCL runs one ring per NIC, so a multi-node all-reduce reaches a bus bandwidth close to the
    node's aggregate network bandwidth (e.g. 8 x 200 Gb/s HDR gives about 200 GB/s on DGX A100), capped by the
    intra-node link.
    """
    bw_s, latency_s = _intra_node_link(cluster, min(group_size, cluster.gpus_per_node))
    if spans_nodes:
        bw_s = min(bw_s, cluster.network.node_bw_bytes_s)
        latency_s = max(latency_s, cluster.network.kind.latency_s)
    return bw_s, latency_s


def p2p_time_s(message_bytes: float, bw_s: float, latency_s: float, bw_eff: float) -> float:
    """One point-to-point send: latency plus bytes over the attained bandwidth."""
    return message_bytes / (bw_s * bw_eff) + latency_s


def link_efficiency(deployment: Deployment) -> float:
    """Share of a link's line rate that bulk transfers reach on this GPU: the all-reduce bus-bandwidth
    efficiency of the collective library (planner.specs.kernels), capped at 1 (NVLink SHARP can exceed the
    line rate for all-reduce, not for a copy)."""
    return min(1.0, deployment.kernels.allreduce[AllReduceImpl.nccl].bus_bw_eff)


def allreduce_impl(deployment: Deployment) -> AllReduceImpl:
    """Who runs the TP all-reduce: the engine's own path, except over PCIe (or an NVLink bridge that does not
    join the whole group) for an engine whose custom all-reduce needs NVLink (EngineSpec), where NCCL does."""
    engine, gpu = deployment.engine, deployment.cluster.gpu
    link = gpu.interconnect
    over_pcie = link.kind.is_pcie or (link.max_peers is not None and deployment.tp_size > link.max_peers)
    if engine.allreduce is AllReduceImpl.engine and over_pcie and not engine.custom_allreduce_on_pcie:
        return AllReduceImpl.nccl
    return engine.allreduce


def allreduce_link(deployment: Deployment) -> tuple[float, float]:
    """(bytes/s per GPU per direction, latency s beyond the fitted kernel latency) of the TP all-reduce.

    Inside a node the fitted all-reduce constants carry the latency. A group that spans nodes runs a ring over
    the nodes: its bandwidth is capped by the node's network bandwidth, and each of the 2 (nodes - 1) steps
    across nodes pays the network latency."""
    bw_s, latency_s = tp_link(deployment)
    if not deployment.tp_spans_nodes:
        return bw_s, 0.0
    nodes = deployment.tp_size // deployment.cluster.gpus_per_node
    return bw_s, 2 * (nodes - 1) * latency_s


def p2p_link(deployment: Deployment) -> tuple[float, float]:
    """(attained bytes/s, latency s) of the activation send between pipeline stages."""
    bw_s, latency_s = pp_link(deployment)
    return bw_s * link_efficiency(deployment), latency_s


def tp_link(deployment: Deployment) -> tuple[float, float]:
    return group_link(deployment.cluster, deployment.tp_size, deployment.tp_spans_nodes)


def pp_link(deployment: Deployment) -> tuple[float, float]:
    """The link between consecutive pipeline stages: the network once the instance spans nodes (the slowest
    boundary sets the pipeline's pace), else the intra-node link."""
    cluster = deployment.cluster
    if deployment.pp_spans_nodes:
        return cluster.network.node_bw_bytes_s, cluster.network.kind.latency_s
    return _intra_node_link(cluster, 2)
