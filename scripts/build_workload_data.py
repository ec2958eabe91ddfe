"""Build planner/data/workloads/lengths.csv.gz: request lengths of four real workloads, for the fitted presets.

    python scripts/build_workload_data.py                 download the source and print what it would write
    python scripts/build_workload_data.py --write         ... and write planner/data/workloads/lengths.csv.gz
    python scripts/build_workload_data.py --sdist FILE    use a vidur source archive already on disk

Source: the processed traces in the source distribution of vidur 0.0.14 on PyPI (vidur-0.0.14.tar.gz, fetched
from PyPI's simple index and checked by its sha256; MIT, Microsoft and Georgia Tech; see
planner/data/workloads/NOTICE):

    sharegpt-multiturn   sharegpt_8k_filtered_stats_llama2_tokenizer.csv (ShareGPT conversations, <= 8k)
    arxiv-summarization  arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv (arXiv papers, <= 4k)
    azure-conv           splitwise_conv.csv (Azure LLM inference trace 2023, conversation service, one hour)
    azure-code           splitwise_code.csv (Azure LLM inference trace 2023, code service, one hour)

Each preset keeps ROWS requests drawn at random without replacement (seed 0), as (input_len, output_len) pairs,
so a context cap (`--workload NAME:TOKENS`) filters real pairs. The script prints the source's statistics beside
the kept rows' so the sample can be judged; the arrival times of the Azure traces are summarised, not kept.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import re
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

VERSION = "0.0.14"
SHA256 = "3be8b88093871f0e1c428e77d431c2155dbaaf1306fca31c8a1f58cfb6278b21"
ROWS = 4096
OUT = Path(__file__).resolve().parent.parent / "planner" / "data" / "workloads" / "lengths.csv.gz"
FILES = {
    "sharegpt-multiturn": "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
    "arxiv-summarization": "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
    "azure-conv": "splitwise_conv.csv",
    "azure-code": "splitwise_code.csv",
}


def fetch_sdist(directory: Path) -> Path:
    """vidur's source archive from PyPI's simple index (the wheels do not carry the traces), checked by its hash."""
    index = "https://pypi.org/simple/vidur/"
    with urllib.request.urlopen(index, timeout=60) as page:
        links = re.findall(rf'href="([^"]*/vidur-{re.escape(VERSION)}\.tar\.gz)[^"]*"', page.read().decode())
    if not links:
        raise SystemExit(f"no vidur-{VERSION}.tar.gz on {index}")
    with urllib.request.urlopen(urllib.parse.urljoin(index, links[0]), timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise SystemExit(f"vidur-{VERSION}.tar.gz from {index} does not have the expected sha256 {SHA256}")
    archive = directory / f"vidur-{VERSION}.tar.gz"
    archive.write_bytes(data)
    return archive


def read_traces(archive: Path) -> dict[str, dict[str, np.ndarray]]:
    """Columns of each trace file in the archive, as float arrays."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with tarfile.open(archive) as tar:
        for preset, name in FILES.items():
            member = tar.extractfile(f"vidur-{VERSION}/data/processed_traces/{name}")
            assert member is not None, name
            rows = list(csv.DictReader(io.TextIOWrapper(member, encoding="utf-8")))
            out[preset] = {column: np.array([float(r[column]) for r in rows]) for column in rows[0]}
    return out


def summary(inputs: np.ndarray, outputs: np.ndarray) -> str:
    def stats(x: np.ndarray) -> str:
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        return f"{x.mean():7.0f} {p50:6.0f} {p90:6.0f} {p99:6.0f} {x.max():6.0f}"

    rho = spearmanr(inputs, outputs)[0]
    return f"{len(inputs):6d} | {stats(inputs)} | {stats(outputs)} | {rho:+.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", type=Path, help=f"vidur-{VERSION}.tar.gz already downloaded")
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(OUT.parents[2])}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        traces = read_traces(args.sdist or fetch_sdist(Path(tmp)))
    print("preset              source |   rows | input mean p50 p90 p99 max | output mean p50 p90 p99 max | Spearman")
    lines = ["preset,input_len,output_len"]
    for preset, columns in traces.items():
        inputs = columns["num_prefill_tokens"].astype(int)
        outputs = columns["num_decode_tokens"].astype(int)
        keep = np.sort(np.random.default_rng(0).choice(len(inputs), size=min(ROWS, len(inputs)), replace=False))
        print(f"{preset:19s} all    | {summary(inputs, outputs)}")
        print(f"{preset:19s} kept   | {summary(inputs[keep], outputs[keep])}")
        if "arrived_at" in columns:
            gaps = np.diff(columns["arrived_at"])
            span = columns["arrived_at"][-1] - columns["arrived_at"][0]
            rate, cv = (len(gaps) + 1) / span, gaps.std() / gaps.mean()
            print(f"{'':19s} arrivals: {rate:.2f} req/s over {span:.0f} s, gap CV {cv:.2f}")
        lines += [f"{preset},{i},{o}" for i, o in zip(inputs[keep], outputs[keep], strict=True)]
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
        print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
