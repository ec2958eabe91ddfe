"""The figures docs/strategies.md and docs/strategies/*.md quote, computed through the library.

    python scripts/strategy_docs.py                  print every generated block
    python scripts/strategy_docs.py --block NAME     print one block
    python scripts/strategy_docs.py --write          refresh the generated blocks of the pages in place

Each page holds its blocks between `<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`;
tests/test_strategy_docs.py recomputes every block and compares it with the page text, so the pages cannot
drift from the code. The settings are those of the seed-result tests (tests/test_strategy_*.py); each figure is
computed once and cached.

A seed result counts as *reproduced* when tdplan's figure lies within [0.8 x low, 1.25 x high] of the
published range ("up to X" is the range [X, X]), *direction only* when it is on the published side of 1x but
outside that band, and *not reproduced* when it is on the other side. Settings without a published figure
(the reverse results) count on direction alone.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from generated_blocks import with_blocks

from planner.comparison import compare
from planner.specs.catalog import Catalog, load_catalog
from planner.specs.hardware import Cluster, NetworkSpec
from planner.specs.precision import Dtype
from planner.specs.workload import Workload
from planner.strategies import chunked, disaggregated, get_strategy
from planner.strategies import phase_resharding as pr
from planner.strategies.base import Candidate, Context, Slo, StrategyResult, evaluate
from planner.strategies.disaggregated import kv_bytes_per_token

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BAND_LOW, BAND_HIGH = 0.8, 1.25  # the reproduced band around a published range


# --- setups -------------------------------------------------------------------------------------------------


@cache
def catalog() -> Catalog:
    return load_catalog()


@cache
def context(
    model: str,
    gpu: str,
    num_gpus: int,
    workload: str = "sharegpt",
    dtype: Dtype = Dtype.fp16,
    gpus_per_node: int = 8,
    network: str | None = None,
) -> Context:
    """The Context the strategy tests build: vLLM profile, KV in the weights' dtype."""
    c = catalog()
    cluster = Cluster(gpu=c.gpu(gpu), num_gpus=num_gpus, gpus_per_node=gpus_per_node)
    if network is not None:
        cluster = Cluster(
            gpu=c.gpu(gpu), num_gpus=num_gpus, gpus_per_node=gpus_per_node, network=NetworkSpec.parse(network)
        )
    return Context(
        catalog=c,
        model=c.model(model),
        cluster=cluster,
        workload=Workload.preset(workload),
        dtype=dtype,
        kv_dtype=dtype,
        engine=c.engine("vllm"),
    )


def feasible(name: str, ctx: Context, knobs: Mapping[str, float] | None = None) -> Iterator[Candidate]:
    for candidate in get_strategy(name).candidates(ctx, knobs):
        if isinstance(candidate, Candidate):
            yield candidate


def capacity(name: str, ctx: Context, candidate: Candidate) -> float:
    return get_strategy(name).capacity_req_s(ctx, candidate)


def best_capacity(
    name: str, ctx: Context, keep: Callable[[Candidate], bool] = lambda c: True
) -> tuple[float, Candidate]:
    return max(((capacity(name, ctx, c), c) for c in feasible(name, ctx) if keep(c)), key=lambda r: r[0])


def layout(c: Candidate | StrategyResult) -> str:
    return f"TP{c.tp} PP{c.pp}" + (f" × {c.replicas}" if c.replicas > 1 else "")


@dataclass(frozen=True)
class Point:
    """Latencies of one configuration at one Poisson rate (the figures `evaluate` gives, without its goodput
    search), seconds."""

    rate_req_s: float
    capacity_req_s: float
    ttft_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    tpot_s: float
    tpot_p90_s: float
    tpot_p99_s: float
    tbt_p99_s: float


def at_rate(name: str, ctx: Context, c: Candidate, rate_req_s: float) -> Point:
    strategy = get_strategy(name)
    lat = strategy.latencies(ctx, c, rate_req_s)
    if lat is None:
        raise ValueError(f"{c.label()} is unstable at {rate_req_s} req/s")
    return Point(
        rate_req_s=rate_req_s,
        capacity_req_s=strategy.capacity_req_s(ctx, c),
        ttft_s=float(np.mean(lat.ttft_s)),
        ttft_p90_s=float(np.percentile(lat.ttft_s, 90)),
        ttft_p99_s=float(np.percentile(lat.ttft_s, 99)),
        tpot_s=float(np.mean(lat.tpot_s)),
        tpot_p90_s=float(np.percentile(lat.tpot_s, 90)),
        tpot_p99_s=float(np.percentile(lat.tpot_s, 99)),
        tbt_p99_s=lat.tbt_p99_s,
    )


def knob_text(knobs: Mapping[str, float], *names: str) -> str:
    return ", ".join(f"`{k}` {knobs[k]:g}" for k in names)


# --- verdicts -----------------------------------------------------------------------------------------------


def verdict(ratio: float, low: float, high: float) -> str:
    """Reproduced, direction only or not, for a published gain `low`..`high` (both > 1) or, for a published
    reduction, the factor it is by."""
    if BAND_LOW * low <= ratio <= BAND_HIGH * high:
        return "yes"
    return "direction only" if ratio > 1 else "no"


def direction(holds: bool) -> str:
    return "yes" if holds else "no"


# --- TD-Pipe (temporal-pipeline) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TdPipe:
    best_tok_s: float
    best: Candidate
    switch_test_tok_s: float
    tp8_tok_s: float
    naive_tok_s: float
    colocated_best_tok_s: float
    colocated_best: Candidate
    h100_colocated_tok_s: float
    h100_temporal_tok_s: float


def tok_s(name: str, ctx: Context, c: Candidate) -> float:
    return capacity(name, ctx, c) * ctx.workload.mean_output_len


def best_tok_s(
    name: str, ctx: Context, knobs: Mapping[str, float] | None = None, **where: int
) -> tuple[float, Candidate]:
    return max(
        (
            (tok_s(name, ctx, c), c)
            for c in feasible(name, ctx, knobs)
            if all(getattr(c, k) == v for k, v in where.items())
        ),
        key=lambda r: r[0],
    )


@cache
def td_pipe() -> TdPipe:
    """tests/test_strategy_temporal_pipeline.py::TestPublishedDirection."""
    ctx = context("llama-2-70b", "l20", 8)
    best, best_c = best_tok_s("temporal-pipeline", ctx, pp=8)
    switch_test, _ = best_tok_s("temporal-pipeline", ctx, {"switch_share": 0}, pp=8)
    tp8, _ = best_tok_s("colocated", ctx, {"max_batch": 256}, tp=8, pp=1)
    naive, _ = best_tok_s("colocated", ctx, {"max_batch": 256}, tp=1, pp=8)
    colocated_best, colocated_c = best_tok_s("colocated", ctx)
    h100 = context("llama-3.1-8b", "h100-sxm", 8)
    return TdPipe(
        best_tok_s=best,
        best=best_c,
        switch_test_tok_s=switch_test,
        tp8_tok_s=tp8,
        naive_tok_s=naive,
        colocated_best_tok_s=colocated_best,
        colocated_best=colocated_c,
        h100_colocated_tok_s=best_tok_s("colocated", h100)[0],
        h100_temporal_tok_s=best_tok_s("temporal-pipeline", h100)[0],
    )


def temporal_latency_rows() -> list[tuple[float, Point]]:
    """The best PP8 temporal pipeline under Poisson load, at shares of its capacity."""
    ctx, t = context("llama-2-70b", "l20", 8), td_pipe()
    cap = capacity("temporal-pipeline", ctx, t.best)
    return [(share, at_rate("temporal-pipeline", ctx, t.best, share * cap)) for share in (0.25, 0.5, 0.9)]


# --- DistServe (disaggregated) ------------------------------------------------------------------------------


def best_per_gpu(name: str, ctx: Context, slo: Slo) -> StrategyResult:
    """As tests/test_strategy_disaggregated.py: most goodput per GPU; colocated PP 1 layouts within a node."""
    candidates = list(feasible(name, ctx))
    if name == "colocated":
        candidates = [c for c in candidates if c.pp == 1 and c.tp <= ctx.cluster.gpus_per_node]
    results = [evaluate(get_strategy(name), ctx, c, slo) for c in candidates]
    return max((r for r in results if r.feasible), key=lambda r: (r.goodput_req_s or 0.0) / r.gpus_used)


def per_gpu(r: StrategyResult) -> float:
    return (r.goodput_req_s or 0.0) / r.gpus_used


DISTSERVE_SLO = Slo(ttft_s=0.25, tpot_s=0.1, attainment=0.9)
REVERSE_SLO = Slo(ttft_s=15.0, tpot_s=0.15)


@cache
def distserve() -> tuple[StrategyResult, StrategyResult]:
    """(colocated, disaggregated) on OPT-13B, 4 x A100 NVLink, sharegpt."""
    ctx = context("opt-13b", "a100", 4, network="100gbe")
    return best_per_gpu("colocated", ctx, DISTSERVE_SLO), best_per_gpu("disaggregated", ctx, DISTSERVE_SLO)


@cache
def reverse() -> tuple[StrategyResult, StrategyResult, dict[str, float], float, float]:
    """(colocated, disaggregated, the split's phase capacities, mean prompt's KV transfer, its prefill) on
    Llama-3.1-8B, 4 x A100 one per node over 10GbE, longbench."""
    from planner.strategies import continuous

    ctx = context("llama-3.1-8b", "a100", 4, workload="longbench", gpus_per_node=1, network="10gbe")
    colocated = best_per_gpu("colocated", ctx, REVERSE_SLO)
    disagg = best_per_gpu("disaggregated", ctx, REVERSE_SLO)
    strategy = disaggregated.Disaggregated()
    chosen = next(c for c in feasible("disaggregated", ctx) if dict(c.detail) == disagg.detail)
    pools = strategy.pools(ctx, chosen)
    sides = strategy.phase_capacities_req_s(ctx, pools)
    mean_in = round(ctx.workload.mean_input_len)
    transfer_s = float(pools.link.transfer_s(np.array(mean_in * kv_bytes_per_token(ctx))))
    prefill_s = continuous.prefill_latency_s(pools.prefill, mean_in)
    return colocated, disagg, dict(sides), transfer_s, prefill_s


def split_text(r: StrategyResult) -> str:
    d = r.detail
    return (
        f"prefill {d['prefill_instances']} × TP{d['prefill_tp']} PP{d['prefill_pp']} + decode {r.replicas} × "
        f"TP{r.tp} PP{r.pp}, {r.gpus_used} GPUs"
    )


# --- Sarathi-Serve (chunked) --------------------------------------------------------------------------------


def mistral() -> Context:
    return context("mistral-7b", "a100", 1)


@cache
def sarathi() -> tuple[float, tuple[float, dict[str, float]], tuple[float, dict[str, float]]]:
    """(the p99 TBT SLO, chunked's capacity and knobs, colocated's), tests/test_strategy_chunked.py."""
    from planner.cost.ops import BatchShape

    ctx = mistral()
    one = Candidate(
        strategy="chunked", tp=1, pp=1, replicas=1, gpus_used=1, knobs={"chunk_size": 512.0, "max_batch": 256.0}
    )
    deployment = chunked.Chunked().deployment(ctx, one)
    slo_s = 5 * chunked.stage_step_s(deployment, BatchShape.decode(1, ctx.workload.mean_decode_context))

    def best(name: str) -> tuple[float, dict[str, float]]:
        found: tuple[float, dict[str, float]] = (0.0, {})
        for c in feasible(name, ctx):
            cap = chunked.tbt_capacity_req_s(get_strategy(name), ctx, c, slo_s)
            found = max(found, (cap, dict(c.knobs)), key=lambda pair: pair[0])
        return found

    return slo_s, best("chunked"), best("colocated")


# --- gLLM (throttled-pipeline) ------------------------------------------------------------------------------

GLLM_DEFAULTS = {"max_prefill_tokens": 2048.0, "min_prefill_tokens": 32.0, "iterp": 8.0, "kv_threshold": 0.05}


def gllm_candidate(pp: int, replicas: int) -> Candidate:
    return Candidate(
        strategy="throttled-pipeline", tp=1, pp=pp, replicas=replicas, gpus_used=pp * replicas, knobs=GLLM_DEFAULTS
    )


@cache
def gllm() -> dict[str, tuple[float, float, str, str]]:
    """Per row: (throttled req/s, colocated req/s, throttled configuration, colocated configuration)."""
    ctx = context("llama-2-70b", "l20", 8)
    rows = {}
    for pp, replicas in ((4, 2), (8, 1)):
        ours = capacity("throttled-pipeline", ctx, gllm_candidate(pp, replicas))
        base, base_c = best_capacity("colocated", ctx, lambda c, pp=pp: (c.tp, c.pp) == (1, pp))  # type: ignore[misc]
        rows[f"TP1 PP{pp}" + (f" × {replicas}" if replicas > 1 else "")] = (ours, base, "", layout(base_c))
    ours, ours_c = best_capacity("throttled-pipeline", ctx)
    base, base_c = best_capacity("colocated", ctx)
    ours_text = f"{layout(ours_c)}, {knob_text(ours_c.knobs, 'max_prefill_tokens', 'iterp')}"
    base_text = f"{layout(base_c)}, `max_batch` {base_c.knobs['max_batch']:g}"
    rows["best"] = (ours, base, ours_text, base_text)
    return rows


# --- EcoServe (macro-instance) ------------------------------------------------------------------------------

ECOSERVE_SLO = Slo(ttft_s=5.0, tpot_s=0.1)


@cache
def ecoserve() -> tuple[StrategyResult, StrategyResult]:
    """(macro-instance, colocated): best goodput over PP 1 layouts with TP 4 or 8, 32 x L20 over 25GbE."""
    ctx = context("llama-2-70b", "l20", 32, network="25gbe")

    def best(name: str) -> StrategyResult:
        results = [
            evaluate(get_strategy(name), ctx, c, ECOSERVE_SLO)
            for c in feasible(name, ctx)
            if c.pp == 1 and c.tp in (4, 8)
        ]
        return max(results, key=lambda r: r.goodput_req_s or 0.0)

    return best("macro-instance"), best("colocated")


# --- semi-PD and Nexus (sm-partition) -----------------------------------------------------------------------

SEMI_PD_SLO = Slo(ttft_s=0.5, tpot_s=0.05)


def h100_8b() -> Context:
    return context("llama-3.1-8b", "h100-sxm", 1, dtype=Dtype.bf16)


@cache
def sm_results() -> dict[str, list[StrategyResult]]:
    ctx = h100_8b()
    return {
        name: [
            r
            for r in (evaluate(get_strategy(name), ctx, c, SEMI_PD_SLO) for c in get_strategy(name).candidates(ctx))
            if r.feasible
        ]
        for name in ("colocated", "sm-partition")
    }


def sm_best(name: str) -> StrategyResult:
    return max(sm_results()[name], key=lambda r: r.goodput_req_s or 0.0)


@cache
def sm_common_rate() -> tuple[float, Point, Point]:
    """Both best configurations at 80% of colocated's goodput: (rate, sm-partition, colocated)."""
    ctx = h100_8b()
    rate = 0.8 * (sm_best("colocated").goodput_req_s or 0.0)
    out = []
    for name in ("sm-partition", "colocated"):
        result = sm_best(name)
        c = next(c for c in feasible(name, ctx, result.knobs) if c.tp == result.tp)
        out.append(at_rate(name, ctx, c, rate))
    return rate, out[0], out[1]


# --- Seesaw (phase-resharding) ------------------------------------------------------------------------------


def reshards(c: Candidate) -> bool:
    return (c.detail["prefill_tp"], c.detail["prefill_pp"]) != (c.tp, c.pp)


def pair_text(c: Candidate) -> str:
    return f"prefill TP{c.detail['prefill_tp']} PP{c.detail['prefill_pp']}, decode TP{c.tp} PP{c.pp}"


@cache
def seesaw(kv_fill: float | None = None) -> tuple[float, Candidate, float, Candidate, float, Candidate]:
    """(colocated's best capacity and candidate, the best re-sharding pair's, the best same-layout pair's) on
    Llama-2-70B fp16, 8 x L20, longbench, offline; `kv_fill` pinned when given."""
    ctx = context("llama-2-70b", "l20", 8, workload="longbench")
    knobs = None if kv_fill is None else {"kv_fill": kv_fill}
    col, col_c = best_capacity("colocated", ctx)
    rated = [(capacity("phase-resharding", ctx, c), c) for c in feasible("phase-resharding", ctx, knobs)]
    ours, ours_c = max((r for r in rated if reshards(r[1])), key=lambda r: r[0])
    same, same_c = max((r for r in rated if not reshards(r[1])), key=lambda r: r[0])
    return col, col_c, ours, ours_c, same, same_c


@cache
def seesaw_slow_link() -> tuple[float, Candidate]:
    """The largest re-shard share of a cycle, Qwen2.5-32B on 8 x RTX 4090, humaneval, one request per phase."""
    ctx = context("qwen2.5-32b", "rtx-4090", 8, workload="humaneval")
    strategy = pr.PhaseResharding()
    shares = []
    for c in feasible("phase-resharding", ctx, {"kv_fill": 0.001, "max_batch": 256}):
        cycle = strategy.cycle(ctx, c)
        n = cycle.max_requests
        shares.append((cycle.reshard_s(n) / cycle.length_s(n), c))
    return max(shares, key=lambda s: s[0])


# --- blocks -------------------------------------------------------------------------------------------------


def x(value: float) -> str:
    return f"{value:.2f}×"


def pct(ratio: float) -> str:
    return f"{ratio - 1:+.0%}"


@dataclass(frozen=True)
class Row:
    group: str  # the seed system, as the pages select rows
    setting: str
    published: str
    tdplan: str
    reproduced: str
    test: str


def seed_rows() -> list[Row]:
    t = td_pipe()
    col, dis = distserve()
    rcol, rdis, _, _, _ = reverse()
    slo_s, (ch, _), (co, _) = sarathi()
    g = gllm()
    macro, eco_col = ecoserve()
    sm, smc = sm_best("sm-partition"), sm_best("colocated")
    rate, sm_at, col_at = sm_common_rate()
    s_col, _, s_ours, s_ours_c, _, _ = seesaw()
    short_col, _, short, _, _, _ = seesaw(0.02)
    slow_share, _ = seesaw_slow_link()
    tp8, naive = t.best_tok_s / t.tp8_tok_s, t.best_tok_s / t.naive_tok_s
    ds = per_gpu(dis) / per_gpu(col)
    sarathi_ratio = ch / co
    eco = (macro.goodput_req_s or 0.0) / (eco_col.goodput_req_s or 1.0)
    semi = (sm.goodput_req_s or 0.0) / (smc.goodput_req_s or 1.0)
    nexus_x = (sm.request_throughput_req_s or 0.0) / (smc.request_throughput_req_s or 1.0)
    tbt = col_at.tbt_p99_s / sm_at.tbt_p99_s
    ttft = col_at.ttft_s / sm_at.ttft_s
    seesaw_ratio = s_ours / s_col
    short_ratio = short / short_col
    tdp = "test_strategy_temporal_pipeline.py::TestPublishedDirection"
    sm_t = "test_strategy_sm_partition.py::TestPublished"
    pr_t = "test_strategy_phase_resharding.py::TestPublished"
    rows = [
        Row(
            "tdpipe",
            "TD-Pipe: Llama-2-70B fp16, 8× L20 PCIe, `sharegpt`, offline: temporal PP8 vs colocated TP8 "
            "(`max_batch` 256)",
            "up to 1.91×",
            f"{t.best_tok_s:.0f} vs {t.tp8_tok_s:.0f} tok/s: **{x(tp8)}** (TD-Pipe's own switch test: "
            f"{t.switch_test_tok_s:.0f} tok/s, {x(t.switch_test_tok_s / t.tp8_tok_s)})",
            verdict(tp8, 1.91, 1.91),
            f"`{tdp}::test_beats_tp_and_naive_pipeline_on_pcie`",
        ),
        Row(
            "tdpipe",
            "same, vs the naive pipeline (colocated TP1 PP8, `max_batch` 256)",
            "up to 2.73×",
            f"{t.best_tok_s:.0f} vs {t.naive_tok_s:.0f} tok/s: **{x(naive)}** (switch test: "
            f"{x(t.switch_test_tok_s / t.naive_tok_s)})",
            verdict(naive, 2.73, 2.73),
            "same test",
        ),
        Row(
            "tdpipe",
            "TD-Pipe's reverse: Llama-3.1-8B fp16, 8× H100-SXM (NVLink), offline",
            "none (TD-Pipe targets PCIe-only nodes)",
            f"colocated {t.h100_colocated_tok_s:.0f} vs temporal pipeline {t.h100_temporal_tok_s:.0f} tok/s: "
            f"**{x(t.h100_colocated_tok_s / t.h100_temporal_tok_s)}** for colocated",
            direction(t.h100_colocated_tok_s >= t.h100_temporal_tok_s),
            f"`{tdp}::test_no_gain_on_nvlink_for_a_model_that_fits_one_gpu`",
        ),
        Row(
            "distserve",
            "DistServe: OPT-13B fp16, 4× A100-SXM (NVLink), `sharegpt`, TTFT 0.25 s / TPOT 0.1 s at 90%, goodput "
            "per GPU vs colocated",
            "4.48× (arXiv abstract), 7.4× (OSDI)",
            f"disaggregated {per_gpu(dis):.2f} vs colocated {per_gpu(col):.2f} req/s/GPU: **{x(ds)}**",
            verdict(ds, 4.48, 7.4),
            "`test_strategy_disaggregated.py::TestSeedResults::test_distserve_opt13b_sharegpt_beats_colocated` (xfail)",
        ),
        Row(
            "distserve-reverse",
            "DistServe's reverse: Llama-3.1-8B fp16, 4× A100 one per node, 10GbE, `longbench`, TTFT 15 s / "
            "TPOT 0.15 s, goodput",
            "none (the reason for DistServe's low-affinity placement)",
            f"colocated {rcol.goodput_req_s:.2f} vs disaggregated {rdis.goodput_req_s:.2f} req/s: "
            f"**{x((rcol.goodput_req_s or 0.0) / (rdis.goodput_req_s or 1.0))}** for colocated",
            direction((rcol.goodput_req_s or 0.0) > (rdis.goodput_req_s or 0.0)),
            "`test_strategy_disaggregated.py::TestSeedResults::test_reverse_slow_ethernet_long_prompts`",
        ),
        Row(
            "sarathi",
            f"Sarathi-Serve: Mistral-7B fp16, 1× A100, `sharegpt`, capacity under a p99 TBT SLO of "
            f"{slo_s * 1e3:.1f} ms",
            "2.6× vLLM",
            f"chunked {ch:.2f} vs colocated {co:.2f} req/s: **{x(sarathi_ratio)}**",
            verdict(sarathi_ratio, 2.6, 2.6),
            "`test_strategy_chunked.py::TestSeedSarathiServe::test_serving_capacity_over_vllm_mistral_7b_one_a100`",
        ),
    ]
    for key, label in (("TP1 PP4 × 2", "TP1 PP4 × 2"), ("TP1 PP8", "TP1 PP8")):
        ours, base, _, _ = g[key]
        rows.append(
            Row(
                "gllm",
                ("gLLM: Llama-2-70B fp16, 8× L20, `sharegpt`, offline, gLLM defaults vs the naive pipeline, "
                 if key.endswith("2") else "same, ") + label,
                "+11% to +398% max throughput" if key.endswith("2") else "same",
                f"{ours:.2f} vs {base:.2f} req/s: **{pct(ours / base)}**",
                verdict(ours / base, 1.11, 4.98),
                "`test_strategy_throttled_pipeline.py::TestSeedGllm::"
                "test_balanced_micro_batches_beat_the_naive_pipeline`",
            )
        )  # fmt: skip
    ours, base, _, _ = g["best"]
    rows += [
        Row(
            "gllm",
            "same, best throttled layout vs best colocated layout (any TP/PP)",
            "same",
            f"{ours:.2f} vs {base:.2f} req/s: **{pct(ours / base)}**",
            verdict(ours / base, 1.11, 4.98),
            "`test_strategy_throttled_pipeline.py::TestSeedGllm::test_best_pipeline_beats_the_best_colocated_layout`",
        ),
        Row(
            "ecoserve",
            "EcoServe: Llama-2-70B fp16, 32× L20, 25GbE, `sharegpt`, TTFT 5 s / TPOT 0.1 s, goodput",
            "+82% to +127% over NoDG and FuDG systems",
            f"macro-instance {macro.goodput_req_s:.2f} vs colocated {eco_col.goodput_req_s:.2f} req/s: **{pct(eco)}**",
            verdict(eco, 1.82, 2.27),
            "`test_strategy_macro_instance.py::TestPublishedClaim::test_goodput_beats_colocated`",
        ),
        Row(
            "sm",
            "semi-PD: Llama-3.1-8B bf16, 1× H100-SXM, `sharegpt`, TTFT 0.5 s / TPOT 0.05 s, goodput",
            "1.55–1.72×",
            f"sm-partition {sm.goodput_req_s:.2f} vs colocated {smc.goodput_req_s:.2f} req/s: **{x(semi)}**",
            verdict(semi, 1.55, 1.72),
            f"`{sm_t}::test_semi_pd_serves_more_requests_within_slo_than_colocated`; `test_semi_pd_size` (xfail)",
        ),
        Row(
            "sm",
            "Nexus, same setting: offline throughput",
            "up to 2.2×",
            f"{sm.request_throughput_req_s:.2f} vs {smc.request_throughput_req_s:.2f} req/s: **{x(nexus_x)}**",
            verdict(nexus_x, 2.2, 2.2),
            f"`{sm_t}::test_nexus_throughput` (xfail)",
        ),
        Row(
            "sm",
            f"Nexus, same setting at {rate:.1f} req/s: p99 TBT",
            "up to 2.5× lower",
            f"{sm_at.tbt_p99_s * 1e3:.1f} vs {col_at.tbt_p99_s * 1e3:.1f} ms: **{x(tbt)} lower**",
            verdict(tbt, 2.5, 2.5),
            f"`{sm_t}::test_nexus_tbt`",
        ),
        Row(
            "sm",
            f"Nexus, same setting at {rate:.1f} req/s: mean TTFT",
            "up to 20× lower",
            f"{sm_at.ttft_s * 1e3:.1f} vs {col_at.ttft_s * 1e3:.1f} ms: **{x(1 / ttft)} higher**",
            verdict(ttft, 20.0, 20.0),
            f"`{sm_t}::test_nexus_ttft` (xfail)",
        ),
        Row(
            "seesaw",
            "Seesaw: Llama-2-70B fp16, 8× L20, `longbench`, offline",
            "up to 1.78×, 1.36× on average",
            f"phase-resharding {s_ours:.3f} ({pair_text(s_ours_c)}) vs colocated {s_col:.3f} req/s: "
            f"**{x(seesaw_ratio)}**",
            verdict(seesaw_ratio, 1.36, 1.78),
            f"`{pr_t}::test_seesaw_beats_colocated_offline`",
        ),
        Row(
            "seesaw",
            "Seesaw's reverse: the same with phases of 2% of the KV cache (`kv_fill` 0.02)",
            "short phases lose",
            f"{short:.3f} vs {short_col:.3f} req/s: **{x(short_ratio)}**",
            direction(short_ratio < 1),
            f"`{pr_t}::test_short_phases_lose_to_colocated`",
        ),
        Row(
            "seesaw",
            "Seesaw's reverse on a slow link: Qwen2.5-32B, 8× RTX 4090 (no peer-to-peer), one request per phase",
            "re-shards dominate short phases",
            f"re-shards take at most **{slow_share:.0%}** of a cycle",
            direction(slow_share > 0.5),
            f"`{pr_t}::test_reshards_dominate_short_phases_on_a_slow_link`",
        ),
    ]
    return rows


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def block_seed_results() -> str:
    rows = seed_rows()
    counts = {v: sum(r.reproduced == v for r in rows) for v in ("yes", "direction only", "no")}
    body = table(
        ["setting", "published", "tdplan", "reproduced", "test"],
        [[r.setting, r.published, r.tdplan, r.reproduced, r.test] for r in rows],
    )
    return (
        body + f"\n\nOf {len(rows)} rows: {counts['yes']} reproduced, {counts['direction only']} in direction only, "
        f"{counts['no']} not reproduced. *Reproduced* means tdplan's figure is within {BAND_LOW:g}× the low end "
        f'and {BAND_HIGH:g}× the high end of the published range ("up to X" counts as the range X to X); '
        "*direction only*, on the published side of 1× but outside that band."
    )


def rows_matching(*groups: str) -> list[Row]:
    return [r for r in seed_rows() if r.group in groups]


def page_seed_table(rows: list[Row]) -> str:
    return table(
        ["setting", "published", "tdplan", "reproduced"],
        [[r.setting, r.published, r.tdplan, r.reproduced] for r in rows],
    )


def block_compare_example() -> str:
    comparison = compare("llama-2-70b", "8xL20", "sharegpt", dtype="fp16")
    rows = []
    for s in comparison.per_strategy:
        if s.plan is None:
            rows.append([f"`{s.strategy}`", "none", "", ""])
            continue
        plan = ", ".join(f"{i.count} × {i.role} TP{i.tp} PP{i.pp}" for i in s.plan.instances)
        rows.append(
            [f"`{s.strategy}`", plan, f"{s.plan.predicted.output_throughput_tok_s:,.0f}", f"{s.margin_pct:+.0f}%"]
        )
    return (
        "`tdplan compare --model llama-2-70b --gpus 8xL20 --workload sharegpt --dtype fp16` (offline, so the "
        "objective is throughput):\n\n"
        + table(["strategy", "its best plan", "tok/s", "behind by"], rows, ["---", "---", "---:", "---:"])
        + f"\n\n`why:` {comparison.reason}"
    )


# --- per-page blocks ----------------------------------------------------------------------------------------


def block_temporal_seed() -> str:
    t = td_pipe()
    rows = rows_matching("tdpipe")
    extra = (
        f"\n\nThe best colocated configuration in the same setting ({layout(t.colocated_best)}, `max_batch` "
        f"{t.colocated_best.knobs['max_batch']:g}) gives {t.colocated_best_tok_s:.0f} tok/s: the temporal "
        f"pipeline's best PP8 configuration ({layout(t.best)}, "
        f"{knob_text(t.best.knobs, 'prefill_tokens', 'switch_share')}) is {x(t.best_tok_s / t.colocated_best_tok_s)} "
        "that."
    )
    lat = temporal_latency_rows()
    lat_table = table(
        ["load", "rate (req/s)", "mean TTFT (s)", "p90 TTFT (s)", "mean TPOT (s)"],
        [
            [f"{share:.0%}", f"{r.rate_req_s:.2f}", f"{r.ttft_s:.2f}", f"{r.ttft_p90_s:.2f}", f"{r.tpot_s:.3f}"]
            for share, r in lat
        ],
        ["---:", "---:", "---:", "---:", "---:"],
    )
    return page_seed_table(rows) + extra + "\n\nUnder Poisson load, the same configuration:\n\n" + lat_table


def block_distserve_seed() -> str:
    col, dis = distserve()
    rows = rows_matching("distserve")
    colocated_cap = (col.request_throughput_req_s or 0.0) / col.gpus_used
    return (
        page_seed_table(rows)
        + f"\n\nBest colocated: {layout(col)}, `max_batch` {col.knobs['max_batch']:g}: goodput "
        f"{col.goodput_req_s:.2f} req/s ({per_gpu(col):.2f} per GPU) against an offline capacity of "
        f"{colocated_cap:.2f} req/s per GPU ({per_gpu(col) / colocated_cap:.0%}); at its goodput rate TTFT p90 "
        f"{col.ttft_p90_s:.3f} s, TPOT p90 {col.tpot_p90_s:.3f} s, p99 TBT {col.tbt_p99_s:.3f} s.\n"
        f"Best disaggregated: {split_text(dis)}: goodput {dis.goodput_req_s:.2f} req/s; at its goodput rate TTFT "
        f"p90 {dis.ttft_p90_s:.3f} s, TPOT p90 {dis.tpot_p90_s:.3f} s."
    )  # fmt: skip


def block_disagg_sizes() -> str:
    """How many candidates the disaggregated search keeps, OPT-13B fp16, `sharegpt`."""

    def count(num_gpus: int, network: str) -> int:
        return sum(1 for _ in feasible("disaggregated", context("opt-13b", "a100", num_gpus, network=network)))

    return (
        f"- Sizes (OPT-13B fp16 on A100s, 8 per node): 4 GPUs give {count(4, '100gbe')} candidates; 16 GPUs in 2 "
        f"nodes give {count(16, '10gbe')} over 10GbE or {count(16, '8xib-ndr')} over 8 × IB NDR; 64 GPUs over "
        f"8 × IB NDR give {count(64, '8xib-ndr')}."
    )


def block_distserve_reverse() -> str:
    col, dis, sides, transfer_s, prefill_s = reverse()
    side_text = ", ".join(f"{k} {v:.2f}" for k, v in sides.items())
    return (
        page_seed_table(rows_matching("distserve-reverse"))
        + f"\n\nBest disaggregated split: {split_text(dis)}, {dis.detail['placement']} over "
        f"{dis.detail['kv_link']}; capacities of its sides (req/s): {side_text}. A mean prompt's KV takes "
        f"{transfer_s:.2f} s to move against {prefill_s:.2f} s to prefill. Best colocated: {layout(col)}."
    )


def block_sarathi_seed() -> str:
    slo_s, (_, ch_k), (_, co_k) = sarathi()
    return (
        page_seed_table(rows_matching("sarathi"))
        + f"\n\nThe SLO is 5 × {slo_s / 5 * 1e3:.1f} ms = {slo_s * 1e3:.1f} ms. Best knobs: chunked "
        f"{knob_text(ch_k, 'chunk_size', 'max_batch')}; colocated {knob_text(co_k, 'max_batch')}."
    )


CHUNK_RATE_REQ_S = 6.0


@cache
def chunk_rows() -> list[list[str]]:
    ctx = mistral()
    out = []
    settings = [("chunked", {"chunk_size": float(c), "max_batch": 256.0}) for c in (64, 128, 256, 512, 1024, 2048)]
    for name, knobs in [*settings, ("colocated", {"max_batch": 256.0})]:
        c = next(feasible(name, ctx, knobs))
        r = at_rate(name, ctx, c, CHUNK_RATE_REQ_S)
        label = f"{knobs['chunk_size']:g}" if name == "chunked" else "`colocated` (prompts first)"
        out.append(
            [label, f"{r.capacity_req_s:.1f}", f"{r.tbt_p99_s * 1e3:.0f}", f"{r.tpot_s * 1e3:.1f}",
             f"{r.ttft_s * 1e3:.0f}", f"{r.ttft_p99_s * 1e3:.0f}"]
        )  # fmt: skip
    return out


def block_chunk_sizes() -> str:
    return (
        f"Mistral-7B fp16, one A100-SXM-80GB, `sharegpt` preset, `max_batch` 256; latencies at "
        f"{CHUNK_RATE_REQ_S:g} req/s:\n\n"
        + table(
            [
                "chunk_size",
                "offline capacity (req/s)",
                "p99 TBT (ms)",
                "mean TPOT (ms)",
                "mean TTFT (ms)",
                "p99 TTFT (ms)",
            ],
            chunk_rows(),
            ["---:"] * 6,
        )
    )


def block_colocated_example() -> str:
    ctx = mistral()
    w = ctx.workload
    caps = {
        b: capacity("colocated", ctx, next(feasible("colocated", ctx, {"max_batch": b}))) for b in (64.0, 256.0, 1024.0)
    }
    c = next(feasible("colocated", ctx, {"max_batch": 256.0}))
    rows = []
    for share in (0.1, 0.25, 0.5, 0.75, 0.9):
        r = at_rate("colocated", ctx, c, share * caps[256.0])
        rows.append(
            [f"{share:.0%}", f"{r.rate_req_s:.2f}",
             f"{r.ttft_s * 1e3:.0f} / {r.ttft_p90_s * 1e3:.0f} / {r.ttft_p99_s * 1e3:.0f}",
             f"{r.tpot_s * 1e3:.1f} / {r.tpot_p90_s * 1e3:.1f} / {r.tpot_p99_s * 1e3:.1f}",
             f"{r.tbt_p99_s * 1e3:.0f}"]
        )  # fmt: skip
    t = td_pipe()
    return (
        f"Mistral-7B fp16 on one A100-SXM-80GB, `sharegpt` preset (mean prompt {w.mean_input_len:.0f}, mean output "
        f"{w.mean_output_len:.0f}, output-weighted decode context {w.mean_decode_context:.0f}), vLLM profile. "
        f"Offline capacity: {caps[64.0]:.2f} req/s with `max_batch` 64, {caps[256.0]:.2f} with 256 and "
        f"{caps[1024.0]:.2f} with 1024. With `max_batch` 256, at shares of that capacity:\n\n"
        + table(
            ["load", "rate (req/s)", "TTFT mean / p90 / p99 (ms)", "TPOT mean / p90 / p99 (ms)", "p99 TBT (ms)"],
            rows,
            ["---", "---:", "---", "---", "---:"],
        )
        + f"\n\nThe naive pipeline, for Llama-2-70B fp16 on 8 L20s (PCIe), `sharegpt`, `max_batch` 256: TP8 gives "
        f"{t.tp8_tok_s:.0f} tok/s, TP1 PP8 {t.naive_tok_s:.0f}."
    )  # fmt: skip


def block_gllm_seed() -> str:
    g = gllm()
    _, _, ours_text, base_text = g["best"]
    ctx = context("llama-2-70b", "l20", 8)
    c = gllm_candidate(8, 1)
    r = at_rate("throttled-pipeline", ctx, c, 0.5 * capacity("throttled-pipeline", ctx, c))
    return (
        page_seed_table(rows_matching("gllm"))
        + f"\n\nThe best configurations: throttled {ours_text}; colocated {base_text}. The naive-pipeline "
        f"baselines are colocated at its best `max_batch` on the same layout ({g['TP1 PP4 × 2'][3]}; "
        f"{g['TP1 PP8'][3]}).\n\nAt half of capacity, TP1 PP8 with gLLM's defaults: mean TPOT "
        f"{r.tpot_s * 1e3:.0f} ms, mean TTFT {r.ttft_s * 1e3:.0f} ms (p99 {r.ttft_p99_s * 1e3:.0f} ms), p99 TBT "
        f"{r.tbt_p99_s * 1e3:.0f} ms."
    )


def block_ecoserve_seed() -> str:
    macro, col = ecoserve()
    return (
        page_seed_table(rows_matching("ecoserve"))
        + f"\n\nBest macro-instance: {layout(macro)} instances, `macro_size` {macro.knobs['macro_size']:g} "
        f"({macro.gpus_used} GPUs used); best colocated: {layout(col)}, `max_batch` {col.knobs['max_batch']:g}."
    )


def block_sm_seed() -> str:
    return page_seed_table(rows_matching("sm"))


def block_sm_shares() -> str:
    results = sm_results()
    rows = []
    shares = sorted(
        (r for r in results["sm-partition"] if r.knobs["max_batch"] == 1024), key=lambda r: r.knobs["prefill_sm_share"]
    )
    for r in [*(r for r in results["colocated"] if r.knobs["max_batch"] == 1024), *shares]:
        name = "`colocated`" if r.strategy == "colocated" else f"share {r.knobs['prefill_sm_share']:g}"
        ttft_ms, tpot_ms = (r.ttft_p90_s or 0.0) * 1e3, (r.tpot_p90_s or 0.0) * 1e3
        rows.append(
            [name, f"{r.request_throughput_req_s:.1f}", f"{r.goodput_req_s:.1f}", f"{ttft_ms:.0f}", f"{tpot_ms:.1f}"]
        )
    sm = sm_best("sm-partition")
    return (
        "Llama-3.1-8B bf16 on one H100-SXM, `sharegpt` preset, vLLM calibration, `max_batch` 1024, SLO TTFT 0.5 s "
        "and TPOT 0.05 s at 90%. Latencies are at the goodput rate:\n\n"
        + table(
            ["configuration", "capacity (req/s)", "goodput (req/s)", "p90 TTFT (ms)", "p90 TPOT (ms)"],
            rows,
            ["---", "---:", "---:", "---:", "---:"],
        )
        + f"\n\nThe best sm-partition configuration by goodput over the whole knob grid: "
        f"{knob_text(sm.knobs, 'prefill_sm_share', 'max_batch')}. colocated's goodput is "
        f"{(sm_best('colocated').goodput_req_s or 0.0) / (sm_best('colocated').request_throughput_req_s or 1.0):.0%} "
        "of its capacity."
    )


def block_seesaw_seed() -> str:
    col, col_c, ours, ours_c, same, same_c = seesaw()
    _, slow_c = seesaw_slow_link()
    strategy = pr.PhaseResharding()
    ctx = context("qwen2.5-32b", "rtx-4090", 8, workload="humaneval")
    cycle = strategy.cycle(ctx, slow_c)
    n = cycle.max_requests
    return (
        page_seed_table(rows_matching("seesaw"))
        + f"\n\nBest colocated: {layout(col_c)}, `max_batch` {col_c.knobs['max_batch']:g}. Best re-sharding pair: "
        f"{pair_text(ours_c)}, {knob_text(ours_c.knobs, 'kv_fill', 'max_batch')}. The best pair with the same "
        f"layout in both phases ({layout(same_c)}, no re-shard) gives {same:.3f} req/s: {x(same / col)} colocated; "
        f"re-sharding adds {x(ours / same)} on top.\n\nOn the slow link, the pair with the largest re-shard share "
        f"({pair_text(slow_c)}): {cycle.reshard_s(n):.2f} s of re-shards, {cycle.prefill_s(n):.2f} s of prefill "
        f"and {cycle.decode_s(n):.2f} s of decode per cycle."
    )


def block_seesaw_phases() -> str:
    ctx = context("llama-2-70b", "l20", 8, workload="longbench")
    strategy = pr.PhaseResharding()
    rows = []
    for fill in (0.02, 0.1, 0.25, 0.5, 0.9):
        c = next(
            c
            for c in feasible("phase-resharding", ctx, {"kv_fill": fill, "max_batch": 256})
            if (c.detail["prefill_tp"], c.detail["prefill_pp"], c.tp, c.pp) == (1, 8, 4, 2)
        )
        cycle = strategy.cycle(ctx, c)
        n = cycle.max_requests
        share = cycle.reshard_s(n) / cycle.length_s(n)
        times = [cycle.prefill_s(n), cycle.reshard_s(n), cycle.decode_s(n)]
        rows.append([f"{fill:g}", f"{n:.1f}", *(f"{t:.2f}" for t in times), f"{share:.0%}",
                     f"{strategy.capacity_req_s(ctx, c):.3f}"])  # fmt: skip
    return (
        "Phase length, for Llama-2-70B fp16 on 8× L20 with the `longbench` preset, prefill TP1 × PP8, decode TP4 × "
        "PP2 and `max_batch` 256 (re-shard = both switches per cycle):\n\n"
        + table(
            [
                "`kv_fill`",
                "requests per cycle",
                "prefill (s)",
                "re-shards (s)",
                "decode (s)",
                "re-shard share",
                "capacity (req/s)",
            ],
            rows,
            ["---:"] * 7,
        )
    )


def block_seesaw_bytes() -> str:
    model = catalog().model("llama-2-7b")
    w0, kv0 = pr.gpu_reshard_bytes(model, 2, 2, pr.Layout(2, 1), pr.Layout(1, 2), 0)
    w1, _ = pr.gpu_reshard_bytes(model, 2, 2, pr.Layout(2, 1), pr.Layout(1, 2), 1)
    back, _ = pr.gpu_reshard_bytes(model, 2, 2, pr.Layout(1, 2), pr.Layout(2, 1), 0)
    return (
        f"Llama-2-7B fp16 from TP2 to PP2 on 2 GPUs: GPU 0 receives {w0:,.0f} bytes of weights, GPU 1 {w1:,.0f}, "
        f"and each {kv0:,.0f} bytes of KV per cached token; back from PP2 to TP2, GPU 0 receives {back:,.0f} bytes."
    )


def block_defaults() -> str:
    from planner.comparison import DEFAULT_SLO
    from planner.specs.workload import PRESET_SAMPLES

    return (
        f"The SLO target is TTFT {DEFAULT_SLO.ttft_s:g} s and TPOT {DEFAULT_SLO.tpot_s:g} s for "
        f"{DEFAULT_SLO.attainment:.0%} of requests unless `--ttft`, `--tpot` or `--attainment` says otherwise. The "
        f"workload is a set of requests: a preset (`sharegpt`, `humaneval`, `longbench`, ...: {PRESET_SAMPLES} real "
        "pairs sampled from the data, or fixed quantiles of a shape) or a CSV of `input_len,output_len`."
    )


def block_knobs() -> str:
    from planner.strategies import REGISTRY

    rows = []
    for name in sorted(REGISTRY):
        knobs = get_strategy(name).knobs
        text = "; ".join(f"`{k.name}` ({k.default:g}; {', '.join(f'{v:g}' for v in k.search)})" for k in knobs)
        rows.append([f"`{name}`", text or "none", f"[{name}](strategies/{name}.md)"])
    return table(["name", "knobs (default; searched)", "page"], rows)


def strategy_knobs(name: str) -> Callable[[], str]:
    def render() -> str:
        knobs = get_strategy(name).knobs
        rows = [[f"`{k.name}`", f"{k.default:g}", ", ".join(f"{v:g}" for v in k.search), k.help] for k in knobs]
        return table(["knob", "default", "searched", "what it does"], rows)

    return render


KNOB_PAGES = ("chunked", "colocated", "macro-instance", "phase-resharding", "sm-partition", "temporal-pipeline")
KNOB_PAGES += ("throttled-pipeline",)
BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "knobs": ("strategies.md", block_knobs),
    "defaults": ("strategies.md", block_defaults),
    "seed_results": ("strategies.md", block_seed_results),
    "compare_example": ("strategies.md", block_compare_example),
    "colocated_example": ("strategies/colocated.md", block_colocated_example),
    "chunk_sizes": ("strategies/chunked.md", block_chunk_sizes),
    "sarathi_seed": ("strategies/chunked.md", block_sarathi_seed),
    "distserve_seed": ("strategies/disaggregated.md", block_distserve_seed),
    "distserve_reverse": ("strategies/disaggregated.md", block_distserve_reverse),
    "disagg_sizes": ("strategies/disaggregated.md", block_disagg_sizes),
    "ecoserve_seed": ("strategies/macro-instance.md", block_ecoserve_seed),
    "seesaw_bytes": ("strategies/phase-resharding.md", block_seesaw_bytes),
    "seesaw_phases": ("strategies/phase-resharding.md", block_seesaw_phases),
    "seesaw_seed": ("strategies/phase-resharding.md", block_seesaw_seed),
    "sm_shares": ("strategies/sm-partition.md", block_sm_shares),
    "sm_seed": ("strategies/sm-partition.md", block_sm_seed),
    "temporal_seed": ("strategies/temporal-pipeline.md", block_temporal_seed),
    "gllm_seed": ("strategies/throttled-pipeline.md", block_gllm_seed),
    **{f"knobs_{name.replace('-', '_')}": (f"strategies/{name}.md", strategy_knobs(name)) for name in KNOB_PAGES},
}
SLOW: frozenset[str] = frozenset()  # blocks too slow for the test (none today)


def write_blocks() -> None:
    for page in sorted({p for p, _ in BLOCKS.values()}):
        path = DOCS / page
        rendered = {name: render() for name, (where, render) in BLOCKS.items() if where == page}
        path.write_text(with_blocks(path.read_text(), rendered, str(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", choices=sorted(BLOCKS), help="print only this block")
    parser.add_argument("--write", action="store_true", help="refresh the generated blocks of the pages in place")
    args = parser.parse_args()
    if args.write:
        write_blocks()
        return
    for name, (page, render) in BLOCKS.items():
        if args.block in (None, name):
            print(f"<!-- {page}: generated:{name} -->\n{render()}\n")


if __name__ == "__main__":
    main()
