"""One file per method; `build_method` makes any of them from a name.

`dra.methods.registry` registers each method once (name, class, config class); `METHODS`,
`method_names()`, `method_sections()` and the classes' `method` / `config_class` / `config_section`
come from it, and each method's published hyper-parameters live in `configs/methods/<name>.yaml`.
The names below load on first use: `method_names()` imports no torch, `METHODS` imports every method.
"""

from __future__ import annotations

import importlib

from dra.methods.registry import (
    DEFAULT_TEMPLATE,
    REGISTERED,
    MethodSpec,
    all_methods,
    build_method,
    method_class,
    method_names,
    method_sections,
    method_spec,
)

_CLASSES = {s.cls: f"dra.methods.{s.module}" for s in REGISTERED} | {"ClassifierModel": "dra.methods.base"}


def __getattr__(name: str):
    if name == "METHODS":
        return all_methods()
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module 'dra.methods' has no attribute {name!r}")


__all__ = [
    "METHODS",
    *sorted(_CLASSES),
    "DEFAULT_TEMPLATE",
    "MethodSpec",
    "build_method",
    "method_class",
    "method_names",
    "method_sections",
    "method_spec",
]
