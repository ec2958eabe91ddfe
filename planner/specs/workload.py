"""Request-length workloads: fixed lengths, named presets, or a CSV of (input_len, output_len) pairs.

A workload is a finite, deterministic sample of requests; models take means from it and latency percentiles
over it. Presets are log-normal length distributions clipped to a range, sampled at fixed quantiles so that
every run sees the same requests. Their parameters are the summary statistics each preset names, with where
the figures come from; they are approximations of the traffic shape, not the datasets themselves.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from pydantic import Field
from scipy.stats import norm

from planner.errors import PlannerError
from planner.specs.hardware import Frozen

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
        values = np.exp(mu + sigma * np.asarray(norm.ppf(probabilities), dtype=float))
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


class Workload(Frozen):
    """A deterministic sample of requests: input_lens[i], output_lens[i] are request i's lengths in tokens."""

    name: str
    input_lens: tuple[int, ...] = Field(min_length=1)
    output_lens: tuple[int, ...] = Field(min_length=1)

    @classmethod
    def fixed(cls, input_len: int, output_len: int) -> Workload:
        if input_len < 1 or output_len < 1:
            raise PlannerError(f"request lengths must be at least 1 token, got {input_len} and {output_len}")
        return cls(name=f"fixed {input_len}/{output_len}", input_lens=(input_len,), output_lens=(output_len,))

    @classmethod
    def preset(cls, name: str) -> Workload:
        if name not in PRESETS:
            raise PlannerError(f"unknown workload '{name}': use {', '.join(PRESETS)} or a CSV of input_len,output_len")
        preset = PRESETS[name]
        probabilities = (np.arange(PRESET_SAMPLES) + 0.5) / PRESET_SAMPLES
        inputs = preset.input.quantiles(probabilities)
        # Outputs are paired with inputs in a fixed shuffled order: lengths are independent, draws reproducible.
        outputs = preset.output.quantiles(np.random.default_rng(0).permutation(probabilities))
        return cls(name=name, input_lens=tuple(map(int, inputs)), output_lens=tuple(map(int, outputs)))

    @classmethod
    def from_csv(cls, path: Path) -> Workload:
        """Read a CSV with `input_len` and `output_len` columns, one request per row."""
        try:
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            inputs = tuple(int(row["input_len"]) for row in rows)
            outputs = tuple(int(row["output_len"]) for row in rows)
        except FileNotFoundError:
            raise PlannerError(f"no workload file at {path}") from None
        except (KeyError, ValueError, TypeError):
            raise PlannerError(f"{path}: expected integer columns input_len and output_len in every row") from None
        if not inputs or min(inputs) < 1 or min(outputs) < 1:
            raise PlannerError(f"{path}: needs at least one request, with lengths of at least 1 token")
        return cls(name=path.stem, input_lens=inputs, output_lens=outputs)

    @classmethod
    def parse(cls, text: str) -> Workload:
        """A preset name or a CSV path."""
        if text.lower() in PRESETS:
            return cls.preset(text.lower())
        return cls.from_csv(Path(text).expanduser())

    @classmethod
    def resolve(cls, workload: str | Workload | None, input_len: int | None, output_len: int | None) -> Workload:
        """`--workload NAME|FILE.csv`, or fixed `--input-len`/`--output-len`."""
        if isinstance(workload, Workload):
            return workload
        if workload is not None:
            return cls.parse(workload)
        if input_len is not None and output_len is not None:
            return cls.fixed(input_len, output_len)
        raise PlannerError("give --workload NAME|FILE.csv, or --input-len and --output-len")

    @property
    def mean_input_len(self) -> float:
        return float(np.mean(self.input_lens))

    @property
    def mean_output_len(self) -> float:
        return float(np.mean(self.output_lens))

    @property
    def max_request_tokens(self) -> int:
        return max(i + o for i, o in zip(self.input_lens, self.output_lens, strict=True))

    @property
    def mean_decode_context(self) -> float:
        """Mean KV context a decode step attends to: output-weighted mean of input + output / 2."""
        inputs, outputs = np.array(self.input_lens), np.array(self.output_lens)
        return float(np.sum(outputs * (inputs + outputs / 2)) / np.sum(outputs))

    @property
    def is_fixed(self) -> bool:
        return len(set(zip(self.input_lens, self.output_lens, strict=True))) == 1
