"""The report's plots, drawn with matplotlib (Agg) as SVG text that pages inline: no files, no fonts to fetch.

Each function takes the report's numbers and returns one SVG document, or None when there is nothing to draw.
Text stays text (`svg.fonttype: none`), ids are prefixed with the plot's name, and no date is written, so the same
numbers give the same SVG.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from planner.report.breakdown import PARTS, IterationBreakdown
from planner.report.curves import Curves

STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "tdplan-report",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
SIZE_IN = (7.0, 3.6)
MARKERS = "osD^v<>ph*"


@contextmanager
def _figure(height_in: float = SIZE_IN[1]) -> Iterator[tuple[Figure, Axes]]:
    """A figure and its axes in the report's style (call `_svg` inside the block)."""
    with plt.rc_context(STYLE):  # type: ignore[arg-type]
        fig, ax = plt.subplots(figsize=(SIZE_IN[0], height_in), layout="constrained")
        try:
            yield fig, ax
        finally:
            plt.close(fig)


def _svg(fig: Figure, name: str) -> str:
    """The figure as an SVG element that can sit inside HTML beside others: no XML declaration or doctype,
    and every id (and every reference to one) prefixed with `name`, since matplotlib numbers its groups the
    same way in every figure."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = re.sub(r"^.*?(?=<svg)", "", buffer.getvalue(), flags=re.DOTALL).strip()
    text = re.sub(r'(\sid=")([^"]+")', rf"\g<1>{name}-\g<2>", text)
    return re.sub(r'(href="#|url\(#)', rf"\g<1>{name}-", text)


def frontier(curves: Curves) -> str | None:
    """p90 TPOT against output tokens/s per GPU: every strategy's points, faint, and its Pareto front."""
    if not curves.frontier:
        return None
    with _figure() as (fig, ax):
        for k, name in enumerate(sorted(curves.frontier)):
            color = f"C{k % 10}"
            xs, ys = zip(*curves.frontier_points[name], strict=True)
            ax.scatter(xs, [y * 1e3 for y in ys], s=8, color=color, alpha=0.25, linewidths=0)
            fx, fy = zip(*curves.frontier[name], strict=True)
            ax.plot(fx, [y * 1e3 for y in fy], marker=MARKERS[k % len(MARKERS)], ms=4, color=color, label=name)
        ax.axhline(curves.slo.tpot_s * 1e3, color="0.4", ls="--", lw=1, label=f"TPOT SLO {curves.slo.tpot_s:g} s")
        ax.set_yscale("log")
        ax.set_xlabel(f"output tokens/s per GPU ({curves.gpu})")
        ax.set_ylabel("p90 TPOT (ms)")
        ax.set_title(f"Throughput-latency frontier per strategy, {curves.gpu}")
        ax.legend(fontsize=7, ncol=2)
        return _svg(fig, f"frontier-{curves.gpu}")


def goodput_by_gpus(curves: Curves) -> str | None:
    """Goodput within the SLOs against GPU count: the best mix, and each strategy alone."""
    best = curves.goodput_req_s.get("best")
    if not best:
        return None
    with _figure() as (fig, ax):
        for k, name in enumerate(n for n in sorted(curves.goodput_req_s) if n != "best"):
            xs, ys = zip(*curves.goodput_req_s[name], strict=True)
            ax.plot(xs, ys, marker=MARKERS[k % len(MARKERS)], ms=3, lw=1, alpha=0.7, color=f"C{k % 10}", label=name)
        xs, ys = zip(*best, strict=True)
        ax.plot(xs, ys, color="black", lw=2.2, marker="o", ms=5, label="best plan")
        ax.axvline(curves.fleet_gpus, color="0.5", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel(f"GPUs ({curves.gpu})")
        ax.set_ylabel("goodput (req/s within the SLOs)")
        ax.set_title(
            f"Goodput against GPU count, {curves.gpu} (TTFT {curves.slo.ttft_s:g} s, TPOT {curves.slo.tpot_s:g} s, "
            f"{curves.slo.attainment:.0%})"
        )
        ax.legend(fontsize=7, ncol=2)
        return _svg(fig, f"goodput-{curves.gpu}")


def gpus_needed(all_curves: Sequence[Curves]) -> str | None:
    """Fewest GPUs within the SLOs against the target request rate, one line per GPU kind."""
    drawn = [c for c in all_curves if c.gpus_needed]
    if not drawn:
        return None
    with _figure() as (fig, ax):
        for k, c in enumerate(drawn):
            xs, ys = zip(*c.gpus_needed, strict=True)
            ax.step(xs, ys, where="post", color=f"C{k % 10}", lw=1.2, alpha=0.5)
            ax.plot(xs, ys, "o", color=f"C{k % 10}", label=c.gpu)
        ax.set_xlabel("target request rate (req/s)")
        ax.set_ylabel("GPUs needed (min-gpus)")
        ax.set_title("GPUs needed against request rate, per GPU type")
        ax.legend(fontsize=8)
        return _svg(fig, "gpus-needed")


def cost_per_mtok(all_curves: Sequence[Curves]) -> str | None:
    """Dollars per million output tokens of the min-gpus plan against the target rate, per priced GPU kind."""
    drawn = [c for c in all_curves if c.usd_per_mtok]
    if not drawn:
        return None
    with _figure() as (fig, ax):
        for k, c in enumerate(drawn):
            xs, ys = zip(*c.usd_per_mtok, strict=True)
            ax.plot(xs, ys, marker=MARKERS[k % len(MARKERS)], color=f"C{k % 10}", label=c.gpu)
        ax.set_xlabel("target request rate (req/s)")
        ax.set_ylabel("USD per million output tokens")
        ax.set_ylim(bottom=0)
        ax.set_title("Cost per million output tokens (fewest GPUs within the SLOs)")
        ax.legend(fontsize=8)
        return _svg(fig, "cost")


def memory(bars: Mapping[str, Mapping[str, float]], capacity_gib: float | None) -> str | None:
    """Memory per GPU by part, one stacked bar per instance."""
    if not bars:
        return None
    labels = list(bars)
    parts: list[str] = []
    for values in bars.values():
        parts += [p for p in values if p not in parts]
    with _figure(max(2.2, 0.3 * len(labels) + 1.6)) as (fig, ax):
        left = [0.0] * len(labels)
        for k, part in enumerate(parts):
            widths = [bars[label].get(part, 0.0) for label in labels]
            ax.barh(labels, widths, left=left, color=f"C{k % 10}", label=part.replace("_", " "))
            left = [a + b for a, b in zip(left, widths, strict=True)]
        if capacity_gib:
            ax.axvline(capacity_gib, color="black", lw=1, ls="--", label=f"GPU memory {capacity_gib:g} GiB")
        ax.invert_yaxis()
        ax.set_xlabel("GiB per GPU")
        ax.set_title("Memory per GPU by part")
        ax.tick_params(axis="y", labelsize=7)
        fig.legend(fontsize=7, ncol=4, loc="outside lower center")
        return _svg(fig, "memory")


def iteration(breakdown: IterationBreakdown) -> str | None:
    """Share of a prefill and a decode iteration per op kind, with each iteration's length."""
    phases = {"prefill": breakdown.prefill, "decode": breakdown.decode}
    labels = [f"{name}\n{p.total_s * 1e3:,.1f} ms" for name, p in phases.items()]
    with _figure(2.4) as (fig, ax):
        left = [0.0] * len(phases)
        for k, part in enumerate(PARTS):
            shares = [p.seconds.get(part, 0.0) / p.total_s * 100 if p.total_s else 0.0 for p in phases.values()]
            ax.barh(labels, shares, left=left, color=f"C{k % 10}", label=part)
            left = [a + b for a, b in zip(left, shares, strict=True)]
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of the iteration (%)")
        ax.set_title(f"Where an iteration's time goes, {breakdown.instance}")
        fig.legend(fontsize=7, ncol=6, loc="outside lower center")
        return _svg(fig, "iteration")
