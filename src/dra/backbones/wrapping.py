"""Putting a method's modules inside CLIP: a wrapper takes the place of one of CLIP's modules.

As PEFT does for LoRA layers, the original module lives on inside its wrapper as `base`, so that
`print(model)` and `state_dict()` show both the frozen part and what a method added, and
`unwrap` puts the original back. Every method that changes CLIP's inside (adapters beside a block's
attention, prompt tokens entering a block, low-rank updates of a projection) is a `ModuleWrapper`.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from torch import nn

from dra.errors import DraError


class ModuleWrapper(nn.Module):
    """Stands in place of `base`. The base stays frozen and in eval mode; the wrapper's own
    submodules (what the method learns) follow `train()` / `eval()`."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def __getattr__(self, name: str):
        """What the wrapper does not define, the base answers (open_clip reads
        `resblocks[0].get_weight_dtype()`, timm and HF read attributes of their blocks)."""
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules
        except AttributeError:
            base = self.__dict__.get("_modules", {}).get("base")
            if name == "base" or base is None:
                raise
            return getattr(base, name)

    def train(self, mode: bool = True):
        self.training = mode
        for name, child in self.named_children():
            child.train(mode and name != "base")
        return self


class WrapError(DraError, RuntimeError):
    """A module cannot be wrapped (already wrapped, or not there)."""


def wrap(parent: nn.Module, name: str, make: Callable[[nn.Module], ModuleWrapper]) -> ModuleWrapper:
    """Put `make(original)` in place of `parent.<name>`; the wrapper must keep `original` as its `base`."""
    current = parent._modules.get(name)
    if current is None:
        raise WrapError(f"{type(parent).__name__} has no submodule '{name}'")
    if isinstance(current, ModuleWrapper):
        raise WrapError(
            f"{type(parent).__name__}.{name} already carries a {type(current).__name__}: build each method on a "
            "fresh backbone (load_backbone) or unload the previous method first"
        )
    wrapper = make(current)
    if not isinstance(wrapper, ModuleWrapper) or wrapper.base is not current:
        raise WrapError(f"the wrapper for {type(parent).__name__}.{name} must keep the original module as `base`")
    parent._modules[name] = wrapper
    return wrapper


def unwrap(parent: nn.Module, name: str) -> nn.Module:
    """Put the original module back in place of the wrapper at `parent.<name>`; returns it."""
    current = parent._modules.get(name)
    if not isinstance(current, ModuleWrapper):
        raise WrapError(f"{type(parent).__name__}.{name} is not wrapped")
    parent._modules[name] = current.base
    return current.base


def original(module: nn.Module) -> nn.Module:
    """The module a (possibly nested) wrapper stands in for."""
    while isinstance(module, ModuleWrapper):
        module = module.base
    return module


def wrappers(root: nn.Module) -> list[ModuleWrapper]:
    """Every wrapper inside `root`, outermost first."""
    return [m for m in root.modules() if isinstance(m, ModuleWrapper)]


@contextlib.contextmanager
def bypassed(root: nn.Module) -> Iterator[None]:
    """Inside the block, CLIP's own modules stand where wrappers stood (a frozen pass through a model
    that carries a method: MetaPrompt's un-prompted image feature); the wrappers return on exit."""
    swapped = []
    for parent in list(root.modules()):
        for name, child in list(parent._modules.items()):
            if isinstance(child, ModuleWrapper):
                swapped.append((parent, name, child))
                parent._modules[name] = original(child)
    try:
        yield
    finally:
        for parent, name, child in reversed(swapped):
            parent._modules[name] = child
