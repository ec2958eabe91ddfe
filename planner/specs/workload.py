"""Request-length workloads: fixed lengths, named presets, or a CSV of (input_len, output_len) pairs.

A workload is a finite, deterministic sample of requests; models take means from it and latency percentiles
over it. Presets are log-normal length distributions clipped to a range, sampled at fixed quantiles so that
every run sees the same requests. Their parameters are the summary statistics each preset names, with where
the figures come from; they are approximations of the traffic shape, not the datasets themselves.
"""

from __future__ import annotations

import difflib
import io
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist

import numpy as np
from pydantic import Field

from planner.errors import PlannerError
from planner.specs.hardware import Frozen
from planner.specs.inputs import MAX_REQUEST_TOKENS, MAX_WORKLOAD_BYTES, MAX_WORKLOAD_ROWS, count, read_text
from planner.specs.memo import IdentityMemo

PRESET_SAMPLES = 256


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
    name: str
    description: str
    source: str
    input: LengthShape
    output: LengthShape


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="sharegpt",
            description="chatbot conversations (ShareGPT), prompts up to 1024 tokens, prompt + output <= 2048",
            source="TD-Pipe benchmark filter (ShareGPT V3, inputs <= 1024, input + output <= 2048); means of "
            "about 300 input and 250 output tokens with heavy tails, as ShareGPT length summaries in the "
            "vLLM, DistServe and Sarathi-Serve evaluations report (recalled, not re-measured here)",
            input=LengthShape(mean=300, cv=1.0, min_len=4, max_len=1024),
            output=LengthShape(mean=250, cv=0.9, min_len=4, max_len=1024),
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
            description="code completion (HumanEval): short prompts and short outputs",
            source="DistServe's code-completion workload (HumanEval); prompts about 150 tokens, completions "
            "about 100 (recalled summary statistics)",
            input=LengthShape(mean=150, cv=0.4, min_len=32, max_len=512),
            output=LengthShape(mean=100, cv=0.6, min_len=8, max_len=512),
        ),
    )
}


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
    return f"unknown workload '{name}': {hint}use a preset ({', '.join(PRESETS)}) or a CSV file of input_len,output_len"


class Workload(Frozen):
    """A deterministic sample of requests: input_lens[i], output_lens[i] are request i's lengths in tokens."""

    name: str
    input_lens: tuple[int, ...] = Field(min_length=1)
    output_lens: tuple[int, ...] = Field(min_length=1)

    @classmethod
    def fixed(cls, input_len: int, output_len: int) -> Workload:
        """Every request `input_len` prompt tokens and `output_len` generated tokens."""
        inputs = count(input_len, "input_len", MAX_REQUEST_TOKENS)
        outputs = count(output_len, "output_len", MAX_REQUEST_TOKENS)
        assert inputs is not None and outputs is not None
        return cls(name=f"fixed {inputs}/{outputs}", input_lens=(inputs,), output_lens=(outputs,))

    @classmethod
    def preset(cls, name: str) -> Workload:
        if name not in PRESETS:
            raise PlannerError(_unknown_workload(name), "workload")
        preset = PRESETS[name]
        probabilities = (np.arange(PRESET_SAMPLES) + 0.5) / PRESET_SAMPLES
        inputs = preset.input.quantiles(probabilities)
        # Outputs are paired with inputs in a fixed shuffled order: lengths are independent, draws reproducible.
        outputs = preset.output.quantiles(np.random.default_rng(0).permutation(probabilities))
        return cls(name=name, input_lens=tuple(map(int, inputs)), output_lens=tuple(map(int, outputs)))

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
        return cls.model_construct(  # validated above; pydantic would re-check a million ints one by one
            name=path.stem, input_lens=tuple(table[:, 0].tolist()), output_lens=tuple(table[:, 1].tolist())
        )

    @classmethod
    def parse(cls, text: str) -> Workload:
        """A preset name or a CSV path."""
        if text.strip().lower() in PRESETS:
            return cls.preset(text.strip().lower())
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
        return len(set(zip(self.input_lens, self.output_lens, strict=True))) == 1
