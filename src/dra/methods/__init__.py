"""One file per method; `build_method` makes any of them from a name."""
from __future__ import annotations

from typing import Any

from dra.backbones import CLIPBackbone
from dra.config import DRAConfig
from dra.methods.adapter import PlainAdapterCLIP
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel
from dra.methods.cocoop import CoCoOp
from dra.methods.coop import CoOp
from dra.methods.dra import DRA
from dra.methods.kgcoop import KgCoOp
from dra.methods.maple import MaPLe
from dra.methods.tcp import TCP
from dra.methods.zeroshot import ZeroShotCLIP

METHODS: dict[str, type[ClassifierModel]] = {
    "dra": DRA,
    "adapter": PlainAdapterCLIP,
    "zeroshot": ZeroShotCLIP,
    "coop": CoOp,
    "cocoop": CoCoOp,
    "kgcoop": KgCoOp,
    "maple": MaPLe,
    "tcp": TCP,
}


def build_method(name: str, backbone: CLIPBackbone, classnames: list[str], config: Any = None,
                 template: str = DEFAULT_TEMPLATE) -> ClassifierModel:
    """The method `name` over `backbone`; `config` is its config object, a dict of its fields, or None
    (defaults). Zero-shot CLIP takes none."""
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; choose one of {sorted(METHODS)}")
    cls = METHODS[name]
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        return cls(backbone, classnames, template)
    if isinstance(config, dict):
        config = config_class.from_dict(config)
    if config is not None and not isinstance(config, config_class):
        raise ValueError(f"method '{name}' takes a {config_class.__name__}, got a {type(config).__name__}")
    return cls(backbone, classnames, config or config_class(), template)


__all__ = ["METHODS", "DRA", "PlainAdapterCLIP", "ZeroShotCLIP", "CoOp", "CoCoOp", "KgCoOp", "MaPLe", "TCP", "ClassifierModel",
           "build_method", "DEFAULT_TEMPLATE"]
