"""The generated regions of the docs pages: text between `<!-- BEGIN generated:NAME -->` and
`<!-- END generated:NAME -->` that a docs script renders and a test compares with a fresh render.

A region is inline (a figure in a sentence, markers and text on one line) or a block (each marker on a line of
its own, the rendered lines between them). scripts/docs_examples.py renders whole regions, inline or with the
newlines of a block (`fill`); scripts/cost_breakdown.py, sim_docs.py and strategy_docs.py render the lines of
blocks (`page_block`, `with_blocks`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

MARKER = re.compile(r"<!-- BEGIN generated:(?P<name>[\w.-]+) -->(?P<body>.*?)<!-- END generated:(?P=name) -->", re.S)


def marked(name: str, body: str) -> str:
    """`body` between the markers of region `name`."""
    return f"<!-- BEGIN generated:{name} -->{body}<!-- END generated:{name} -->"


def regions(text: str) -> list[tuple[str, str]]:
    """(NAME, text between the markers) of every region of the page text, in page order."""
    return [(m["name"], m["body"]) for m in MARKER.finditer(text)]


def fill(text: str, render: Callable[[str], str]) -> str:
    """The page text with every region's body replaced by `render(NAME)`."""
    return MARKER.sub(lambda m: marked(m["name"], render(m["name"])), text)


def page_block(text: str, name: str) -> str:
    """The lines of block `name` in the page text, without the newlines around them."""
    bodies = [body for found, body in regions(text) if found == name]
    if len(bodies) != 1:
        raise KeyError(f"expected one generated block '{name}' in the page, found {len(bodies)}")
    return bodies[0].removeprefix("\n").rstrip("\n")


def with_blocks(text: str, blocks: Mapping[str, str], where: str) -> str:
    """The page text with the lines of each block in `blocks` (NAME: lines) replaced; every one of them must be
    on the page once (SystemExit naming `where` and the block otherwise). Other regions are left as they are."""
    for name in blocks:
        found = sum(1 for other, _ in regions(text) if other == name)
        if found != 1:
            raise SystemExit(f"{where}: expected one generated block '{name}', found {found}")
    return MARKER.sub(lambda m: marked(m["name"], f"\n{blocks[m['name']]}\n") if m["name"] in blocks else m[0], text)
