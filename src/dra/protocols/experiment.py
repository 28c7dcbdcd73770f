"""What every protocol shares: one backbone per process, run folders, train-or-reuse, evaluation.

A run folder is `<output>/<protocol>/<method>-<hash>/<dataset>/seed<k>`, where the hash covers every
setting that changes the result (model, weights, method config, training settings, shots, template).
A run whose `result.json` exists is reused; a run with `last.pt` resumes.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from dra import settings as S
from dra.backbones import CLIPBackbone, load_backbone
from dra.data import clip_transforms
from dra.data.core import Datum
from dra.engine import distributed
from dra.io import atomic_write_text
from dra.engine.evaluate import evaluate
from dra.engine.trainer import fit
from dra.methods import build_method

log = logging.getLogger("dra")


def limit_per_class(items: list[Datum], n: int | None) -> list[Datum]:
    """The first `n` items of each class, in list order (quick runs only)."""
    if not n:
        return items
    counts: dict[int, int] = {}
    out = []
    for d in items:
        if counts.get(d.label, 0) < n:
            counts[d.label] = counts.get(d.label, 0) + 1
            out.append(d)
    return out


def read_json(path: Path) -> Any | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2))


class Experiment:
    """Holds the settings, the device and the (frozen, shared) backbone of one protocol invocation."""

    def __init__(self, cfg: DictConfig, backbone: CLIPBackbone | None = None) -> None:
        self.cfg = cfg
        self.dist, self.device = distributed.setup(cfg.get("device"))
        self._backbone = backbone
        self.output = Path(cfg.output)

    @property
    def backbone(self) -> CLIPBackbone:
        if self._backbone is None:
            self._backbone = load_backbone(self.cfg.model, self.cfg.pretrained)
        return self._backbone

    def transforms(self):
        return clip_transforms(self.backbone.preprocess)

    def run_key(self, cfg: DictConfig) -> str:
        """Short hash of everything that changes a trained model."""
        ident = {"model": cfg.model, "pretrained": str(cfg.pretrained), "method": cfg.method,
                 "template": cfg.template, "shots": cfg.shots, "dra": asdict(S.dra_config(cfg)),
                 "train": {k: v for k, v in asdict(S.train_settings(cfg, 0)).items()
                           if k not in ("seed", "num_workers", "log_every")}}
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
        return f"{cfg.method}-{digest}"

    def build(self, cfg: DictConfig, classnames: list[str], seed: int):
        torch.manual_seed(seed)  # adapter initialisation
        return build_method(cfg.method, self.backbone, classnames, S.dra_config(cfg), cfg.template)

    def train(self, cfg: DictConfig, model, train_items: list[Datum], seed: int, run_dir: Path, **run):
        """Train (or resume, or reload a finished run); `run` names the run (protocol, dataset, ...)."""
        if not model.trainable_parameters():
            return []
        identity = {**run, "seed": seed, "classnames": list(model.classnames), "model": cfg.model,
                    "pretrained": str(cfg.pretrained), "method": cfg.method, "dra": model.method_config()}
        return fit(model, train_items, self.transforms(), S.train_settings(cfg, seed), run_dir, self.device,
                   identity)

    def accuracy(self, cfg: DictConfig, model, items: list[Datum], desc: str) -> dict:
        items = limit_per_class(items, cfg.get("test_per_class"))
        ev = cfg.eval
        return evaluate(model, items, self.transforms()[1], ev.batch_size, self.device, cfg.train.precision,
                        ev.num_workers, desc=desc)

    def release(self, model) -> None:
        """Take a method's adapters out of the shared backbone."""
        model.unload()
