"""Compile the published LLM-serving measurements into tdplan's normalised tables.

Usage::

    python scripts/compile_measurements.py PATH/TO/measurements_dev.csv --argonne PATH/TO/argonne_a100_static_batch.csv

Reads the raw compilation (one row per published number, each with its source and locator) and writes

* ``planner/data/measurements.csv``: serving measurements (throughput, TTFT, TPOT/ITL, batch-1 speed, forward
  time) on tdplan catalog GPU/model ids, in SI units (seconds, tokens/s);
* ``planner/data/microbenchmarks.csv``: GEMM TFLOPS, STREAM/H2D bandwidth and NCCL all-reduce bus bandwidth.

Each source family has one small function that maps a raw row to a normalised row or raises ``Skip`` with a
reason. Every interpretation made on the way is written into the row's ``assumptions`` column. The script is
deterministic (rows keep the input order) and uses the standard library only.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "planner" / "data"

MEASUREMENT_COLUMNS = [
    "id", "source", "source_locator", "engine", "engine_version", "gpu", "num_gpus", "tp", "pp", "model",
    "dtype", "kv_dtype", "input_len", "output_len", "dataset", "scenario", "concurrency", "metric", "value",
    "unit", "assumptions",
]  # fmt: skip
MICRO_COLUMNS = [
    "id", "source", "source_locator", "gpu", "metric", "value", "unit", "conditions", "assumptions",
]  # fmt: skip

Row = dict[str, str]


class Skip(Exception):
    """The raw row cannot be mapped; the message is the reason shown in the summary."""


# ----------------------------------------------------------------------------------------------------
# Shared field parsers
# ----------------------------------------------------------------------------------------------------


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", label.lower())


# Compilation GPU labels (`gpu_normalized`), compared without punctuation or case -> tdplan catalog id.
GPU_IDS: dict[str, str] = {
    _key(label): gpu_id
    for label, gpu_id in [
        ("L20", "l20"), ("L40", "l40"), ("L40S", "l40s"), ("L4", "l4"), ("A10", "a10"),
        ("A100-PCIe-40GB", "a100-pcie-40gb"), ("A100-PCIe-80GB", "a100-pcie-80gb"),
        ("A100-SXM-40GB", "a100-sxm-40gb"), ("A100-SXM-80GB", "a100-sxm-80gb"),
        ("A800-SXM-80GB", "a800-sxm-80gb"),
        ("H100-PCIe-80GB", "h100-pcie"), ("H100-SXM-80GB", "h100-sxm"), ("H100-NVL-94GB", "h100-nvl"),
        ("H100-NVL", "h100-nvl"), ("H800-SXM-80GB", "h800-sxm"), ("H20", "h20"), ("H20-SXM-96GB", "h20"),
        ("H20-96GB", "h20"), ("H200-SXM-141GB", "h200-sxm"), ("H200-NVL-141GB", "h200-nvl"),
        ("H200-NVL", "h200-nvl"), ("GH200", "gh200"), ("B200", "b200"), ("B200-SXM-180GB", "b200"),
        ("RTX-4090", "rtx-4090"), ("RTX-5090", "rtx-5090"), ("MI300X", "mi300x"),
    ]
}  # fmt: skip

# Interpretations of raw GPU labels that the compilation's `gpu_normalized` resolved silently.
GPU_LABEL_NOTES: list[tuple[str, str]] = [
    (r"^H100 80GB HBM3", "GPU label 'H100 80GB HBM3' read as SXM5 (the H100 PCIe card has HBM2e)"),
    (r"^H200 141GB", "GPU label 'H200 141GB' gives no form factor; SXM (HGX) assumed, as in the compilation"),
    (r"^GH200 120GB", "doc labels the GPU 'GH200 120GB'; mapped to the catalog's single gh200 entry"),
]

MODEL_IDS = frozenset(
    [
        "llama-2-7b",
        "llama-2-13b",
        "llama-2-70b",
        "llama-3-8b",
        "llama-3-70b",
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "llama-3.3-70b",
        "mistral-7b",
        "mixtral-8x7b",
        "qwen2.5-7b",
        "qwen2.5-14b",
        "qwen2.5-32b",
        "qwen2.5-72b",
        "qwen3-8b",
        "qwen3-14b",
        "qwen3-32b",
        "qwen3-30b-a3b",
        "qwen3-235b-a22b",
        "opt-125m",
        "opt-13b",
        "opt-66b",
        "opt-175b",
    ]
)


def map_gpu(row: Row) -> tuple[str, list[str]]:
    """Catalog GPU id from `gpu_normalized` (raw `gpu` kept for the assumption text)."""
    label, raw = row["gpu_normalized"], row["gpu"]
    if "UNCONFIRMED" in label or "UNCONFIRMED" in raw:
        raise Skip("GPU not stated by the source [UNCONFIRMED]")
    if "not stated" in label:
        raise Skip(f"GPU form factor not stated ({label.split(' (')[0]})")
    assumptions = []
    if "(assumed)" in label:
        label = label.replace("(assumed)", "")
        assumptions.append(f"GPU '{raw}': form factor not given in the doc table; SXM4 80GB assumed")
    gpu_id = GPU_IDS.get(_key(label))
    if gpu_id is None:
        raise Skip(f"GPU not in catalog ({label})")
    assumptions += [note for pattern, note in GPU_LABEL_NOTES if re.search(pattern, raw)]
    return gpu_id, assumptions


def map_model(raw: str) -> tuple[str, list[str]]:
    """Catalog model id: drop the parenthetical, vendor prefix and instruct/chat/FP8 checkpoint suffixes."""
    base = re.sub(r"\(.*?\)", "", raw).strip()
    key = re.sub(r"^meta-", "", base.lower().replace(" ", "-"))
    key = re.sub(r"-(instruct|chat|hf|fp8)(?=-|$)", "", key)
    if key in MODEL_IDS:
        doc_name = re.search(r"\(doc: ([^)]*)\)", raw)
        return key, [f"doc names the model {doc_name.group(1)}; read as {key}"] if doc_name else []
    if re.fullmatch(r"llama-\d+b", key):
        raise Skip("model generation not stated (LLaMA 13B: not said to be Llama-2)")
    raise Skip("model not in catalog")


def map_dtype(precision: str) -> tuple[str, list[str]]:
    """Weight dtype from the compilation's `precision` text."""
    text = precision.strip()
    if text.startswith("FP8 checkpoint"):
        return "fp8", []
    if text == "Mixed":
        return "fp16", ["precision 'Mixed' in the doc = unquantized FP16/BF16; fp16 assumed"]
    weight_only = {"GPTQ-Int4": "int4", "AWQ": "int4", "GPTQ-Int8": "int8"}
    if text in weight_only:
        return weight_only[text], [f"weights {text} (weight-only quantized checkpoint)"]
    simple = {"FP16": "fp16", "BF16": "bf16", "FP8": "fp8", "INT8": "int8", "INT4": "int4"}
    if text in simple:
        return simple[text], []
    if "not stated" in text or "UNCONFIRMED" in text:
        raise Skip("weight precision not stated")
    raise Skip(f"weight precision not supported ({text})")


def kv_for(dtype: str) -> str:
    """Default KV dtype for engines that keep KV in the activation dtype."""
    return "bf16" if dtype == "bf16" else "fp16"


def parse_int(text: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()):
        raise Skip(f"{what} not stated")
    return int(text)


def scenario_from_load(load: str) -> tuple[str, str]:
    """(scenario, concurrency) from the compilation's `load` text."""
    if m := re.search(r"static batch size=(\d+)", load):
        return "static-batch", m.group(1)
    if re.match(r"batch[ _]size=1\b", load):
        return "single", "1"
    if "infinite request rate" in load or "request_rate=inf" in load:
        return "offline", ""
    if m := re.search(r"request_rate=([\d.]+)", load):
        return f"rate:{float(m.group(1)):g}", ""
    if m := re.search(r"concurrency=(\d+)", load):
        return "concurrency", m.group(1)
    raise Skip(f"load not mapped ({load})")


def version_of(framework: str, engine_name: str) -> str:
    m = re.search(engine_name + r"\s+v?(\d+(?:\.\d+)+)", framework)
    if not m:
        raise Skip("engine version not stated")
    return m.group(1)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def fmt(value: float) -> str:
    return f"{value:.10g}"


def measurement(row: Row, **fields: object) -> Row:
    """Normalised measurement row: id and locator copied, the rest from `fields` (lists joined with '; ')."""
    out = {column: "" for column in MEASUREMENT_COLUMNS}
    out["id"], out["source_locator"] = row["id"], row["source_locator"]
    for name, value in fields.items():
        if name not in out:
            raise KeyError(name)
        out[name] = "; ".join(value) if isinstance(value, list) else str(value)
    return out


# ----------------------------------------------------------------------------------------------------
# Serving sources (-> measurements.csv)
# ----------------------------------------------------------------------------------------------------


def trtllm_row(row: Row) -> Row:
    """NVIDIA TensorRT-LLM performance docs: static tables (v0.6.1, v0.9.0) and IFB tables (v0.10+)."""
    version = version_of(row["framework"], "TensorRT-LLM")
    ver = version_tuple(version)
    gpu, assumptions = map_gpu(row)
    model, notes = map_model(row["model"])
    dtype, dtype_notes = map_dtype(row["precision"])
    assumptions += notes + dtype_notes
    tp, pp = parse_int(row["tp"], "tp"), parse_int(row["pp"], "pp")
    n = parse_int(row["gpu_count"], "GPU count")
    scenario, concurrency = scenario_from_load(row["load"])
    source = f"TensorRT-LLM perf overview v{version}"
    engine_version = version
    if "v0.5 data" in row["notes"]:
        engine_version = "0.5"
        assumptions.append("v0.6.1 doc marks this table as v0.5 data; engine_version 0.5 (patch not given)")

    if dtype == "fp8" and ver >= (0, 11):
        kv = "fp8"
        assumptions.append(
            "KV dtype not read: fp8 assumed (trtllm-bench quickstart FP8 checkpoints quantize KV to FP8)"
        )
    else:
        kv = "fp16"
        assumptions.append(
            "KV dtype not read: fp16 assumed"
            + (" (FP8 build before v0.11)" if dtype == "fp8" else " (unquantized build)")
        )

    metric, unit, value = row["metric"], row["unit"], float(row["value"])
    if metric.startswith("first_token_latency"):
        if unit != "ms":
            raise Skip(f"TTFT unit not mapped ({unit})")
        return measurement(
            row,
            source=source,
            engine="trtllm",
            engine_version=engine_version,
            gpu=gpu,
            num_gpus=n,
            tp=tp,
            pp=pp,
            model=model,
            dtype=dtype,
            kv_dtype=kv,
            input_len=parse_int(row["input_len"], "input length"),
            output_len=parse_int(row["output_len"], "output length"),
            dataset="fixed",
            scenario="single",
            concurrency=1,
            metric="ttft_s",
            value=fmt(value / 1000),
            unit="s",
            assumptions=assumptions,
        )
    if not metric.startswith("output_throughput"):
        raise Skip(f"metric not mapped ({metric.split(' (')[0]})")

    ambiguous = bool(re.search(r"lacks /GPU|AMBIGUOUS", row["notes"] + row["metric"] + row["unit"]))
    if ambiguous:
        source += " (per-GPU vs total ambiguous)"
        assumptions.append(
            "per-GPU vs total ambiguous: table unit is 'out tok/s' without /GPU; read as per-GPU like the "
            f"same doc's H100 table and multiplied by num_gpus={n}"
            + (" (both readings agree at 1 GPU)" if n == 1 else "")
        )
        value *= n
    elif unit.endswith("/GPU") or "per_GPU" in metric:
        assumptions.append(f"doc gives out tok/s/GPU; multiplied by num_gpus={n} for the group total")
        value *= n
    elif unit == "tokens/s" and ver < (1, 0):
        assumptions.append(
            "doc says 'token throughput in tokens/second'; read as the total of the TP group "
            "(scales with TP; v1.0 doc says 'Total Output Throughput')"
        )
    elif unit != "tokens/s":
        raise Skip(f"throughput unit not mapped ({unit})")
    if scenario == "static-batch":
        assumptions.append("static batching (gptSessionBenchmark): concurrency = fixed batch size")

    return measurement(
        row,
        source=source,
        engine="trtllm",
        engine_version=engine_version,
        gpu=gpu,
        num_gpus=n,
        tp=tp,
        pp=pp,
        model=model,
        dtype=dtype,
        kv_dtype=kv,
        input_len=parse_int(row["input_len"], "input length"),
        output_len=parse_int(row["output_len"], "output length"),
        dataset="fixed",
        scenario=scenario,
        concurrency=concurrency,
        metric="output_throughput_tok_s",
        value=fmt(value),
        unit="tokens/s",
        assumptions=assumptions,
    )


def qwen_speed_row(row: Row) -> Row:
    """Qwen official speed benchmarks: batch 1, fixed input length, 2048 generated tokens."""
    framework = row["framework"]
    sglang = "SGLang" in framework
    engine, engine_name = ("sglang", "SGLang") if sglang else ("vllm", "vLLM")
    version = version_of(framework, engine_name)
    family = "Qwen3" if "Qwen3" in row["source"] else "Qwen2.5"
    assumptions: list[str] = []
    if row["gpu_normalized"] == "A100-80GB (form factor not stated)":
        gpu = "a100-sxm-80gb"
        assumptions.append("doc says 'A100 80GB' without form factor; SXM4 assumed (the common A100 80GB server part)")
    else:
        gpu, assumptions = map_gpu(row)
    model, notes = map_model(row["model"])
    dtype, dtype_notes = map_dtype(row["precision"])
    assumptions += notes + dtype_notes
    assumptions.append(f"KV dtype not stated: {kv_for(dtype)} ({engine_name} default follows the activation dtype)")
    if row["metric"] != "generation speed" or row["unit"] != "tokens/s":
        raise Skip(f"metric not mapped ({row['metric']})")
    if sglang:
        metric = "single_total_tok_s"
        assumptions.append("doc defines speed = (prompt + generated tokens) / time")
    else:
        metric = "single_output_tok_s"
        assumptions.append(
            "doc does not give the speed formula; flatness with input length suggests generated tokens only"
        )
    setting = row["notes"].split("(formula not stated in this version)")[-1].strip()
    if setting and setting != row["notes"]:
        assumptions.append(f"doc setting: {setting}")
    scenario, concurrency = scenario_from_load(row["load"])
    tp = parse_int(row["tp"], "tp")
    return measurement(
        row,
        source=f"{family} speed benchmark ({engine_name} {version})",
        engine=engine,
        engine_version=version,
        gpu=gpu,
        num_gpus=parse_int(row["gpu_count"], "GPU count"),
        tp=tp,
        pp=parse_int(row["pp"], "pp"),
        model=model,
        dtype=dtype,
        kv_dtype=kv_for(dtype),
        input_len=parse_int(row["input_len"], "input length"),
        output_len=parse_int(row["output_len"], "output length"),
        dataset="fixed",
        scenario=scenario,
        concurrency=concurrency,
        metric=metric,
        value=fmt(float(row["value"])),
        unit="tokens/s",
        assumptions=assumptions,
    )


def lambda_row(row: Row) -> Row:
    """Lambda Labs vLLM benchmark report: ShareGPT at infinite request rate, throughput/latency pairs."""
    gpu, assumptions = map_gpu(row)
    version = version_of(row["framework"], "vLLM")
    model, notes = map_model(row["model"])
    dtype, dtype_notes = map_dtype(row["precision"])
    assumptions += notes + dtype_notes
    if dtype == "fp8" and gpu.startswith(("a100", "a800")):
        assumptions.append(
            "FP8 checkpoint on Ampere: vLLM runs it FP8 weight-only (tdplan treats fp8 on Ampere as weight-only)"
        )
    assumptions.append(f"KV dtype not stated: {kv_for(dtype)} (vLLM default follows the activation dtype)")
    if "Tensor Parallel v.s. Data Parallel" in row["source_locator"]:
        assumptions += [
            "TP = number of GPUs, per the report text",
            "max-model-len probably 2000 (not confirmed)",
        ]
    scenario, concurrency = scenario_from_load(row["load"])
    if m := re.search(r"num_prompts=(\d+)", row["load"]):
        assumptions.append(f"{m.group(1)} ShareGPT prompts sent at request_rate=inf (benchmark_serving.py)")

    metric, unit, value = row["metric"], row["unit"], float(row["value"])
    if metric == "output_throughput" and unit == "tokens/s":
        out_metric, out_unit, out_value = "output_throughput_tok_s", "tokens/s", value
    elif metric.startswith("latency") and unit == "ms":
        out_metric, out_unit, out_value = "itl_s", "s", value / 1000
        assumptions.append(
            "report's 'latency' (2nd number of the throughput/latency pair) read as inter-token "
            "latency per its Metrics section; mean vs median not stated"
        )
    elif metric == "median_TPOT" and unit == "ms":
        out_metric, out_unit, out_value = "tpot_s", "s", value / 1000
        assumptions.append("median TPOT")
    else:
        raise Skip(f"metric not mapped ({metric})")
    dataset = "sharegpt" if "ShareGPT" in row["dataset"] else ""
    if not dataset:
        raise Skip(f"dataset not mapped ({row['dataset']})")
    return measurement(
        row,
        source=f"Lambda vLLM benchmark (vLLM {version})",
        engine="vllm",
        engine_version=version,
        gpu=gpu,
        num_gpus=parse_int(row["gpu_count"], "GPU count"),
        tp=parse_int(row["tp"], "tp"),
        pp=parse_int(row["pp"], "pp"),
        model=model,
        dtype=dtype,
        kv_dtype=kv_for(dtype),
        dataset=dataset,
        scenario=scenario,
        concurrency=concurrency,
        metric=out_metric,
        value=fmt(out_value),
        unit=out_unit,
        assumptions=assumptions,
    )


def tdpipe_row(row: Row) -> Row:
    """TD-Pipe L20 profiler CSV: forward time of the whole model vs tokens in the forward pass."""
    gpu, assumptions = map_gpu(row)
    model, notes = map_model(row["model"])
    assumptions += notes
    if not row["precision"].startswith("not stated (FP16 implied"):
        raise Skip(f"weight precision not mapped ({row['precision']})")
    tokens = parse_int(row["input_len"], "token count")
    assumptions += [
        "dtype not stated: fp16 (vLLM dtype 'auto' follows the Llama-2-13B checkpoint's float16)",
        "engine version not stated (TD-Pipe is built on an early vLLM)",
        "time unit not stated: ms inferred; scope inferred as the whole model on one L20, no TP/PP (26 GB of "
        "fp16 weights fit in 48 GB; ~100 TFLOPS at 512-896 tokens, plausible only for the full 13B model)",
        "input_len = tokens in one forward pass (TD-Pipe uses the table for a prefill of that length and for "
        "a decode batch of that size)",
        "KV dtype not stated: fp16",
    ]
    if not row["unit"].startswith("not stated (ms"):
        raise Skip(f"unit not mapped ({row['unit']})")
    return measurement(
        row,
        source="TD-Pipe L20 profiler results",
        engine="vllm",
        engine_version="",
        gpu=gpu,
        num_gpus=1,
        tp=1,
        pp=1,
        model=model,
        dtype="fp16",
        kv_dtype="fp16",
        input_len=tokens,
        dataset="fixed",
        scenario="forward",
        metric="forward_time_s",
        value=fmt(float(row["value"]) / 1000),
        unit="s",
        assumptions=assumptions,
    )


def azure_e2e_row(row: Row) -> Row:
    """Azure AI-benchmarking-guide end-to-end LLM rows: the printed tokens/s is not defined."""
    raise Skip("metric undefined ('tokens per second': output vs total not stated; engine not stated)")


def aimultiple_row(row: Row) -> Row:
    """AIMultiple third-party blog (engine versions not captured)."""
    map_gpu(row)
    raise Skip("engine version not stated (third-party blog)")


def trtllm_issue_row(row: Row) -> Row:
    """TRT-LLM issue #1144: PP2TP2 vs TP4 p90 latency on A100-40GB for 'LLaMa 13B'."""
    map_model(row["model"])
    raise Skip(f"metric not mapped ({row['metric']})")


# ----------------------------------------------------------------------------------------------------
# Microbenchmark sources (-> microbenchmarks.csv)
# ----------------------------------------------------------------------------------------------------


def micro_row(row: Row, **fields: str) -> Row:
    out = {column: "" for column in MICRO_COLUMNS}
    out["id"], out["source_locator"] = row["id"], row["source_locator"]
    out.update(fields)
    return out


def azure_source(row: Row) -> str:
    m = re.search(r"ND_(\w+?)_(v\d)_results", row["source_locator"])
    vm = f"ND {m.group(1)} {m.group(2)}" if m else "VM not stated"
    fork = ", fork samuel-bohman" if "samuel-bohman" in row["source_locator"] else ""
    return f"Azure AI-benchmarking-guide ({vm}{fork})"


def azure_micro_row(row: Row) -> Row:
    """Azure AI-benchmarking-guide microbenchmarks: GEMM, STREAM, nvbandwidth H2D, NCCL all-reduce."""
    gpu, assumptions = map_gpu(row)
    metric, unit, value = row["metric"], row["unit"], float(row["value"])
    software = row["framework"].removeprefix("microbenchmark").removeprefix("; ")
    conditions = [f"software: {software}"] if software else []
    if "ND_A100_v4" in row["source_locator"] and gpu == "a100-sxm-80gb":
        assumptions.append(
            "GPU as given by the compilation (A100-SXM4-80GB); the VM name ND A100 v4 usually "
            "means the 40GB part, but STREAM copy 1.61 TB/s exceeds the 40GB peak (1.555 TB/s)"
        )
    if m := re.match(r"GEMM (\w+) (FP16|FP8) achieved \((.+)\)", metric):
        library, precision, shape = m.groups()
        shape = re.sub(r"m=n=k=(\d+)", r"m=\1,n=\1,k=\1", shape)
        out_metric, out_unit = f"gemm_tflops_{precision.lower()}", "TFLOPS"
        conditions.insert(0, f"{shape}; {library}")
        if unit != "TFLOPS":
            raise Skip(f"GEMM unit not mapped ({unit})")
    elif m := re.match(r"HBM bandwidth STREAM (Copy|Triad)", metric):
        out_metric, out_unit = f"hbm_stream_{m.group(1).lower()}_gb_s", "GB/s"
        if unit == "TB/s":
            value *= 1000
            assumptions.append("converted from TB/s (x1000)")
        elif unit != "GB/s":
            raise Skip(f"bandwidth unit not mapped ({unit})")
    elif metric.startswith("Host-to-Device bandwidth"):
        out_metric, out_unit = "h2d_bandwidth_gb_s", "GB/s"
        conditions.insert(0, "nvbandwidth host-to-device")
        if unit != "GB/s":
            raise Skip(f"bandwidth unit not mapped ({unit})")
    elif m := re.match(r"NCCL AllReduce busbw (\d+) GPUs, (.+) message", metric):
        out_metric, out_unit = "nccl_allreduce_busbw_gb_s", "GB/s"
        conditions.insert(0, f"gpus={m.group(1)}; message={m.group(2)}; interconnect: {row['interconnect']}")
        if unit != "GB/s":
            raise Skip(f"bandwidth unit not mapped ({unit})")
    else:
        raise Skip(f"metric not mapped ({metric})")
    if row["notes"]:
        conditions.append(f"source note: {row['notes']}")
    return micro_row(
        row,
        source=azure_source(row),
        gpu=gpu,
        metric=out_metric,
        value=fmt(value),
        unit=out_unit,
        conditions="; ".join(conditions),
        assumptions="; ".join(assumptions),
    )


def nccl_issue_row(row: Row) -> Row:
    """nccl / nccl-tests GitHub issues: user-reported all_reduce_perf bus bandwidth."""
    gpu, assumptions = map_gpu(row)
    if not row["metric"].startswith("nccl all_reduce busbw") or row["unit"] != "GB/s":
        raise Skip(f"metric not mapped ({row['metric']})")
    statistic = re.search(r"\((.+)\)", row["metric"])
    conditions = [
        f"gpus={parse_int(row['gpu_count'], 'GPU count')}",
        f"message={row['dataset']}",
        f"statistic={statistic.group(1) if statistic else 'not stated'}",
        f"dtype={row['precision']}",
        f"interconnect: {row['interconnect']}",
        f"command: {row['framework']}",
    ]
    if row["notes"]:
        conditions.append(f"source note: {row['notes']}")
    assumptions.append("user report in a GitHub issue (anecdotal)")
    m = re.search(r"(nccl(?:-tests)?)/issues/(\d+)", row["source_locator"])
    source = f"NVIDIA/{m.group(1)} issue #{m.group(2)}" if m else row["source"]
    return micro_row(
        row,
        source=source,
        gpu=gpu,
        metric="nccl_allreduce_busbw_gb_s",
        value=fmt(float(row["value"])),
        unit="GB/s",
        conditions="; ".join(conditions),
        assumptions="; ".join(assumptions),
    )


# ----------------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------------

Handler = Callable[[Row], Row]


def is_microbenchmark(row: Row) -> bool:
    return row["model"].startswith("n/a")


# (family, source regex, extra predicate, output table, handler), first match wins.
FAMILIES: list[tuple[str, str, Callable[[Row], bool], str, Handler]] = [
    ("TensorRT-LLM perf docs", r"^NVIDIA TensorRT-LLM performance", lambda r: True, "measurements",
     trtllm_row),
    ("Qwen speed benchmark", r"^Qwen[\d.]+ official speed benchmark", lambda r: True, "measurements",
     qwen_speed_row),
    ("Lambda vLLM benchmark", r"^Lambda Labs vLLM benchmark", lambda r: True, "measurements", lambda_row),
    ("TD-Pipe L20 profiler", r"^TD-Pipe", lambda r: True, "measurements", tdpipe_row),
    ("Azure AI-benchmarking-guide", r"^Azure AI-benchmarking-guide", is_microbenchmark, "microbenchmarks",
     azure_micro_row),
    ("Azure AI-benchmarking-guide", r"^Azure AI-benchmarking-guide", lambda r: True, "measurements",
     azure_e2e_row),
    ("nccl/nccl-tests issues", r"^NVIDIA/nccl(-tests)? GitHub issue", lambda r: True, "microbenchmarks",
     nccl_issue_row),
    ("TensorRT-LLM issue #1144", r"^NVIDIA/TensorRT-LLM GitHub issue", lambda r: True, "measurements",
     trtllm_issue_row),
    ("AIMultiple blog", r"^AIMultiple", lambda r: True, "measurements", aimultiple_row),
]  # fmt: skip


def compile_rows(rows: list[Row]) -> tuple[dict[str, list[Row]], dict[str, Counter[str]]]:
    """Map every raw row; returns the output tables and, per family, counts of 'kept' and skip reasons."""
    tables: dict[str, list[Row]] = {"measurements": [], "microbenchmarks": []}
    summary: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        match = next(
            (
                (family, table, handler)
                for family, pattern, predicate, table, handler in FAMILIES
                if re.search(pattern, row["source"]) and predicate(row)
            ),
            None,
        )
        if match is None:
            summary["(no handler)"][f"skipped: no handler for source '{row['source']}'"] += 1
            continue
        family, table, handler = match
        try:
            tables[table].append(handler(row))
            summary[family][f"kept -> {table}"] += 1
        except Skip as reason:
            summary[family][f"skipped: {reason}"] += 1
    return tables, summary


ARGONNE_SOURCE = "Argonne LLM-Inference-Bench (A100 static batch)"


def argonne_row(row: Row) -> Row:
    """Argonne LLM-Inference-Bench (arXiv 2411.00136): one static batch of B identical-length prompts generated
    to output_len tokens, timed end to end on an A100 (40GB SXM4 inferred by the compilation)."""
    engines = {"vLLM": "vllm", "TensorRT-LLM": "trtllm"}
    if row["framework"] not in engines:
        raise Skip(f"framework {row['framework']} has no engine profile")
    dtypes = {"fp16": "fp16", "int8": "int8", "fp8": "fp8"}
    return {
        "id": row["id"],
        "source": ARGONNE_SOURCE,
        "source_locator": f"github.com/argonne-lcf/LLM-Inference-Bench {row['source_file']} (subset {row['subset']})",
        "engine": engines[row["framework"]],
        "engine_version": "",
        "gpu": row["gpu"],
        "num_gpus": row["gpu_count"],
        "tp": row["tp"],
        "pp": row["pp"],
        "model": row["model_id"],
        "dtype": dtypes[row["weight_dtype"]],
        "kv_dtype": dtypes[row["kv_dtype"]],
        "input_len": row["input_len"],
        "output_len": row["output_len"],
        "dataset": "fixed",
        "scenario": "static-batch",
        "concurrency": row["batch_size"],
        "metric": "batch_latency_s",
        "value": fmt(float(row["latency_s"])),
        "unit": "s",
        "assumptions": row["notes"],
    }


def write_csv(path: Path, columns: list[str], rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def print_summary(summary: dict[str, Counter[str]], n_rows: int) -> None:
    print(f"read {n_rows} rows")
    for family in sorted(summary):
        counts = summary[family]
        print(f"{family}: {sum(counts.values())} rows")
        for reason, count in sorted(counts.items(), key=lambda item: (not item[0].startswith("kept"), item[0])):
            print(f"  {count:5d}  {reason}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_csv", type=Path, help="raw compilation, e.g. measurements_dev.csv")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="output directory (default: planner/data in this repository)",
    )
    parser.add_argument(
        "--argonne", type=Path, help="argonne_a100_static_batch.csv: static-batch latencies on A100 to append"
    )
    args = parser.parse_args(argv)
    with args.raw_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    tables, summary = compile_rows(rows)
    if args.argonne:
        with args.argonne.open(newline="", encoding="utf-8") as handle:
            for raw in csv.DictReader(handle):
                try:
                    tables["measurements"].append(argonne_row(raw))
                    summary["Argonne"]["kept -> measurements"] += 1
                except Skip as reason:
                    summary["Argonne"][f"skipped: {reason}"] += 1
    write_csv(args.out_dir / "measurements.csv", MEASUREMENT_COLUMNS, tables["measurements"])
    write_csv(args.out_dir / "microbenchmarks.csv", MICRO_COLUMNS, tables["microbenchmarks"])
    print_summary(summary, len(rows))
    print(f"wrote {len(tables['measurements'])} measurements, {len(tables['microbenchmarks'])} microbenchmarks")


if __name__ == "__main__":
    main()
