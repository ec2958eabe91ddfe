"""Strategy knobs as users give them: `KEY=NUMBER` text read into numbers, and the values each knob accepts.

Every knob of every strategy has an entry in `KNOB_RANGES` (a name means the same thing in every strategy that
has it); `Strategy.check_knobs` refuses a pinned value outside it before any configuration is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from planner.errors import PlannerError
from planner.specs.inputs import format_number


@dataclass(frozen=True)
class KnobRange:
    """The values a knob accepts: a whole count in [low, high], or a share in [low, high] with the ends
    excluded where a value there divides by zero or leaves a phase nothing to do."""

    integer: bool
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        low, high = format_number(self.low), format_number(self.high)
        if self.integer:
            return f"a whole number from {low} to {high}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"a number in {left}{low}, {high}{right}"

    def admits(self, value: float) -> bool:
        return (
            math.isfinite(value)
            and (not self.integer or value == int(value))
            and (self.low < value if self.low_open else self.low <= value)
            and (value < self.high if self.high_open else value <= self.high)
        )


_COUNT = KnobRange(integer=True, low=1, high=1_048_576)
# Every knob of every strategy, by name (a name means the same thing in every strategy that has it).
KNOB_RANGES: dict[str, KnobRange] = {
    "chunk_size": _COUNT,  # tokens per iteration
    "max_batch": _COUNT,  # sequences in flight
    "macro_size": KnobRange(integer=True, low=1, high=64),  # instances per macro instance
    "prefill_tokens": _COUNT,
    "max_prefill_tokens": _COUNT,
    "min_prefill_tokens": _COUNT,
    "iterp": KnobRange(integer=True, low=1, high=1_024),  # micro-batches the waiting prompts spread over
    "kv_fill": KnobRange(integer=False, low=0, high=1, low_open=True),  # share of the KV cache
    "prefill_sm_share": KnobRange(integer=False, low=0, high=1, low_open=True, high_open=True),  # both get SMs
    "switch_share": KnobRange(integer=False, low=0, high=1, high_open=True),  # 0: TD-Pipe's own test
    "kv_threshold": KnobRange(integer=False, low=0, high=1, high_open=True),  # share kept free
}


def parse_knobs(items: Iterable[str]) -> dict[str, float]:
    """Read `KEY=NUMBER` texts (the CLI's `--knob`) into a mapping; the values are checked per strategy by
    `Strategy.check_knobs`."""
    parsed: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise PlannerError(f"cannot read '{item}': write KEY=NUMBER, e.g. chunk_size=512", "knobs")
        parsed[key.strip()] = number
    return parsed
