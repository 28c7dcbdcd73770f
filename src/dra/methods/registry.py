"""One registration per method: the table below, from which everything that names a method is derived.

A `MethodSpec` says a method's name, where its class lives and which config class (a section of the
settings schema) it reads. From it come:
- `METHODS` (name -> class) and `build_method`;
- a class's `method`, `config_class` and `config_section` attributes (`ClassifierModel` reads them here,
  for the class or the nearest registered class it derives from);
- the settings schema's method sections (`method_sections()`: section -> config class; the section name
  is the config class's own `section`: `clip_lora` reads `lora`, `adapter` and `dra` both read `dra`);
- the valid `method` values (`method_names()`: settings checks, the CLI's help), the packaged
  `configs/methods/<name>.yaml` files (a test checks there is one per name and no other) and the
  test matrix (`tests/test_methods_matrix.py` runs every name).
A method's official checkpoint layout (the key map of its authors' code) stays beside the class, in
its own file (`official_checkpoint`, as timm keeps `checkpoint_filter_fn` in the model's file).

The table names each class by module instead of importing it: reading names and sections imports no
torch (the settings layer and `dra --help` stay light; importing every method takes seconds). A class
is imported when it is first built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from dra.config import (
    CLIPAdapterConfig,
    CoCoOpConfig,
    CoOpConfig,
    DRAConfig,
    KgCoOpConfig,
    LFAConfig,
    LoRAConfig,
    MaPLeConfig,
    MetaPromptConfig,
    MMAConfig,
    ProDAConfig,
    TCPConfig,
    TipAdapterConfig,
)
from dra.errors import SettingsError
from dra.labels import DEFAULT_TEMPLATE

if TYPE_CHECKING:  # annotations only: the table itself imports no torch
    from dra.backbones import CLIPBackbone
    from dra.methods.base import ClassifierModel


@dataclass(frozen=True)
class MethodSpec:
    name: str
    """The `method` value of settings, the CLI and checkpoints."""
    module: str
    """The file under `dra.methods` that defines the class."""
    cls: str
    """The class's name in that file."""
    config: type | None = None
    """The method's config dataclass (its settings section), or None: nothing to configure."""
    seed_free: bool = False
    """Learns nothing from the training images and draws nothing at random (zero-shot CLIP): its result is
    the same for every seed, so a protocol computes it once and copies it to the other seeds."""

    @property
    def section(self) -> str | None:
        """The settings section the method reads (`dra`, `mma`, `lora`, ...): its config class's."""
        return None if self.config is None else self.config.section

    @property
    def path(self) -> str:
        return f"dra.methods.{self.module}:{self.cls}"

    def load(self) -> type[ClassifierModel]:
        return getattr(importlib.import_module(f"dra.methods.{self.module}"), self.cls)


REGISTERED: tuple[MethodSpec, ...] = (
    MethodSpec("dra", "dra", "DRA", DRAConfig),
    MethodSpec("adapter", "plain_adapter", "PlainAdapterCLIP", DRAConfig),
    MethodSpec("zeroshot", "zeroshot", "ZeroShotCLIP", seed_free=True),
    MethodSpec("coop", "coop", "CoOp", CoOpConfig),
    MethodSpec("cocoop", "cocoop", "CoCoOp", CoCoOpConfig),
    MethodSpec("kgcoop", "kgcoop", "KgCoOp", KgCoOpConfig),
    MethodSpec("maple", "maple", "MaPLe", MaPLeConfig),
    MethodSpec("tcp", "tcp", "TCP", TCPConfig),
    MethodSpec("mma", "mma", "MMA", MMAConfig),
    MethodSpec("clip_lora", "lora", "CLIPLoRA", LoRAConfig),
    MethodSpec("clip_adapter", "clip_adapter", "CLIPAdapter", CLIPAdapterConfig),
    MethodSpec("tip_adapter", "tip_adapter", "TipAdapter", TipAdapterConfig),
    MethodSpec("tip_adapter_f", "tip_adapter", "TipAdapterF", TipAdapterConfig),
    MethodSpec("metaprompt", "metaprompt", "MetaPrompt", MetaPromptConfig),
    MethodSpec("lfa", "lfa", "LFA", LFAConfig),
    MethodSpec("proda", "proda", "ProDA", ProDAConfig),
)
"""Every method, in the order tables and help list them."""

_BY_NAME = {s.name: s for s in REGISTERED}
_BY_PATH = {s.path: s for s in REGISTERED}


def method_names() -> tuple[str, ...]:
    """The valid `method` values, sorted."""
    return tuple(sorted(_BY_NAME))


def method_spec(name: str) -> MethodSpec:
    if name not in _BY_NAME:
        raise SettingsError(f"unknown method '{name}'; choose one of {sorted(_BY_NAME)}")
    return _BY_NAME[name]


def method_class(name: str) -> type[ClassifierModel]:
    return method_spec(name).load()


def method_sections() -> dict[str, type]:
    """Settings section -> config class, for every method that has a config (a section read by two
    methods, e.g. `dra` by dra and adapter, appears once)."""
    out: dict[str, type] = {}
    for spec in REGISTERED:
        if spec.config is not None:
            assert out.setdefault(spec.section, spec.config) is spec.config, f"section {spec.section} has two classes"
    return out


def spec_of(cls: type) -> MethodSpec | None:
    """The registration of `cls`, or of the nearest registered class it derives from (None: not a method)."""
    for c in cls.__mro__:
        spec = _BY_PATH.get(f"{c.__module__}:{c.__qualname__}")
        if spec is not None:
            return spec
    return None


@cache
def all_methods() -> dict[str, type[ClassifierModel]]:
    """name -> class for every method (imports them all)."""
    return {s.name: s.load() for s in REGISTERED}


def build_method(
    name: str, backbone: CLIPBackbone, classnames: list[str], config=None, template: str = DEFAULT_TEMPLATE
) -> ClassifierModel:
    """`config`: the method's config object (e.g. `DRAConfig`, `MMAConfig`), a dict of its fields, or None
    for the published defaults; methods without a config ignore it."""
    spec = method_spec(name)
    cls = spec.load()
    if spec.config is None:
        return cls(backbone, classnames, template)
    if isinstance(config, dict):
        config = spec.config.from_dict(config)
    elif config is not None and not isinstance(config, spec.config):
        raise TypeError(f"method {name} takes a {spec.config.__name__}, got a {type(config).__name__}")
    return cls(backbone, classnames, config or spec.config(), template)
