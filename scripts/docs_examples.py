"""Regenerate the command outputs and figures shown in the user docs.

Every output block and every figure quoted in prose sits between markers in the pages:

    <!-- BEGIN generated:NAME -->
    ...
    <!-- END generated:NAME -->

NAME is a key of `BLOCKS` (a fenced block: the command line, then what it prints), of `SNIPPETS` (a Python
snippet, then what it prints when run in a fresh interpreter) or of `FIGURES` (one value taken from a
command's `--json`, inline in a sentence). `python scripts/docs_examples.py --write` rewrites every
marked region from what the tool prints today; without `--write` it lists the regions that differ and exits 1.
tests/test_docs_examples.py runs the same comparison.

Commands run in-process through typer's CliRunner, with tables drawn `WIDTH_COLUMNS` wide, from a scratch
folder that holds the files the examples name (`FILES`) and a copy of the shipped catalog (`mycat/`).
A shown command may end in `| head -n N` or `| jq PATH` (PATH like `.plan.predicted` or `.configs[0]`); the
pipe is applied here, so the line stays one a reader can paste into a shell.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generated_blocks import fill

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "docs" / name
    for name in ("getting-started.md", "scenarios.md", "configurations.md", "catalogs.md", "library.md", "accuracy.md")
]
WIDTH_COLUMNS = 160

CONFIG_JSON = """{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": 4096,
  "intermediate_size": 14336,
  "num_hidden_layers": 32,
  "num_attention_heads": 32,
  "num_key_value_heads": 8,
  "head_dim": 128,
  "vocab_size": 128256,
  "max_position_embeddings": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16"
}
"""

MODEL_YAML = """id: my-finetune
name: My fine-tuned Llama-3.1-8B
aliases: [my-ft]
hf_repo: my-org/my-finetune
source: "config.json of our fine-tune (same architecture as meta-llama/Llama-3.1-8B)"
published_params_b: 8.03
published_params_source: "same architecture as Llama-3.1-8B (model card: 8.03B parameters)"
config:
  model_type: llama
  hidden_size: 4096
  intermediate_size: 14336
  num_hidden_layers: 32
  num_attention_heads: 32
  num_key_value_heads: 8
  vocab_size: 128256
  max_position_embeddings: 131072
  tie_word_embeddings: false
"""


def my_l20_yaml() -> str:
    """The shipped L20 entry as a new id, for servers where PCIe peer-to-peer is disabled."""
    text = (ROOT / "hardware" / "gpus" / "l20.yaml").read_text()
    edits = [
        ("id: l20\n", "id: my-l20\n"),
        ("name: NVIDIA L20\n", "name: NVIDIA L20 (PCIe P2P disabled)\n"),
        ("aliases: [l20-48gb]\n", "aliases: []\n"),
        ("  p2p: true\n", "  p2p: false\n"),
    ]
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def my_l20_kernels_yaml() -> str:
    """The shipped L20 kernel constants under the new id."""
    text = (ROOT / "hardware" / "kernels" / "l20.yaml").read_text()
    assert "\ngpu: l20\n" in text
    return text.replace("\ngpu: l20\n", "\ngpu: my-l20\n", 1)


# Files the examples read, relative to the scratch folder the commands run in.
FILES: dict[str, Callable[[], str]] = {
    "my-finetune/config.json": lambda: CONFIG_JSON,
    "mycat/hardware/gpus/my-l20.yaml": my_l20_yaml,
    "mycat/hardware/kernels/my-l20.yaml": my_l20_kernels_yaml,
    "mycat/models/my-finetune.yaml": lambda: MODEL_YAML,
}

E = "tdplan estimate --model llama-70b --gpus 8xL20 --input-len 1024 --output-len 256"
R = "tdplan recommend --model llama-70b --gpus 8xL20"
H = "tdplan estimate --model llama-70b --gpus 8xH100 --input-len 1024 --output-len 256 --dtype fp8"
N = "tdplan estimate --model llama-70b --gpus 32xL20 --network 100gbe --tp 8 --pp 4 --input-len 1024 --output-len 256"
MY = f"{E.replace('8xL20', '8xmy-l20')} --engine vllm --catalog mycat"
SIM = "tdplan simulate --model llama-3.1-8b --gpus 1xh100 --input-len 1024 --output-len 256"

# Fenced blocks: a command (its output is shown), or `cat PATH` / `diff` of the files above.
BLOCKS: dict[str, str] = {
    "recommend": R,
    "recommend-json": f"{R} --ttft 2 --tpot 0.2 --json | jq .plan.predicted",
    "estimate": E,
    "estimate-concurrency": f"{E} --concurrency 32",
    "estimate-rate": f"{E} --rate 2",
    "estimate-rate-analytic": f"{E} --rate 2 --analytic",
    "estimate-rate-over": f"{E} --rate 4 --analytic",
    "estimate-batch": f"{E} --batch-size 8",
    "simulate": f"{SIM} --concurrency 16",
    "simulate-closed-sharegpt": "tdplan simulate --model llama-70b --gpus 8xL20 --workload sharegpt --concurrency 32",
    "simulate-rate": "tdplan simulate --model llama-3.1-8b --gpus 1xh100 --workload sharegpt --rate 20 "
    "--ttft 0.5 --tpot 0.05",
    "estimate-tp8": f"{E} --tp 8",
    "estimate-h100-fp8": H,
    "estimate-h100-fp8-tp2": f"{H} --tp 2",
    "estimate-trtllm": f"{E} --engine trtllm",
    "estimate-nodes": N,
    "estimate-strategy": "tdplan estimate --model llama-3.1-8b --gpus 1xh100 --workload sharegpt --strategy chunked "
    "--knob chunk_size=512 --rate 10",
    "compare": "tdplan compare --model llama-3.1-8b --gpus 1xh100 --input-len 1024 --output-len 256 "
    "--strategy colocated --strategy chunked",
    "hardware-list": "tdplan hardware list | head -n 12",
    "hardware-show": "tdplan hardware show l20",
    "models-list": "tdplan models list | head -n 10",
    "models-show": "tdplan models show llama-70b",
    "models-show-moe": "tdplan models show qwen3-30b-a3b",
    "config-json": "cat my-finetune/config.json",
    "estimate-config-json": "tdplan estimate --model my-finetune/config.json --gpus 1xL20 "
    "--input-len 1024 --output-len 256",
    "models-show-config-json": "tdplan models show my-finetune/config.json",
    "my-l20-diff": "diff -u mycat/hardware/gpus/l20.yaml mycat/hardware/gpus/my-l20.yaml",
    "my-l20-kernels-diff": "diff -u mycat/hardware/kernels/l20.yaml mycat/hardware/kernels/my-l20.yaml",
    "hardware-show-my-l20": "tdplan hardware show my-l20 --catalog mycat",
    "estimate-my-l20": MY,
    "my-model-yaml": "cat mycat/models/my-finetune.yaml",
    "models-show-my-ft": "tdplan models show my-ft --catalog mycat",
    "error-gpu": "tdplan estimate --model llama-70b --gpus 8xL2O --input-len 1024 --output-len 256",
    "error-fit": "tdplan estimate --model llama-70b --gpus 1xL20 --input-len 1024 --output-len 256",
}


# Python snippets: shown, then run in a fresh interpreter (as a reader's script would be) with their output.
SNIPPETS: dict[str, str] = {
    "lib-estimate": """\
from planner import estimate

est = estimate(model="llama-70b", gpus="8xL20", input_len=1024, output_len=256, concurrency=32)
print(est.tp, est.replicas, est.scenario.value, est.method)
print(f"{est.output_throughput_tok_s:.0f} tok/s, mean TTFT {est.ttft_s:.3f} s, mean TPOT {est.tpot_s:.3f} s")
print(est.notes[0])
""",
    "lib-recommend": """\
from planner import recommend

rec = recommend(model="llama-3.1-8b", gpus="2xL20", ttft=0.5, tpot=0.05, strategies=["colocated", "chunked"])
plan = rec.plan
print(plan.strategy, plan.objective, plan.gpus_used)
for inst in plan.instances:
    print(inst.role, f"TP{inst.tp} PP{inst.pp}", "x", inst.count, inst.knobs)
print(f"goodput {plan.predicted.goodput_req_s:.2f} req/s, p90 TTFT {plan.predicted.ttft_p90_s:.3f} s")
for alt in rec.alternatives:
    print(alt.strategy, alt.summary, f"{alt.margin_pct:.0f}% behind")
""",
    "lib-simulate": """\
from planner import PlannerError, estimate, simulate

res = simulate(model="llama-3.1-8b", gpus="1xh100", input_len=1024, output_len=256, concurrency=16)
print(res.scheduler, f"{res.output_throughput_tok_s:.0f} tok/s", res.preemptions, "preemptions")
print(f"TTFT p50 {res.ttft_s.p50:.3f} s, p99 {res.ttft_s.p99:.3f} s")

try:
    estimate(model="llama-70b", gpus="8xL20", input_len=0, output_len=256)
except PlannerError as e:
    print(e.param, "|", e.problem)
""",
}


@dataclass(frozen=True)
class Figure:
    """One value of a command's `--json`, formatted for a sentence."""

    command: str
    path: str
    fmt: Callable[[Any], str]


def ms(value: Any) -> str:
    return f"{float(value) * 1e3:,.0f} ms"


def tok_s(value: Any) -> str:
    return f"{float(value):,.0f} tok/s"


def req_s(value: Any) -> str:
    return f"{float(value):.2f} req/s"


def plan_summary(plan: Any) -> str:
    """`strategy (count x TPn PPn, ...)` of a plan in `recommend --json`."""
    groups = ", ".join(f"{i['count']} x TP{i['tp']} PP{i['pp']}" for i in plan["instances"])
    return f"{plan['strategy']} ({groups})"


def batch(value: Any) -> str:
    return f"{float(value):.1f}"


def gib(value: Any) -> str:
    return f"{float(value):.1f} GiB"


FIGURES: dict[str, Figure] = {
    "fig.plan": Figure(f"{R} --json", ".plan", plan_summary),
    "fig.slo-plan": Figure(f"{R} --ttft 2 --tpot 0.2 --json", ".plan", plan_summary),
    "fig.offline-tok-s": Figure(f"{E} --json", ".output_throughput_tok_s", tok_s),
    "fig.offline-capacity": Figure(f"{E} --json", ".request_throughput_req_s", req_s),
    "fig.concurrency-tok-s": Figure(f"{E} --concurrency 32 --json", ".output_throughput_tok_s", tok_s),
    "fig.concurrency-ttft-sim": Figure(f"{E} --concurrency 32 --json", ".ttft_s", ms),
    "fig.concurrency-ttft-analytic": Figure(f"{E} --concurrency 32 --json", ".analytic.ttft_s", ms),
    "fig.rate-ttft-sim": Figure(f"{E} --rate 2 --json", ".ttft_s", ms),
    "fig.rate-ttft-analytic": Figure(f"{E} --rate 2 --analytic --json", ".ttft_s", ms),
    "fig.rate-tok-s-sim": Figure(f"{E} --rate 2 --json", ".output_throughput_tok_s", tok_s),
    "fig.tp8-tok-s": Figure(f"{E} --tp 8 --json", ".output_throughput_tok_s", tok_s),
    "fig.tp8-kv": Figure(f"{E} --tp 8 --json", ".memory_gib.kv_cache", gib),
    "fig.kv": Figure(f"{E} --json", ".memory_gib.kv_cache", gib),
    "fig.h100-tp1-tok-s": Figure(f"{H} --json", ".output_throughput_tok_s", tok_s),
    "fig.h100-tp1-batch": Figure(f"{H} --json", ".batch_size", batch),
    "fig.h100-tp2-tok-s": Figure(f"{H} --tp 2 --json", ".output_throughput_tok_s", tok_s),
    "fig.h100-tp2-batch": Figure(f"{H} --tp 2 --json", ".batch_size", batch),
    "fig.trtllm-tok-s": Figure(f"{E} --engine trtllm --json", ".output_throughput_tok_s", tok_s),
    "fig.nodes-tok-s": Figure(f"{N} --json", ".output_throughput_tok_s", tok_s),
    "fig.my-l20-tok-s": Figure(f"{MY} --json", ".output_throughput_tok_s", tok_s),
    "fig.my-l20-step": Figure(f"{MY} --json", ".decode_step_time_s", ms),
    "fig.l20-step": Figure(f"{E} --json", ".decode_step_time_s", ms),
}


# Comparisons the prose states in words ("far above", "larger"): (figure, figure) with the first the larger.
LARGER: list[tuple[str, str]] = [
    ("fig.concurrency-ttft-sim", "fig.concurrency-ttft-analytic"),
    ("fig.offline-tok-s", "fig.concurrency-tok-s"),
    ("fig.rate-ttft-analytic", "fig.rate-ttft-sim"),
    ("fig.tp8-kv", "fig.kv"),
    ("fig.offline-tok-s", "fig.tp8-tok-s"),
    ("fig.h100-tp2-batch", "fig.h100-tp1-batch"),
    ("fig.h100-tp2-tok-s", "fig.h100-tp1-tok-s"),
    ("fig.my-l20-step", "fig.l20-step"),
    ("fig.offline-tok-s", "fig.my-l20-tok-s"),
]


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary working folder with `FILES` and `mycat/` (a copy of the shipped catalog), entered."""
    with tempfile.TemporaryDirectory(prefix="tdplan-docs-") as tmp:
        folder = Path(tmp)
        for part in ("hardware", "models"):
            shutil.copytree(ROOT / part, folder / "mycat" / part)
        for rel, text in FILES.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text())
        start_snippets()
        cwd = Path.cwd()
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(cwd)


def split_pipe(command: str) -> tuple[list[str], list[str] | None]:
    """The tdplan argv and the filter after `|`, if any."""
    head, _, tail = command.partition(" | ")
    return shlex.split(head), (shlex.split(tail) if tail else None)


def jq_path(value: Any, path: str) -> Any:
    """`.a.b[0]` applied to parsed JSON."""
    for key, index in re.findall(r"\.(\w+)|\[(\d+)\]", path):
        value = value[key] if key else value[int(index)]
    return value


@functools.cache
def run_tdplan(argv: tuple[str, ...]) -> tuple[str, str]:
    """(stdout, stderr) of one tdplan command, tables `WIDTH_COLUMNS` wide. Run inside `scratch_folder()`."""
    from rich.console import Console
    from typer.testing import CliRunner

    from planner.cli import app, common

    saved = common.out
    common.out = Console(highlight=False, soft_wrap=True, width=WIDTH_COLUMNS)
    try:
        result = CliRunner().invoke(app, list(argv), env={"COLUMNS": str(WIDTH_COLUMNS)})
    finally:
        common.out = saved
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise RuntimeError(f"tdplan {' '.join(argv)} raised {result.exception!r}") from result.exception
    return result.stdout, result.stderr


def shown_output(command: str) -> str:
    """What a terminal shows for `command`: stdout, then the notes and errors on stderr (not through a pipe)."""
    if command.startswith("cat "):
        return Path(command.split()[1]).read_text()
    if command.startswith("diff -u "):
        old, new = command.split()[2:4]
        lines = difflib.unified_diff(
            Path(old).read_text().splitlines(keepends=True),
            Path(new).read_text().splitlines(keepends=True),
            fromfile=old,
            tofile=new,
            n=0,
        )
        return "".join(lines)
    argv, pipe = split_pipe(command)
    assert argv[0] == "tdplan", command
    stdout, stderr = run_tdplan(tuple(argv[1:]))
    if pipe is None:
        return stdout + stderr
    if pipe[:2] == ["head", "-n"]:
        return "".join(stdout.splitlines(keepends=True)[: int(pipe[2])])
    if pipe[0] == "jq":
        return json.dumps(jq_path(json.loads(stdout), pipe[1]), indent=2) + "\n"
    raise ValueError(f"unsupported pipe in {command!r}")


_snippet_runs: dict[str, subprocess.Popen[str]] = {}


def start_snippets() -> None:
    """Start every snippet's interpreter now, so they run while the commands run in this process."""
    for code in SNIPPETS.values():
        if code not in _snippet_runs:
            _snippet_runs[code] = subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "COLUMNS": str(WIDTH_COLUMNS)},
            )


@functools.cache
def run_snippet(code: str) -> str:
    """What a Python snippet prints, run in a fresh interpreter (as a reader's script would be)."""
    start_snippets()
    stdout, stderr = _snippet_runs.pop(code).communicate()
    if stderr or not stdout:
        raise RuntimeError(f"snippet failed:\n{code}\n{stderr}")
    return stdout


def figure_value(name: str) -> Any:
    """The unformatted value of figure NAME. Run inside `scratch_folder()`."""
    fig = FIGURES[name]
    argv, _ = split_pipe(fig.command)
    return jq_path(json.loads(run_tdplan(tuple(argv[1:]))[0]), fig.path)


def render(name: str) -> str:
    """The text between the markers of NAME."""
    if name in SNIPPETS:
        code = SNIPPETS[name]
        return f"\n```python\n{code.rstrip()}\n```\n\n```\n{run_snippet(code).rstrip()}\n```\n"
    if name in FIGURES:
        return FIGURES[name].fmt(figure_value(name))
    command = BLOCKS[name]
    body = shown_output(command).rstrip("\n")
    lang = "diff" if command.startswith("diff") else "yaml" if command.endswith(".yaml") else ""
    if command.startswith(("cat ", "diff ")):
        return f"\n```{lang}\n{body}\n```\n"
    return f"\n```\n$ {command}\n{body}\n```\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the pages (default: check them)")
    args = parser.parse_args()
    stale = []
    with scratch_folder():
        for page in PAGES:
            text = page.read_text()
            new = fill(text, render)
            if new != text:
                stale.append(page)
                if args.write:
                    page.write_text(new)
    for page in stale:
        print(f"{'rewrote' if args.write else 'stale'}: {page.relative_to(ROOT)}")
    return 0 if args.write or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
