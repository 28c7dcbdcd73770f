"""The fully merged settings one run uses: `dra settings --method M --protocol P --dataset D`.

    run_settings("maple", "cross_dataset", "imagenet")
    -> {"method": "maple", "protocol": "cross_dataset", "dataset": "imagenet", "template": ..., "shots": 16,
        "maple": {...}, "train": {...}}

The protocol file, the method's packaged YAML (`all:`, then the protocol's block), the dataset's overrides
and any `key=value` overrides merged, with the training budget resolved (`iterations_per_shot` x shots). A
method that trains nothing by SGD (zero-shot CLIP, Tip-Adapter, LFA) shows no `train` block.
tests/recipes.py holds the published recipes against this.
"""

from __future__ import annotations

from dataclasses import asdict

from omegaconf import OmegaConf

from dra import settings as S

ENGINE_ONLY = ("seed", "num_workers", "log_every", "text_chunk", "text_chunk_above", "iterations_per_shot")
"""Train settings that do not change what is trained (or are resolved into others)."""


def run_settings(method: str, protocol: str, dataset: str, overrides: list[str] | None = None) -> dict:
    from dra.methods import METHODS

    cfg = S.load_settings(protocol, {"method": method}, overrides)
    cfg = S.for_dataset(cfg, dataset)
    cls = METHODS[cfg.method]
    out = {
        "method": cfg.method,
        "protocol": cfg.protocol,
        "dataset": dataset,
        "model": cfg.model,
        "pretrained": cfg.pretrained,
        "template": cfg.template,
        "shots": cfg.shots,
    }
    if cls.config_section:
        out[cls.config_section] = S.section_config(cfg, cls.config_section).to_dict()
    if cls.trains_by_sgd:
        train = asdict(S.train_settings(cfg, 1))
        if train["iterations"]:
            train.pop("epochs")  # the budget is in iterations
        out["train"] = {k: v for k, v in train.items() if k not in ENGINE_ONLY}
    return out


def to_yaml(values: dict) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(values))
