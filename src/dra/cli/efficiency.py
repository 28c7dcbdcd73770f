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
import json
import re
import sys
from pathlib import Path

import typer

from dra.cli.app import app
from dra.config import PRECISIONS
from dra.efficiency.record import PAPER, environment, fmt, markdown, ratios, target_text

DEFAULT_METHODS = ("dra", "adapter", "zeroshot")
DEFAULT_CLASSES = 10


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
                f"{c['ratio']} [{c['num_classes']} classes]: {fmt(c['value'])} (median steps: "
                f"{fmt(c['value_median'])}; target {target_text(c)}) {state}"
            )
    if args.out is not None:
        kind = "cpu" if rows[0]["device"] == "cpu" else "cuda"
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"efficiency_{args.model}_{kind}_b{args.batch_size}")
        atomic_write_text(args.out / f"{stem}.json", json.dumps(record, indent=2) + "\n")
        atomic_write_text(args.out / f"{stem}.md", markdown(record))
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
