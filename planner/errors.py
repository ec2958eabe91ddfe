"""The one exception the library raises for bad input or impossible requests.

The command line prints its message as a single line and exits with code 2; the library lets it propagate.
"""

from __future__ import annotations


class PlannerError(Exception):
    """Bad input or an impossible request: the message names the problem and the fix."""
