#!/usr/bin/env python
"""Paper Table 6 on this machine: trainable params, train/inference images/s, peak memory, side by side.

    python benchmarks/efficiency.py                       # ViT-B-16, batch 16, dra adapter zeroshot
    python benchmarks/efficiency.py --steps 20 --device cuda
    python benchmarks/efficiency.py --check               # exit 1 when a target ratio is missed

The same script runs on a CPU and a GPU (precision "auto": bf16 autocast on CUDA, fp32 on the CPU).
It calls `dra.engine.efficiency.measure_methods` (see its docstring for exactly what is timed and how
memory is counted), prints the table and the target ratios, and writes
`benchmarks/results/efficiency_<model>_<device>_b<batch>.{json,md}`.

Targets (ViT-B/16, batch 16, one run):
  - dra inference >= 0.95x zero-shot CLIP's images/s (in eval mode DRA is a plain adapter);
  - dra training  >= 0.90x the plain adapter's images/s (scoring, sorting and masking stay cheap).
The paper's own code reached 0.72x of CoOp at inference (642.90 vs 888.46 images/s, Table 6).
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

from dra.engine.efficiency import measure_methods
from dra.io import atomic_write_text
from dra.report import efficiency_table

HERE = Path(__file__).resolve().parent
PAPER = {"dra_over_coop_inference": 642.90 / 888.46}
TARGETS = [
    # (name, numerator method, denominator method, key, at least)
    ("dra inference / zero-shot inference", "dra", "zeroshot", "infer_images_per_s", 0.95),
    ("dra training / adapter training", "dra", "adapter", "train_images_per_s", 0.90),
]


def ratios(rows: list[dict]) -> list[dict]:
    by = {r["method"]: r for r in rows}
    out = []
    for name, num, den, key, target in TARGETS:
        value, median = (_ratio(by.get(num, {}).get(k), by.get(den, {}).get(k)) for k in (key, key + "_median"))
        out.append({"ratio": name, "value": value, "value_median": median, "target": target,
                    "met": None if value is None else value >= target})
    return out


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def environment(device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cpu": _cpu_name()}
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name()
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                           text=True, check=True).stdout.strip()
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


def markdown(rows: list[dict], checks: list[dict], env: dict, args: argparse.Namespace) -> str:
    r0 = rows[0]
    lines = [
        f"# Efficiency: {args.model}, batch {args.batch_size}, {r0['device']} ({r0['precision']})",
        "",
        (f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {env['torch']}; "
         f"{env.get('gpu') or env['cpu']}, {env['cpu_count']} CPU cores, {env['torch_threads']} torch threads; "
         f"{args.steps} measured steps after {args.warmup} warm-up steps per method and phase, methods "
         f"interleaved round-robin; {args.num_classes} class names."),
        "",
        efficiency_table(rows).to_markdown(),
        "",
        "Images/s from each method's fastest measured step (see `dra.engine.efficiency`); the ratios",
        "from the median step times are given beside them.",
        "",
        "| ratio | fastest step | median step | target | met |",
        "|---|---|---|---|---|",
    ]
    for c in checks:
        v, m = (("-" if x is None else f"{x:.3f}") for x in (c["value"], c["value_median"]))
        met = "-" if c["met"] is None else ("yes" if c["met"] else "NO")
        lines.append(f"| {c['ratio']} | {v} | {m} | >= {c['target']:.2f} | {met} |")
    lines += ["", f"Paper (Table 6): DRA / CoOp inference = {PAPER['dra_over_coop_inference']:.3f}.", "",
              "Per-step seconds (training / inference):", ""]
    for r in rows:
        tr = ", ".join(f"{t:.3f}" for t in r.get("train_step_s") or []) or "-"
        inf = ", ".join(f"{t:.3f}" for t in r.get("infer_step_s") or [])
        lines.append(f"- {r['method']}: train [{tr}]; inference [{inf}]")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ViT-B-16")
    p.add_argument("--methods", nargs="+", default=["dra", "adapter", "zeroshot"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=10, help="measured steps per method and phase")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured warm-up steps per method and phase")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON and markdown")
    p.add_argument("--check", action="store_true", help="exit with status 1 when a target ratio is missed")
    args = p.parse_args(argv)

    try:
        rows = measure_methods(args.methods, model=args.model, batch_size=args.batch_size, steps=args.steps,
                               warmup=args.warmup, device=args.device, num_classes=args.num_classes,
                               precision=args.precision)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    checks = ratios(rows)
    env = environment(str(args.device or "auto"))
    kind = "cpu" if rows[0]["device"] == "cpu" else "cuda"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"efficiency_{args.model}_{kind}_b{args.batch_size}")
    record = {"model": args.model, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
              "precision": rows[0]["precision"], "environment": env, "rows": rows, "ratios": checks,
              "paper": PAPER}
    md = markdown(rows, checks, env, args)
    atomic_write_text(args.out / f"{stem}.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(args.out / f"{stem}.md", md)
    print(efficiency_table(rows).to_terminal())
    for c in checks:
        v, m = (("-" if x is None else f"{x:.3f}") for x in (c["value"], c["value_median"]))
        state = "-" if c["met"] is None else ("met" if c["met"] else "MISSED")
        print(f"{c['ratio']}: {v} (median steps: {m}; target >= {c['target']:.2f}) {state}")
    print(f"wrote {args.out / stem}.json and .md")
    return 1 if args.check and any(c["met"] is False for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
