"""The efficiency record of `dra efficiency` (paper Table 6): the target ratios it is checked against, the
machine it ran on, and its markdown page (`efficiency_<model>_<cpu|cuda>_b<batch>.md`)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

PAPER = {"dra_over_coop_inference": 642.90 / 888.46}
# (name, numerator method, denominator method, key, at least, class counts it applies to (None: all))
TARGETS = [
    ("dra inference / zero-shot inference", "dra", "zeroshot", "infer_images_per_s", 0.99, None),
    ("dra training / adapter training", "dra", "adapter", "train_images_per_s", 0.90, None),
    ("dra training / MMA training (5 classes)", "dra", "mma", "train_images_per_s", 1.0, (5,)),
    ("dra training / MMA training (100 classes)", "dra", "mma", "train_images_per_s", 1.3, (100,)),
    ("adapter training / MMA training", "adapter", "mma", "train_images_per_s", 1.0, None),
]
MEMORY_TARGET = ("dra training peak memory, 1000 / 10 classes", 10, 1000, 1.5)


def ratios(rows: list[dict]) -> list[dict]:
    """The target ratios over rows of one or more class counts (each ratio within one count)."""
    out = []
    counts = sorted({r["num_classes"] for r in rows})
    for name, num, den, key, target, only in TARGETS:
        for n in counts:
            if only is not None and n not in only:
                continue
            by = {r["method"]: r for r in rows if r["num_classes"] == n}
            if num not in by or den not in by:
                continue
            value, median = (_ratio(by[num].get(k), by[den].get(k)) for k in (key, key + "_median"))
            out.append(
                {
                    "ratio": name,
                    "num_classes": n,
                    "value": value,
                    "value_median": median,
                    "target": target,
                    "met": None if value is None else value >= target,
                }
            )
    name, low, high, target = MEMORY_TARGET
    mem = {r["num_classes"]: r.get("train_peak_memory_mb") for r in rows if r["method"] == "dra"}
    if mem.get(low) and mem.get(high):
        value = mem[high] / mem[low]
        out.append(
            {
                "ratio": name,
                "num_classes": high,
                "value": value,
                "value_median": None,
                "target": -target,
                "met": value <= target,
            }
        )
    return out


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def environment(device: str) -> dict:
    """Where the record was measured: Python, torch, the CPU / GPU, threads, the git commit."""
    import torch  # here, not at the top: `dra --help` imports this module

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu": _cpu_name(),
    }
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name()
    try:
        env["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def fmt(x, digits=3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def target_text(c) -> str:
    return f"<= {-c['target']:.2f}" if c["target"] < 0 else f">= {c['target']:.2f}"


def markdown(record: dict) -> str:
    """The record as a markdown page: a table per class count, the per-step ratios, the targets, the steps."""
    from dra.report import efficiency_table

    rows, checks, env = record["rows"], record["ratios"], record["environment"]
    r0 = rows[0]
    lines = [
        f"# Efficiency: {record['model']}, batch {record['batch_size']}, {r0['device']} ({r0['precision']})",
        "",
        (
            f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {env['torch']}; "
            f"{env.get('gpu') or env['cpu']}, {env['cpu_count']} CPU cores, {env['torch_threads']} torch threads; "
            f"commit {env.get('git_commit', '?')}; {record['steps']} measured steps after {record['warmup']} warm-up steps "
            "per method and phase, methods interleaved round-robin."
        ),
        "",
    ]
    for n in sorted({r["num_classes"] for r in rows}):
        part = [r for r in rows if r["num_classes"] == n]
        lines += [
            f"## {n} classes",
            "",
            efficiency_table(part).to_markdown(),
            "",
            "| method | train / zero-shot inference (fastest) | (median) | train peak MB | infer peak MB |",
            "|---|---|---|---|---|",
        ]
        for r in part:
            lines.append(
                f"| {r['method']} | {fmt(r.get('train_x_zs_infer'))} | "
                f"{fmt(r.get('train_x_zs_infer_median'))} | {fmt(r.get('train_peak_memory_mb'), 1)} | "
                f"{fmt(r.get('infer_peak_memory_mb'), 1)} |"
            )
        lines.append("")
    lines += [
        "Images/s from each method's fastest measured step; the median-step ratios beside them.",
        "",
        "| ratio | classes | fastest step | median step | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for c in checks:
        met = "-" if c["met"] is None else ("yes" if c["met"] else "NO")
        lines.append(
            f"| {c['ratio']} | {c['num_classes']} | {fmt(c['value'])} | {fmt(c['value_median'])} | "
            f"{target_text(c)} | {met} |"
        )
    lines += [
        "",
        f"Paper (Table 6): DRA / CoOp inference = {PAPER['dra_over_coop_inference']:.3f}.",
        "",
        "Per-step seconds (training / inference):",
        "",
    ]
    for r in rows:
        tr = ", ".join(f"{t:.3f}" for t in r.get("train_step_s") or []) or "-"
        inf = ", ".join(f"{t:.3f}" for t in r.get("infer_step_s") or [])
        lines.append(f"- {r['method']} ({r['num_classes']} classes): train [{tr}]; inference [{inf}]")
    return "\n".join(lines) + "\n"
