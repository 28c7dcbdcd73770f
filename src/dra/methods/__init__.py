"""One file per method; `build_method` makes any of them from a name."""
from __future__ import annotations

from dra.backbones import CLIPBackbone
from dra.config import DRAConfig
from dra.methods.adapter import PlainAdapterCLIP
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel
from dra.methods.dra import DRA
from dra.methods.zeroshot import ZeroShotCLIP

METHODS: dict[str, type[ClassifierModel]] = {
    "dra": DRA,
    "adapter": PlainAdapterCLIP,
    "zeroshot": ZeroShotCLIP,
}


def build_method(name: str, backbone: CLIPBackbone, classnames: list[str], config: DRAConfig | dict | None = None,
                 template: str = DEFAULT_TEMPLATE) -> ClassifierModel:
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; choose one of {sorted(METHODS)}")
    cls = METHODS[name]
    if name == "zeroshot":
        return cls(backbone, classnames, template)
    if isinstance(config, dict):
        config = DRAConfig.from_dict(config)
    return cls(backbone, classnames, config or DRAConfig(), template)


__all__ = ["METHODS", "DRA", "PlainAdapterCLIP", "ZeroShotCLIP", "ClassifierModel", "build_method",
           "DEFAULT_TEMPLATE"]
