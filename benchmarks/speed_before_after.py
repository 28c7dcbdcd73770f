#!/usr/bin/env python
"""Training-step speed of this branch against its own earlier code paths and MMA's, side by side in one process.

    PYTHONPATH=src python benchmarks/speed_before_after.py --num-classes 5 100 --steps 2 --mma /path/to/Multi-Modal-Adapter

Rows: zero-shot CLIP inference (the reference), MMA's training step (with --mma), and for dra and adapter
the training step as on main before issue #13 (`@main`: every token through the last block, open_clip's
nn.MultiheadAttention call, the full 77-token text for the plain adapter) and as now. The `@main` rows are
the same models with the new shortcuts switched off per instance, so both run on the same weights in the
same rounds. Every figure is a ratio to zero-shot inference images/s of the same rounds (fastest step,
and median step), so the noise of a shared machine cancels.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import torch

from dra.backbones import load_backbone
from dra.config import PAPER_SGD
from dra.efficiency.measure import share_weights
from dra.methods import build_method


def as_on_main(model, backbone) -> None:
    """Switch this model's issue-#13 shortcuts off (instance attributes only)."""
    model.image_features = lambda images: backbone.encode_image(images)
    model.compute_text_features = lambda: backbone.encode_text_from(
        model.text_prefix()[1], model.text_prefix()[0], model.text_start
    )
    for tower in model.adapters:
        for index in model.adapters[tower]:
            backbone.blocks(tower)[int(index) - 1]._own_attention = lambda: False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ViT-B-16")
    p.add_argument("--num-classes", nargs="+", type=int, default=[5, 100])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--mma", default=None)
    p.add_argument(
        "--rows",
        nargs="+",
        default=["zeroshot", "dra@main", "dra", "adapter@main", "adapter"],
        help="rows among dra@main dra adapter@main adapter (zeroshot: always, the reference; mma: with --mma)",
    )
    p.add_argument("--out", default=None, help="a JSON file for the figures")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    record = []
    for n in args.num_classes:
        backbone = load_backbone(args.model, pretrained=None)
        size = backbone.preprocess.image_size
        gen = torch.Generator().manual_seed(0)
        images = torch.randn(args.batch_size, 3, size, size, generator=gen)
        labels = torch.randint(0, n, (args.batch_size,), generator=gen)
        names = [f"class {i}" for i in range(n)]
        plan = ["zeroshot"] + [r for r in args.rows if r != "zeroshot"]
        views = [backbone] + [share_weights(backbone) for _ in plan[1:]]
        runs = {}
        for label, view in zip(plan, views):
            torch.manual_seed(0)
            model = build_method(label.split("@")[0], view, names)
            if label.endswith("@main"):
                as_on_main(model, view)
            runs[label] = model
        if args.mma:
            from dra.efficiency.mma import build_mma

            runs["mma"] = build_mma(args.mma, backbone, names)
        opts = {}
        for label, model in runs.items():
            if label == "zeroshot":
                model.eval()
                with torch.no_grad():
                    model.text_features()
            else:
                model.train()
                opts[label] = torch.optim.SGD(model.trainable_parameters(), **PAPER_SGD)
        times = {label: [] for label in runs}
        gc.collect()
        gc.disable()
        try:
            for r in range(args.warmup + args.steps):
                for label, model in runs.items():
                    t0 = time.perf_counter()
                    if label == "zeroshot":
                        with torch.no_grad():
                            model(images)
                    else:
                        opts[label].zero_grad(set_to_none=True)
                        loss, _ = model.loss(model(images), labels)
                        loss.backward()
                        opts[label].step()
                    if r >= args.warmup:
                        times[label].append(time.perf_counter() - t0)
                print(
                    f"[{n} classes] round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items() if v),
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            gc.enable()
        ref_min, ref_med = min(times["zeroshot"]), statistics.median(times["zeroshot"])
        for label, ts in times.items():
            row = {
                "num_classes": n,
                "row": label,
                "x_zs_infer": ref_min / min(ts),
                "x_zs_infer_median": ref_med / statistics.median(ts),
                "step_s": [round(t, 3) for t in ts],
                "threads": torch.get_num_threads(),
            }
            record.append(row)
            print(
                f"{n:5d} classes  {label:13s} {row['x_zs_infer']:.3f} (median {row['x_zs_infer_median']:.3f})  "
                f"steps {row['step_s']}",
                flush=True,
            )
        for model in runs.values():
            if hasattr(model, "unload"):
                model.unload()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "model": args.model,
                    "batch_size": args.batch_size,
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "rows": record,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
