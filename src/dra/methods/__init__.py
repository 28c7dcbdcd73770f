"""One file per method; `build_method` makes any of them from a name.

`METHODS` is the registry; the packaged settings files `configs/methods/<name>.yaml` hold each
method's published hyper-parameters, and a test checks that the two name the same methods.
"""

from __future__ import annotations

from dra.backbones import CLIPBackbone
from dra.errors import SettingsError
from dra.methods.adapter import PlainAdapterCLIP
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel
from dra.methods.clip_adapter import CLIPAdapter
from dra.methods.cocoop import CoCoOp
from dra.methods.coop import CoOp
from dra.methods.dra import DRA
from dra.methods.kgcoop import KgCoOp
from dra.methods.lfa import LFA
from dra.methods.lora import CLIPLoRA
from dra.methods.maple import MaPLe
from dra.methods.metaprompt import MetaPrompt
from dra.methods.mma import MMA
from dra.methods.proda import ProDA
from dra.methods.tcp import TCP
from dra.methods.tip_adapter import TipAdapter, TipAdapterF
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
    "mma": MMA,
    "clip_lora": CLIPLoRA,
    "clip_adapter": CLIPAdapter,
    "tip_adapter": TipAdapter,
    "tip_adapter_f": TipAdapterF,
    "metaprompt": MetaPrompt,
    "lfa": LFA,
    "proda": ProDA,
}


def build_method(
    name: str, backbone: CLIPBackbone, classnames: list[str], config=None, template: str = DEFAULT_TEMPLATE
) -> ClassifierModel:
    """`config`: the method's config object (e.g. `DRAConfig`, `MMAConfig`), a dict of its fields, or None
    for the published defaults; methods without a config ignore it."""
    if name not in METHODS:
        raise SettingsError(f"unknown method '{name}'; choose one of {sorted(METHODS)}")
    cls = METHODS[name]
    if cls.config_class is None:
        return cls(backbone, classnames, template)
    if isinstance(config, dict):
        config = cls.config_class.from_dict(config)
    elif config is not None and not isinstance(config, cls.config_class):
        raise TypeError(f"method {name} takes a {cls.config_class.__name__}, got a {type(config).__name__}")
    return cls(backbone, classnames, config or cls.config_class(), template)


__all__ = [
    "METHODS",
    "DRA",
    "MMA",
    "CLIPLoRA",
    "CLIPAdapter",
    "TipAdapter",
    "TipAdapterF",
    "CoOp",
    "CoCoOp",
    "KgCoOp",
    "MaPLe",
    "TCP",
    "MetaPrompt",
    "LFA",
    "ProDA",
    "PlainAdapterCLIP",
    "ZeroShotCLIP",
    "ClassifierModel",
    "build_method",
    "DEFAULT_TEMPLATE",
]
