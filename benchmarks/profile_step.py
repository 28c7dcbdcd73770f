#!/usr/bin/env python
"""torch.profiler on one training step: top operators by self CPU time (random CLIP, synthetic batch).

PYTHONPATH=src python benchmarks/profile_step.py --methods dra adapter --num-classes 5 100 --top 15
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from dra.backbones import load_backbone
from dra.config import PAPER_SGD
from dra.methods import build_method


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ViT-B-16")
    p.add_argument("--methods", nargs="+", default=["dra", "adapter"])
    p.add_argument("--num-classes", nargs="+", type=int, default=[5, 100])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    size = None
    for method in args.methods:
        for n in args.num_classes:
            backbone = load_backbone(args.model, pretrained=None)
            size = backbone.preprocess.image_size
            images = torch.randn(args.batch_size, 3, size, size)
            labels = torch.randint(0, n, (args.batch_size,))
            model = build_method(method, backbone, [f"class {i}" for i in range(n)])
            opt = torch.optim.SGD(model.trainable_parameters(), **PAPER_SGD)
            model.train()

            def step(opt=opt, model=model, images=images, labels=labels):
                opt.zero_grad(set_to_none=True)
                loss, _ = model.loss(model(images), labels)
                loss.backward()
                opt.step()

            step()  # warm-up (text prefix cached)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            print(f"\n## {method}, {n} classes, batch {args.batch_size}, {args.model}\n")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
            sys.stdout.flush()
            model.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
