"""`planner.recommend()` and `tdplan recommend`: the JSON contract, invariants of the plans, errors that say why
nothing is feasible, and the seed systems' choices where they pay."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from typer.testing import CliRunner

import planner
from planner.cli import app
from planner.errors import PlannerError
from planner.recommendation import Recommendation, recommend
from planner.specs.catalog import load_catalog

FAST = ["colocated", "chunked"]  # two strategies keep these tests quick; the seeds tests use more


@cache
def run(**kwargs: Any) -> Recommendation:
    args = {"model": "llama-3.1-8b", "gpus": "2xh100", "input_len": 512, "output_len": 128, "strategies": FAST}
    args.update(kwargs)
    if isinstance(args.get("strategies"), tuple):
        args["strategies"] = list(args["strategies"])
    return recommend(**args)


class TestContract:
    def test_cli_json_fields(self) -> None:
        result = CliRunner().invoke(
            app,
            ["recommend", "--model", "llama-3.1-8b", "--gpus", "2xh100", "--input-len", "512", "--output-len",
             "128", "--strategy", "colocated", "--strategy", "chunked", "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["schema_version"] >= 1
        assert {"model", "gpus", "workload", "engine"} <= set(data["inputs"])
        instance = data["plan"]["instances"][0]
        assert {"strategy", "role", "tp", "pp", "count", "knobs", "gpus"} <= set(instance)
        predicted = data["plan"]["predicted"]
        for key in ("output_throughput_tok_s", "request_throughput_req_s", "goodput_req_s", "ttft_s", "tpot_s",
                    "ttft_p90_s", "tpot_p90_s"):  # fmt: skip
            assert key in predicted
        assert isinstance(data["alternatives"], list) and data["alternatives"][0]["strategy"] in FAST

    def test_human_output_names_the_plan_and_why(self) -> None:
        result = CliRunner().invoke(
            app, ["recommend", "--model", "llama-3.1-8b", "--gpus", "2xh100", "--input-len", "512",
                  "--output-len", "128", "--strategy", "colocated", "--strategy", "chunked"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "has the best offline throughput" in result.output
        assert "the best plan of every other strategy" in result.output

    def test_throughput_is_the_default_without_rate_or_slos(self) -> None:
        rec = run()
        assert rec.plan.objective == "throughput" and rec.slo is None
        assert rec.plan.predicted.request_throughput_req_s == pytest.approx(rec.plan.predicted.capacity_req_s)

    def test_goodput_with_slos(self) -> None:
        rec = run(ttft=1.0, tpot=0.05)
        assert rec.plan.objective == "goodput"
        assert rec.plan.predicted.goodput_req_s is not None
        assert rec.plan.predicted.slo_attainment is not None and rec.plan.predicted.slo_attainment >= 0.85


class TestInvariants:
    def test_more_gpus_never_lower_throughput(self) -> None:
        served = [run(gpus=f"{n}xh100").plan.predicted.request_throughput_req_s for n in (1, 2, 4)]
        assert served == sorted(served)

    def test_looser_slos_never_lower_goodput(self) -> None:
        goodput = [
            run(ttft=t, tpot=p).plan.predicted.goodput_req_s or 0.0 for t, p in ((0.3, 0.02), (1.0, 0.05), (3.0, 0.2))
        ]
        assert goodput == sorted(goodput)

    def test_plan_fits_its_budget_and_memory(self) -> None:
        rec = run(gpus="4xh100")
        memory_gib = load_catalog().gpu("h100").memory_gib
        assert rec.plan.gpus_used <= rec.plan.gpus_available == 4
        for instance in rec.plan.instances:
            assert sum(instance.memory_gib.values()) <= memory_gib + 1e-9

    def test_a_rate_within_capacity_is_served(self) -> None:
        capacity = run(gpus="2xh100").plan.predicted.capacity_req_s
        rec = run(gpus="2xh100", rate=round(capacity / 4, 3), ttft=5.0, tpot=0.5)
        assert rec.plan.predicted.goodput_req_s == pytest.approx(round(capacity / 4, 3), rel=1e-6)

    def test_min_gpus_never_takes_more_than_needed(self) -> None:
        one = run(gpus="1xh100", ttft=5.0, tpot=0.5).plan.predicted.goodput_req_s or 0.0
        rec = run(gpus="8xh100", rate=round(one * 0.9, 3), ttft=5.0, tpot=0.5, objective="min-gpus")
        assert rec.plan.gpus_used == 1


class TestErrors:
    def test_model_that_fits_nowhere(self) -> None:
        with pytest.raises(PlannerError, match="no feasible instance"):
            recommend(model="llama-3.1-405b", gpus="1xl4", input_len=512, output_len=128, strategies=FAST)

    def test_slo_tighter_than_any_instance(self) -> None:
        with pytest.raises(PlannerError, match="even at a trickle"):
            run(ttft=0.001, tpot=0.001)

    def test_min_gpus_needs_a_rate(self) -> None:
        with pytest.raises(PlannerError, match="needs a target rate"):
            run(objective="min-gpus")

    def test_min_cost_needs_prices(self) -> None:
        with pytest.raises(PlannerError, match="needs GPU prices"):
            run(objective="min-cost", rate=1.0)

    def test_unreadable_price(self) -> None:
        with pytest.raises(PlannerError, match="GPU=USD_PER_HOUR"):
            run(objective="min-cost", rate=1.0, prices=("h100",))

    def test_cli_exit_code_two_and_one_line(self) -> None:
        result = CliRunner().invoke(
            app, ["recommend", "--model", "llama-3.1-405b", "--gpus", "1xl4", "--input-len", "512",
                  "--output-len", "128", "--strategy", "colocated"],
        )  # fmt: skip
        assert result.exit_code == 2
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


class TestMixedFleet:
    def test_cheapest_mix_for_a_rate(self) -> None:
        """Two GPU kinds and their prices: the plan meets the rate and reports its cost."""
        rec = run(
            gpus="2xh100,2xa100-sxm-80gb", rate=2.0, ttft=5.0, tpot=0.5, objective="min-cost",
            prices=("h100=4.0", "a100-sxm-80gb=1.5"),
        )  # fmt: skip
        assert rec.plan.cost_usd_per_h is not None and rec.plan.cost_usd_per_h > 0
        assert rec.plan.predicted.goodput_req_s == pytest.approx(2.0, rel=1e-6)


class TestSeeds:
    """Where the seed systems' strategies pay, and where they do not (model-level claims, tdplan's numbers)."""

    def test_pipeline_parallelism_on_a_pcie_box(self) -> None:
        """Llama-2-70B offline on 8 L20s (PCIe only): a pipelined layout (PP >= 4) beats TP 8, whose
        all-reduces cross PCIe twice per layer (TD-Pipe, gLLM)."""
        rec = recommend(model="llama-2-70b", gpus="8xL20", workload="sharegpt")
        assert max(i.pp for i in rec.plan.instances) >= 4

    @pytest.mark.xfail(
        strict=True,
        reason="tdplan picks gLLM's token-throttled pipeline (TP1 PP8, 10.6 req/s offline) over TD-Pipe's temporal "
        "pipeline (TP1 PP8, 9.75 req/s, 8% behind) for Llama-2-70B on 8 L20s; the simulator, running each "
        "strategy's scheduler, puts them the other way round by 2% in steady state (temporal 10.53, throttled "
        "10.34 req/s, docs/simulator.md): within the model's error, and the analytic temporal cycle is 8% below its "
        "simulation",
    )
    def test_temporal_pipeline_on_a_pcie_box(self) -> None:
        rec = recommend(model="llama-2-70b", gpus="8xL20", workload="sharegpt")
        assert rec.plan.strategy == "temporal-pipeline"

    def test_single_gpu_instances_for_a_small_model_on_nvlink(self) -> None:
        """Llama-3.1-8B on 8 H100s: one GPU per instance, replicated, with no disaggregation."""
        rec = recommend(model="llama-3.1-8b", gpus="8xh100", workload="sharegpt", strategies=[*FAST, "disaggregated"])
        assert rec.plan.strategy in FAST
        assert {(i.tp, i.pp) for i in rec.plan.instances} == {(1, 1)}

    def test_disaggregation_loses_over_slow_ethernet_with_long_prompts(self) -> None:
        """Llama-2-13B, 3000-token prompts, 16 A100s in two nodes on 10 GbE: KV crossing the network would set
        the pace, so the plan keeps prefill and decode together."""
        rec = recommend(
            model="llama-2-13b", gpus="16xa100-sxm-80gb", network="10gbe", input_len=3000, output_len=200,
            ttft=1.0, tpot=0.1, strategies=["disaggregated", "colocated", "chunked"],
        )  # fmt: skip
        assert rec.plan.strategy != "disaggregated"

    @pytest.mark.xfail(
        strict=True,
        reason="for Llama-2-13B on 8 A100s (3000/200 tokens, TTFT 0.4 s, TPOT 40 ms at 90%) tdplan plans chunked "
        "TP4 x 2 at 7.4 req/s within the SLOs (91% of requests in simulation at that rate; colocated 7.4, 76%) "
        "and its best disaggregated plan at 4.5; the simulator agrees on the order: the best disaggregated "
        "layout it finds, 2 x prefill TP2 + decode TP4, keeps 90% of requests within the SLOs up to 5.9 req/s. In "
        "DistServe's own setting (OPT-13B on 4 A100s, TTFT 0.2 s / TPOT 0.1 s, arXiv-summarisation prompts "
        "capped at 2,048 tokens) the plan is colocated TP4 at 8.0 req/s, 94% within the SLOs in simulation, "
        "against 2.9 req/s for DistServe's prefill TP2 + decode TP1 segment; the segment does beat DistServe's "
        "baseline, vLLM TP1 replicas (tests/test_sim_seeds.py)",
    )
    def test_disaggregation_under_tight_slos_with_long_prompts(self) -> None:
        rec = recommend(
            model="llama-2-13b", gpus="8xa100-sxm-80gb", input_len=3000, output_len=200, ttft=0.4, tpot=0.04,
            strategies=["disaggregated", "colocated", "chunked"],
        )  # fmt: skip
        assert rec.plan.strategy == "disaggregated"


class TestVerify:
    def test_simulates_the_plans_it_can_run(self) -> None:
        rec = run(ttft=1.0, tpot=0.05, verify=True)
        assert next(v.strategy for v in rec.verification) == rec.plan.strategy
        assert {v.strategy for v in rec.verification} == set(FAST)
        for v in rec.verification:
            assert v.simulated_ttft_s > 0 and v.simulated_tpot_s > 0
            assert v.disagrees == (v.reason != "agrees within 25%")

    def test_every_strategy_is_verified_with_its_own_scheduler(self) -> None:
        rec = run(ttft=1.0, tpot=0.05, verify=True, strategies=("sm-partition",))
        (verification,) = rec.verification
        assert verification.strategy == "sm-partition" and verification.simulated_tpot_s > 0
        assert not any("not simulated" in note for note in rec.notes)


class TestReviewFindings:
    def test_nodes_of_an_instance_spanning_several(self) -> None:
        """An instance of 24 GPUs from GPU 0 on nodes of 8 takes nodes 0, 1 and 2."""
        from planner.search.plan import _nodes

        assert _nodes(0, 24, 1, 8) == ([0, 1, 2], 24)
        assert _nodes(8, 4, 3, 8) == ([1, 2], 20)

    def test_slos_tabulate_every_layout(self) -> None:
        """With SLOs the capacity bound does not drop the layouts that meet them: chunked serves Llama-70B on
        8 L20s within TTFT 1 s / TPOT 0.1 s (its deepest pipelines alone do not)."""
        rec = recommend(
            model="llama-70b", gpus="8xL20", workload="sharegpt", ttft=1.0, tpot=0.1, strategies=["chunked"]
        )
        assert (rec.plan.predicted.goodput_req_s or 0) > 0

    def test_compare_rows_are_one_strategy_each(self) -> None:
        from planner.comparison import compare

        result = compare("llama-3.1-8b", "2xh100", input_len=512, output_len=128, strategies=FAST)
        for entry in result.per_strategy:
            assert entry.plan is None or {i.strategy for i in entry.plan.instances} == {entry.strategy}

    def test_throughput_objective_refuses_a_rate_or_slos(self) -> None:
        with pytest.raises(PlannerError, match="objective throughput plans offline capacity"):
            run(objective="throughput", ttft=1.0)


def test_requests_beyond_the_models_context_are_named() -> None:
    """Llama-2-70B has a 4,096-token context; multi-turn ShareGPT runs to 8k. The plan says how many requests an
    engine would refuse and how to keep those that fit; with the cap there is nothing to say."""
    rec = recommend(model="llama-2-70b", gpus="8xL20", workload="sharegpt-multiturn", strategies=["colocated"])
    (note,) = [n for n in rec.notes if "context" in n]
    assert "longer than llama-2-70b's context of 4,096 tokens" in note and "NAME:4096" in note
    capped = recommend(model="llama-2-70b", gpus="8xL20", workload="sharegpt-multiturn:4096", strategies=["colocated"])
    assert not [n for n in capped.notes if "context" in n]
    assert planner.compare("llama-2-70b", "8xL20", workload="sharegpt-multiturn", strategies=["colocated"]).notes
