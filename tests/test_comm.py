"""Communication (`planner.cost.comm`): point-to-point sends and which link carries a collective (the all-reduce
law itself is in planner.cost.kernels, tested in test_kernels.py).

Link numbers come from the catalog GPU files (datasheet values); the formulas are checked on literals.
"""

from __future__ import annotations

import pytest
from test_ops import catalog_gpu, make_deployment, make_model

from planner.cost.comm import group_link, p2p_time_s, pp_link, tp_link
from planner.errors import PlannerError
from planner.specs.hardware import Cluster, NetworkSpec


def link(bw_bytes_s: float, latency_s: float) -> object:
    """The expected (bytes/s, latency s) of a link, compared to float precision."""
    return pytest.approx((bw_bytes_s, latency_s), rel=1e-12)


def cluster(gpu_id: str, num_gpus: int, network: str = "100gbe") -> Cluster:
    gpu = catalog_gpu(gpu_id)
    network_spec = NetworkSpec.parse(network)
    return Cluster(gpu=gpu, num_gpus=num_gpus, gpus_per_node=gpu.gpus_per_node, network=network_spec)


class TestPointToPoint:
    def test_p2p_send(self) -> None:
        """1 MB at 25 GB/s x 0.8 = 20 GB/s: 5e-5 s, plus 5 us latency -> 5.5e-5 s."""
        assert p2p_time_s(1e6, 25e9, 5e-6, 0.8) == pytest.approx(5.5e-5, rel=1e-12)


class TestNetworkSpec:
    @pytest.mark.parametrize(
        ("text", "bytes_s", "latency_s", "label"),
        [
            ("100gbe", 12.5e9, 10e-6, "100gbe"),  # 100 Gb/s / 8 bits per byte
            ("ib-ndr", 50e9, 2e-6, "ib-ndr"),  # 400 Gb/s / 8
            ("8xib-ndr", 400e9, 2e-6, "8xib-ndr"),  # 8 ports x 400 Gb/s / 8
            ("2 x 25GbE", 6.25e9, 10e-6, "2x25gbe"),  # 2 x 25 Gb/s / 8
        ],
    )
    def test_parse(self, text: str, bytes_s: float, latency_s: float, label: str) -> None:
        network = NetworkSpec.parse(text)
        assert network.node_bw_bytes_s == pytest.approx(bytes_s, rel=1e-12)
        assert network.kind.latency_s == latency_s
        assert network.label == label

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("100gbee", "use one of 10gbe, 25gbe, 100gbe"),
            ("infiniband", "use one of 10gbe"),
            ("x100gbe", "use one of 10gbe"),
            ("0xib-ndr", "asks for 0 ports per node: give 1 to 64"),
        ],
    )
    def test_bad_network_names_the_fix(self, text: str, fragment: str) -> None:
        with pytest.raises(PlannerError, match=fragment):
            NetworkSpec.parse(text)


class TestLinkSelection:
    def test_nvlink_inside_a_node(self) -> None:
        """h100-sxm: NVLink 4 at 450 GB/s per direction, 3 us."""
        assert group_link(cluster("h100-sxm", 8), 8, spans_nodes=False) == link(450e9, 3e-6)

    def test_pcie_with_peer_to_peer(self) -> None:
        """l20: PCIe 4 peer-to-peer at the link's 32 GB/s and 10 us."""
        assert group_link(cluster("l20", 8), 8, spans_nodes=False) == link(32e9, 10e-6)

    def test_pcie_without_peer_to_peer_bounces_through_host(self) -> None:
        """rtx-4090: GeForce has no PCIe peer-to-peer; each copy crosses PCIe 4 twice: 32 / 2 = 16 GB/s,
        2 x 10 us = 20 us."""
        assert group_link(cluster("rtx-4090", 8), 4, spans_nodes=False) == link(16e9, 20e-6)

    def test_nvlink_bridge_pair(self) -> None:
        """h100-nvl TP 2: the bridge joins the pair at 300 GB/s, 3 us."""
        assert group_link(cluster("h100-nvl", 8), 2, spans_nodes=False) == link(300e9, 3e-6)

    def test_nvlink_bridge_beyond_its_pair_falls_back_to_the_host_link(self) -> None:
        """h100-nvl TP 4: the group is larger than the bridge's 2 peers, so the ring crosses the PCIe host link
        peer to peer (PCIe 5: 64 GB/s, 10 us)."""
        assert group_link(cluster("h100-nvl", 8), 4, spans_nodes=False) == link(64e9, 10e-6)

    def test_tp_link_of_a_deployment_follows_its_gpu(self) -> None:
        deployment = make_deployment(gpu=catalog_gpu("h100-nvl"), tp_size=4, num_gpus=8)
        assert tp_link(deployment) == link(64e9, 10e-6)
        assert tp_link(make_deployment(gpu=catalog_gpu("h100-nvl"), tp_size=2)) == link(300e9, 3e-6)


class TestAcrossNodes:
    def test_ethernet_limits_a_tp_group_spanning_nodes(self) -> None:
        """16 x h100-sxm in 2 nodes over one 100GbE port per node: min(450, 12.5) GB/s, max(3, 10) us."""
        assert group_link(cluster("h100-sxm", 16, "100gbe"), 16, spans_nodes=True) == link(12.5e9, 10e-6)

    def test_eight_ndr_ports_nearly_match_nvlink(self) -> None:
        """8 x 400 Gb/s NDR = 400 GB/s < NVLink's 450; InfiniBand's 2 us < NVLink's 3 us, so 3 us stays."""
        assert group_link(cluster("h100-sxm", 16, "8xib-ndr"), 16, spans_nodes=True) == link(400e9, 3e-6)

    def test_deployment_with_tp_across_two_nodes(self) -> None:
        """TP 16 on 2 nodes of 8 test GPUs: the 100GbE network (12.5 GB/s, 10 us) carries the all-reduce."""
        deployment = make_deployment(model=make_model(num_attention_heads=16), tp_size=16)
        assert deployment.tp_spans_nodes
        assert tp_link(deployment) == link(12.5e9, 10e-6)

    def test_pipeline_boundary_between_nodes_uses_the_network(self) -> None:
        """TP 8 x PP 2 on 16 GPUs: the stages sit in different nodes, joined by 8 x NDR (400 GB/s, 2 us);
        at TP 1 x PP 2 both stages share a node and NVLink (400 GB/s, 2 us on the test GPU) joins them."""
        across = make_deployment(tp_size=8, pp_size=2, network=NetworkSpec.parse("8xib-ndr"))
        assert pp_link(across) == link(400e9, 2e-6)
        within = make_deployment(tp_size=1, pp_size=2, network=NetworkSpec.parse("100gbe"))
        assert pp_link(within) == link(400e9, 2e-6)
        slow = make_deployment(tp_size=8, pp_size=2, network=NetworkSpec.parse("25gbe"))
        assert pp_link(slow) == link(3.125e9, 10e-6)
