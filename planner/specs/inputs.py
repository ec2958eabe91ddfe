"""Where raw input becomes specs: every number and every file a user hands tdplan is checked here.

Numbers must be real (not bool or text), finite, within a stated range, and whole where they count things.
Files must exist, be regular files, be readable, fit a size limit and decode as UTF-8. Each check raises
`PlannerError` with the library parameter at fault (`param`) and the fix; the command line maps the parameter
to its flag. The limits below are stated once here and quoted in the messages.
"""

from __future__ import annotations

import math
from pathlib import Path

from planner.errors import PlannerError

MAX_GPUS = 65_536  # GPUs in one cluster: beyond any deployment this model is meant for
MAX_GPUS_PER_NODE = 1_024  # GPUs sharing one intra-node link (rack-scale NVLink domains reach 576)
MAX_NETWORK_PORTS = 64  # network ports per node
MAX_REQUEST_TOKENS = 16_777_216  # 2^24 tokens (prompt + output) in one request
MAX_NUM_REQUESTS = 1_000_000_000  # requests queued at once (offline)
MAX_CONCURRENCY = 100_000_000  # clients of a closed loop
MAX_RATE_REQ_S = 1e9  # Poisson arrival rate, requests/s
MAX_SLO_S = 86_400.0  # latency targets, seconds (one day)
# Requests in a workload CSV. Reading is vectorized (a million rows in a fraction of a second), but every
# evaluation walks each request, about 50 us a request: 100,000 requests take seconds to evaluate, a million
# a minute. Percentiles over 100,000 requests are within a fraction of a percent of the full trace's.
MAX_WORKLOAD_ROWS = 100_000
MAX_WORKLOAD_BYTES = 64 * 1024**2  # size of a workload CSV
MAX_CONFIG_BYTES = 4 * 1024**2  # size of a catalog YAML file or a config.json


def _describe(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def format_number(value: float) -> str:
    """16,777,216 rather than 1.67772e+07; 0.5 as 0.5."""
    if not math.isfinite(value):
        return str(value)
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e18 else f"{value:g}"


def check_number(
    value: float | None, param: str, *, integer: bool, low: float, high: float, low_open: bool = False
) -> float | None:
    """`value` itself (an int when `integer`), or PlannerError unless it is a finite real number in
    [low, high] ((low, high] with `low_open`), whole when `integer`. None passes (an omitted option)."""
    if value is None:
        return None
    kind = "whole number" if integer else "number"
    bound = f"greater than {format_number(low)}" if low_open else f"at least {format_number(low)}"
    wanted = f"a {kind} {bound} and at most {format_number(high)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlannerError(f"must be {wanted}, got {_describe(value)} ({type(value).__name__})", param)
    if not math.isfinite(value):
        raise PlannerError(f"must be {wanted}, got {value}", param)
    if integer and value != int(value):
        raise PlannerError(f"must be {wanted}, got {value:g}: give a whole number", param)
    if value < low or (low_open and value == low) or value > high:
        raise PlannerError(f"must be {wanted}, got {format_number(value)}", param)
    return int(value) if integer else value


def count(value: float | None, param: str, high: float, low: int = 1) -> int | None:
    """A whole number of things (tokens, GPUs, requests) in [low, high]; None passes."""
    checked = check_number(value, param, integer=True, low=low, high=high)
    return None if checked is None else int(checked)


def positive(value: float | None, param: str, high: float) -> float | None:
    """A finite number in (0, high]; None passes."""
    return check_number(value, param, integer=False, low=0, high=high, low_open=True)


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1024**2:,.1f} MiB" if num_bytes >= 1024**2 else f"{num_bytes:,} bytes"


def read_text(path: Path, param: str | None, what: str, max_bytes: int) -> str:
    """The UTF-8 text of the regular file at `path`, or PlannerError saying which check failed and what to do:
    missing, a directory or other non-file, unreadable, larger than `max_bytes`, or not UTF-8 text.
    `what` names the file's role in the messages ("workload CSV", "config.json")."""
    if not path.exists():
        raise PlannerError(f"no {what} at {path}: check the path", param)
    if path.is_dir():
        raise PlannerError(f"{path} is a directory: point it at a {what} file", param)
    if not path.is_file():
        raise PlannerError(f"{path} is not a regular file: point it at a {what} file", param)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise PlannerError(f"{path} is {_size(size)}, over the {_size(max_bytes)} limit for a {what}", param)
        data = path.read_bytes()
    except OSError as err:
        raise PlannerError(f"cannot read {path} ({err.strerror or err}): check its permissions", param) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PlannerError(
            f"{path} is not UTF-8 text (undecodable byte at offset {err.start}): is it a {what}?", param
        ) from None


def check_output_file(path: Path, param: str) -> None:
    """PlannerError unless `path` can be written as a file: not a directory, and no file stands where a
    parent folder must be."""
    if path.is_dir():
        raise PlannerError(f"{path} is a directory: give a file name, e.g. {path / 'validation.md'}", param)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PlannerError(f"{parent} is a file, so {path} cannot be created under it", param)
            break
