"""`dra efficiency`: paper Table 6 on this device; one option list (argparse, passed through by the Typer
command) for `dra efficiency` and `benchmarks/efficiency.py`.

    dra efficiency                                   # ViT-B-16, batch 16, dra adapter zeroshot, 10 classes
    dra efficiency --num-classes 5 100 --out benchmarks/results --check
    python benchmarks/efficiency.py --device cuda --precision bf16 --batch-size 128

Each class count is one side-by-side measurement (`measure_methods`). The table and the target ratios
are printed; `--json` prints the record as JSON instead; `--out DIR` also writes
`efficiency_<model>_<cpu|cuda>_b<batch>.{json,md}` there; `--check` exits with status 1 when a target
is missed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch
import typer

from dra.cli.app import app
from dra.engine.precision import PRECISIONS  # noqa: E402 - the one list

PAPER = {"dra_over_coop_inference": 642.90 / 888.46}
# (name, numerator method, denominator method, key, at least, class counts it applies to (None: all))
TARGETS = [
    ("dra inference / zero-shot inference", "dra", "zeroshot", "infer_images_per_s", 0.99, None),
    ("dra training / adapter training", "dra", "adapter", "train_images_per_s", 0.90, None),
    ("dra training / MMA training (5 classes)", "dra", "mma", "train_images_per_s", 1.0, (5,)),
    ("dra training / MMA training (100 classes)", "dra", "mma", "train_images_per_s", 1.3, (100,)),
    ("adapter training / MMA training", "adapter", "mma", "train_images_per_s", 1.0, None),
]
DEFAULT_METHODS = ("dra", "adapter", "zeroshot")
DEFAULT_CLASSES = 10
MEMORY_TARGET = ("dra training peak memory, 1000 / 10 classes", 10, 1000, 1.5)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        formatter_class=_Help,
        description="Paper Table 6 on this device: trainable params, "
        "train/inference images/s, peak memory, methods side by side in one process.",
    )
    p.add_argument("--model", default="ViT-B-16", help="open_clip model name (random weights)")
    p.add_argument(
        "--methods",
        nargs="+",
        action="extend",
        default=None,
        help=f"rows to measure (default: {' '.join(DEFAULT_METHODS)})",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="measured steps per method and phase")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured warm-up steps per method and phase")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="auto: bf16 autocast on CUDA, fp32 on the CPU"
    )
    p.add_argument(
        "--num-classes",
        nargs="+",
        type=int,
        action="extend",
        default=None,
        help=f"class counts, each measured on its own, e.g. 5 100 1000 (default: {DEFAULT_CLASSES})",
    )
    p.add_argument("--compile", action="store_true", help="also measure torch.compile'd dra/adapter rows")
    p.add_argument(
        "--mma",
        type=Path,
        default=None,
        metavar="PATH",
        help="a clone of ZjjConan/Multi-Modal-Adapter: adds MMA's own model as a column",
    )
    p.add_argument("--json", action="store_true", help="print the record as JSON instead of the table")
    p.add_argument("--out", type=Path, default=None, help="folder for efficiency_*.json and .md")
    p.add_argument("--check", action="store_true", help="exit with status 1 when a target ratio is missed")
    return p


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


def _fmt(x, digits=3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _target(c) -> str:
    return f"<= {-c['target']:.2f}" if c["target"] < 0 else f">= {c['target']:.2f}"


def markdown(rows: list[dict], checks: list[dict], env: dict, args: argparse.Namespace) -> str:
    from dra.report import efficiency_table

    r0 = rows[0]
    lines = [
        f"# Efficiency: {args.model}, batch {args.batch_size}, {r0['device']} ({r0['precision']})",
        "",
        (
            f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {env['torch']}; "
            f"{env.get('gpu') or env['cpu']}, {env['cpu_count']} CPU cores, {env['torch_threads']} torch threads; "
            f"commit {env.get('git_commit', '?')}; {args.steps} measured steps after {args.warmup} warm-up steps "
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
                f"| {r['method']} | {_fmt(r.get('train_x_zs_infer'))} | "
                f"{_fmt(r.get('train_x_zs_infer_median'))} | {_fmt(r.get('train_peak_memory_mb'), 1)} | "
                f"{_fmt(r.get('infer_peak_memory_mb'), 1)} |"
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
            f"| {c['ratio']} | {c['num_classes']} | {_fmt(c['value'])} | {_fmt(c['value_median'])} | "
            f"{_target(c)} | {met} |"
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


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from dra.efficiency.measure import measure_methods
    from dra.io import atomic_write_text
    from dra.report import efficiency_table

    args = parser(prog).parse_args(argv)
    args.methods = args.methods or list(DEFAULT_METHODS)  # `extend` options: defaults filled in here
    args.num_classes = args.num_classes or [DEFAULT_CLASSES]
    rows: list[dict] = []
    try:
        for n in dict.fromkeys(args.num_classes):
            rows += measure_methods(
                args.methods,
                model=args.model,
                batch_size=args.batch_size,
                steps=args.steps,
                warmup=args.warmup,
                device=args.device,
                num_classes=n,
                precision=args.precision,
                mma_source=args.mma,
                compile=args.compile,
            )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    checks = ratios(rows)
    env = environment(str(args.device or "auto"))
    record = {
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "precision": rows[0]["precision"],
        "num_classes": list(dict.fromkeys(args.num_classes)),
        "environment": env,
        "rows": rows,
        "ratios": checks,
        "paper": PAPER,
    }
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        for n in dict.fromkeys(args.num_classes):
            print(f"{n} classes")
            print(efficiency_table([r for r in rows if r["num_classes"] == n]).to_terminal())
        for c in checks:
            state = "-" if c["met"] is None else ("met" if c["met"] else "MISSED")
            print(
                f"{c['ratio']} [{c['num_classes']} classes]: {_fmt(c['value'])} (median steps: "
                f"{_fmt(c['value_median'])}; target {_target(c)}) {state}"
            )
    if args.out is not None:
        kind = "cpu" if rows[0]["device"] == "cpu" else "cuda"
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"efficiency_{args.model}_{kind}_b{args.batch_size}")
        atomic_write_text(args.out / f"{stem}.json", json.dumps(record, indent=2) + "\n")
        atomic_write_text(args.out / f"{stem}.md", markdown(rows, checks, env, args))
        print(f"wrote {args.out / stem}.json and .md", file=sys.stderr if args.json else sys.stdout)
    return 1 if args.check and any(c["met"] is False for c in checks) else 0


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def efficiency(ctx: typer.Context) -> None:
    """Paper Table 6 on this device: trainable params, train/inference images/s, peak memory (--help: options).

    The same options and defaults as benchmarks/efficiency.py (both are `dra.cli.efficiency.main`).
    """
    code = main(list(ctx.args), prog="dra efficiency")
    if code:
        raise typer.Exit(code=code)
