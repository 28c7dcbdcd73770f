"""MMA (Multi-Modal Adapter): adapters in blocks 5..12 of both towers, parallel to the whole block, with
a dim x dim layer per depth shared by the two towers (docs/baselines.md).

Checkpoint tensors: `adapters.<image|text>.<block>.down|up.*` and `adapters.shared.<block>.*` (the shared
layer once, not once per tower). Text prompt: the fixed "a photo of a {}." (TEXT_CTX_INIT).
Official checkpoints (ZjjConan/Multi-Modal-Adapter): `mma_key` and `mma_config`, the class's `official_layout`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from dra.adapters.bottleneck import check_bottleneck
from dra.adapters.mma import MMABranch, mma_init
from dra.backbones import TOWERS, BackboneError
from dra.config import MMAConfig
from dra.errors import SettingsError
from dra.methods.adapted import AdaptedCLIP
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel
from dra.methods.official import OfficialLayout


def mma_key(key: str) -> str | None:
    """ZjjConan/Multi-Modal-Adapter `adapter_learner` keys -> dra MMA keys (None: not learned)."""
    m = re.fullmatch(r"(text|visual)_adapter\.(\d+)\.(down\.0|up)\.(weight|bias)", key)
    if m:
        tower = "text" if m[1] == "text" else "image"
        part = "down" if m[3] == "down.0" else "up"
        return f"adapters.{tower}.{m[2]}.{part}.{m[4]}"
    m = re.fullmatch(r"shared_adapter\.(\d+)\.0\.(weight|bias)", key)
    if m:
        return f"adapters.shared.{m[1]}.{m[2]}"
    return None


def mma_config(tensors: dict[str, torch.Tensor]) -> dict:
    """MMA's config from the imported tensors: adapted blocks and adapter width as the checkpoint has them."""
    blocks = sorted({int(k.split(".")[2]) for k in tensors if k.startswith("adapters.shared.")})
    if not blocks:
        raise SettingsError("the mma checkpoint holds no shared adapter")
    if blocks != list(range(blocks[0], blocks[-1] + 1)):
        raise SettingsError(f"the mma checkpoint's adapted blocks {blocks} are not one contiguous range")
    dim = tensors[f"adapters.shared.{blocks[0]}.weight"].shape[0]
    return {"dim": int(dim), "start_layer": blocks[0], "end_layer": blocks[-1]}


class MMA(AdaptedCLIP):
    official_layout = OfficialLayout("ZjjConan/Multi-Modal-Adapter", mma_key, mma_config)

    def __init__(self, backbone, classnames, config: MMAConfig | None = None, template: str = DEFAULT_TEMPLATE) -> None:
        self._shared: dict[int, nn.Linear] = {}
        config = config or MMAConfig()
        depth = min(len(backbone.blocks(t)) for t in TOWERS)
        end = config.end_layer or depth
        if end > depth:
            raise BackboneError(
                f"mma end_layer {end} is past the last block of the shallower tower of "
                f"{backbone.name} ({depth} blocks): the shared layer needs block {end} in both"
            )
        self._end = end
        super().__init__(backbone, classnames, config, template)
        self.shared = nn.ModuleDict({str(k): m for k, m in self._shared.items()})  # visible once in print()

    def adapted_towers(self) -> list[str]:
        return list(TOWERS)

    def last_block(self, tower: str) -> int:
        return self._end

    @property
    def placement(self) -> str:
        return "block"

    def make_branch(self, tower: str, block: int) -> nn.Module:
        c = self.config
        if block not in self._shared:
            check_bottleneck("mma.dim", c.dim, self.backbone.width(tower))
            self._shared[block] = mma_init(nn.Linear(c.dim, c.dim))
        return MMABranch(self.backbone.width(tower), c.dim, self._shared[block], c.scale, c.gradient_scaling)

    def loss(self, logits, labels):
        return ClassifierModel.loss(self, logits, labels)

    def learned_modules(self) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {}
        for tower, branches in self._branches.items():
            for k, b in branches.items():
                out[f"adapters.{tower}.{k}.down"] = b.down
                out[f"adapters.{tower}.{k}.up"] = b.up
        for k, shared in self._shared.items():
            out[f"adapters.shared.{k}"] = shared
        return out

    def parameter_counts(self) -> dict[str, int]:
        counts = {
            t: sum(
                p.numel() for b in self._branches.get(t, {}).values() for m in (b.down, b.up) for p in m.parameters()
            )
            for t in TOWERS
        }
        shared = sum(p.numel() for m in self._shared.values() for p in m.parameters())
        return {"trainable": counts["image"] + counts["text"] + shared, **counts, "shared": shared}

    def unload(self) -> None:
        super().unload()
        self._shared = {}
        self.shared = nn.ModuleDict()
