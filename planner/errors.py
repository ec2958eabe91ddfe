"""The one exception the library raises for bad input or impossible requests.

A `PlannerError` about one input carries the name of the library parameter it concerns (`param`, e.g. "ttft",
"knobs", "workload"); its message then reads "<param>: <problem and fix>". The command line maps the parameter
to its flag (`--ttft`, `--knob`, `--workload`), prints one line and exits with code 2; the library lets it
propagate.
"""

from __future__ import annotations


class PlannerError(Exception):
    """Bad input or an impossible request: the message names the problem and the fix.

    param: the library parameter at fault, when the problem is one input's; `problem` is the message without it.
    """

    def __init__(self, problem: str, param: str | None = None) -> None:
        self.problem = problem
        self.param = param
        super().__init__(f"{param}: {problem}" if param else problem)
