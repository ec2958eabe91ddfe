"""Request streams, replicas and routing, outputs (CSV, SLO attainment, queue samples) and scheduler choice of
the simulator (`planner.sim`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from test_ops import make_deployment
from test_sim import MIXED, arrays, deployment

from planner.errors import PlannerError
from planner.sim import (
    Arrival,
    Policy,
    RequestStream,
    Routing,
    Scheduler,
    Slo,
    bursty,
    closed_loop,
    draw_requests,
    load_trace,
    offline,
    poisson,
    simulate,
    trace_stream,
    write_requests_csv,
)
from planner.sim.policy import resolve_scheduler
from planner.specs.workload import Workload


class TestStreams:
    def test_poisson_rate_and_bursty_variation(self) -> None:
        """20,000 gaps: the sample mean within 3% of 1 / rate, the gaps' cv within 5% of the target."""
        for stream, cv in ((poisson(50.0, 20_000, MIXED), 1.0), (bursty(50.0, 4.0, 20_000, MIXED), 4.0)):
            gaps = np.diff(draw_requests(stream, seed=3).arrival_s)
            assert gaps.mean() == pytest.approx(1 / 50, rel=0.03)
            assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)

    def test_offline_and_closed_loop_arrivals(self) -> None:
        assert np.all(draw_requests(offline(5, MIXED)).arrival_s == 0)
        drawn = draw_requests(closed_loop(4, 10, MIXED, warmup_requests=3))
        assert len(drawn.arrival_s) == 13 and np.all(np.isnan(drawn.arrival_s))

    def test_lengths_are_drawn_from_the_workload_samples(self) -> None:
        drawn = draw_requests(offline(500, MIXED), seed=1)
        pairs = set(zip(drawn.input_len.tolist(), drawn.output_len.tolist(), strict=True))
        assert pairs == set(zip(MIXED.input_lens, MIXED.output_lens, strict=True))

    def test_trace_csv(self, tmp_path: Path) -> None:
        path = tmp_path / "trace.csv"
        path.write_text("arrival_time_s,input_len,output_len\n0.5,100,10\n0.0,200,20\n0.25,50,5\n")
        stream = load_trace(path)
        drawn = draw_requests(stream)
        assert drawn.arrival_s.tolist() == [0.0, 0.25, 0.5]
        assert drawn.input_len.tolist() == [200, 50, 100]
        result = simulate(deployment(), stream)
        assert result.output_tokens == 35
        assert arrays(result)["arrival_s"].tolist() == [0.0, 0.25, 0.5]

    def test_shipped_azure_traces(self) -> None:
        """The two Azure traces replay whole, from t = 0 in arrival order: 19,366 conversation requests over
        3,502 s and 8,819 code requests over 3,436 s (planner/data/workloads/README.md); `requests` keeps the
        first N and refuses more than the trace holds."""
        for name, count, span_s in (("azure-conv", 19_366, 3502), ("azure-code", 8_819, 3436)):
            stream = trace_stream(name)
            arrivals = np.array(stream.trace_arrival_s)
            assert stream.num_requests == count and arrivals[0] == 0.0 and np.all(np.diff(arrivals) >= 0)
            assert arrivals[-1] == pytest.approx(span_s, abs=1.0)
        first = trace_stream("azure-code", requests=100)
        assert first.num_requests == 100 and first.trace_input_lens == trace_stream("azure-code").trace_input_lens[:100]
        with pytest.raises(PlannerError, match="holds 8,819 requests"):
            trace_stream("azure-code", requests=9000)

    @pytest.mark.parametrize(
        "text", ["arrival_time_s,input_len\n0,1\n", "arrival_time_s,input_len,output_len\n0,0,1\n", ""]
    )
    def test_bad_trace_is_refused(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "bad.csv"
        path.write_text(text)
        with pytest.raises(PlannerError):
            load_trace(path)

    def test_warmup_only_in_a_closed_loop(self) -> None:
        with pytest.raises(PlannerError, match="warm-up"):
            RequestStream(arrival=Arrival.poisson, num_requests=5, workload=MIXED, rate_req_s=1.0, warmup_requests=2)


class TestReplicas:
    def test_n_replicas_give_n_times_one_instance_offline(self) -> None:
        """Round-robin spreads 4 x 64 identical requests as 64 per replica; each replica runs what one instance
        runs alone, so throughput scales by 4 exactly."""
        dep, workload = deployment(max_batch_size=32), Workload.fixed(256, 64)
        one = simulate(dep, offline(64, workload), replicas=1)
        four = simulate(dep, offline(256, workload), replicas=4)
        assert four.output_throughput_tok_s == pytest.approx(4 * one.output_throughput_tok_s, rel=1e-12)
        assert np.bincount(arrays(four)["replica"]).tolist() == [64] * 4

    def test_default_replicas_are_the_deployments(self) -> None:
        dep = make_deployment(num_gpus=4)
        result = simulate(dep, offline(8, MIXED))
        assert result.replicas == dep.replicas == 4

    def test_least_loaded_keeps_replicas_even(self) -> None:
        """Long and short requests alternate; least-loaded routing sends new ones where fewer are outstanding."""
        workload = Workload(name="alternating", input_lens=(2000, 50), output_lens=(400, 5))
        stream = poisson(200.0, 200, workload)
        rr = simulate(deployment(), stream, replicas=2)
        ll = simulate(deployment(), stream, replicas=2, routing=Routing.least_loaded)
        assert ll.routing == "least-loaded" and ll.output_tokens == rr.output_tokens
        assert ll.e2e_s.mean <= rr.e2e_s.mean * 1.05


class TestOutputs:
    def test_requests_csv_has_one_row_per_request(self, tmp_path: Path) -> None:
        result = simulate(deployment(), closed_loop(3, 9, MIXED, warmup_requests=3), replicas=2)
        path = tmp_path / "requests.csv"
        write_requests_csv(result, path)
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 12
        assert [row["warmup"] for row in rows[:4]] == ["True", "True", "True", "False"]
        assert float(rows[5]["finish_s"]) == result.requests.finish_s[5]

    def test_slo_attainment(self) -> None:
        stream = poisson(30.0, 50, MIXED)
        assert simulate(deployment(), stream).slo_attainment is None
        assert simulate(deployment(), stream, slo=Slo(ttft_s=1e3, tpot_s=1e3)).slo_attainment == 1.0
        assert simulate(deployment(), stream, slo=Slo(ttft_s=1e-9)).slo_attainment == 0.0

    def test_queue_samples_span_the_run(self) -> None:
        result = simulate(deployment(), offline(100, MIXED), Policy(max_batch_size=10), replicas=1)
        queue = result.queue
        assert queue.time_s[0] == 0.0 and queue.time_s[-1] == pytest.approx(result.duration_s)
        assert max(queue.running) == 10 and queue.waiting[0] == 90 and queue.waiting[-1] == 0


class TestSchedulerChoice:
    @pytest.mark.parametrize(
        ("engine", "expected"), [("vllm", Scheduler.prefill_first), ("trtllm", Scheduler.inflight)]
    )
    def test_auto_follows_the_engine_profile(self, engine: str, expected: Scheduler) -> None:
        assert resolve_scheduler(deployment(engine), Policy()).scheduler is expected

    def test_mixed_batching_without_reservation_is_chunked(self) -> None:
        dep = deployment("trtllm", reserves_full_sequence=False)
        assert resolve_scheduler(dep, Policy()).scheduler is Scheduler.chunked

    def test_knobs_default_to_the_engine(self) -> None:
        config = resolve_scheduler(deployment("vllm"), Policy(max_num_tokens=512, kv_capacity_tokens=1600))
        assert (config.max_num_tokens, config.max_batch_size, config.total_blocks) == (512, 256, 100)
        assert config.watermark_blocks == 1
