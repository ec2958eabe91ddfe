"""Regenerate the example outputs in docs/simulator.md from the bench scripts that print them.

    python scripts/sim_docs.py            # print the blocks
    python scripts/sim_docs.py --write    # write them between the page's markers

Blocks: `example` (bench/sim_example.py), `vs-analytic` (bench/sim_vs_analytic.py), `strategies`
(bench/sim_strategies.py) and `speed` (bench/sim_speed.py). tests/test_sim_docs.py checks the first two: wall
times are a measurement of the machine that ran the script, and the strategies block takes half a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
from pathlib import Path

from generated_blocks import marked, with_blocks

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "simulator.md"
SCRIPTS = {
    "example": "sim_example.py",
    "vs-analytic": "sim_vs_analytic.py",
    "strategies": "sim_strategies.py",
    "speed": "sim_speed.py",
}


def block(name: str) -> str:
    """What the bench script behind `name` prints, as a fenced code block."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / SCRIPTS[name])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        module.main()
    return "```\n" + buffer.getvalue().rstrip("\n") + "\n```"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the blocks into docs/simulator.md")
    args = parser.parse_args()
    blocks: dict[str, str] = {}
    for name in SCRIPTS:
        blocks[name] = block(name)
        if not args.write:
            print(marked(name, f"\n{blocks[name]}\n"))
    if args.write:
        PAGE.write_text(with_blocks(PAGE.read_text(), blocks, str(PAGE.relative_to(ROOT))))
        print(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
