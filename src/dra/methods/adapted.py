"""CLIP with one adapter branch per block h..L in the image and/or text encoder.

Shared by `dra` (DynamicRankAdapter) and `adapter` (PlainAdapter): the two differ only in the module
each branch wraps. Branches are stored as `adapters.<image|text>.<block, 1-based>`.
"""
from __future__ import annotations

import torch
from torch import nn

from dra.adapters import AdapterBranch
from dra.backbones import BackboneError, CLIPBackbone
from dra.backbones.clip import attach, detach
from dra.config import DRAConfig
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel


class AdaptedCLIP(ClassifierModel):
    method = "adapted"
    adapter_class: type[nn.Module]

    def __init__(self, backbone: CLIPBackbone, classnames: list[str], config: DRAConfig | None = None,
                 template: str = DEFAULT_TEMPLATE) -> None:
        super().__init__(backbone, classnames, template)
        self.config = config = config or DRAConfig()
        self.adapters = nn.ModuleDict()
        self._hooks: list[tuple[nn.Module, list]] = []
        for tower, on, blocks, width in (
            ("image", config.adapts_image, backbone.image_blocks, backbone.image_width),
            ("text", config.adapts_text, backbone.text_blocks, backbone.text_width),
        ):
            if not on:
                continue
            if config.start_layer > len(blocks):
                raise BackboneError(
                    f"start_layer {config.start_layer} is past the last of the {len(blocks)} {tower} blocks "
                    f"of {backbone.name}; choose h in 1..{len(blocks)}"
                )
            branches = nn.ModuleDict()
            for index in range(config.start_layer - 1, len(blocks)):
                branch = AdapterBranch(self.adapter_class(width, config), config)
                branches[str(index + 1)] = branch
                self._hooks.append((blocks[index], attach(blocks[index], branch, config.placement)))
            self.adapters[tower] = branches
        # Text blocks before the first adapted one are frozen: their output is cached per class set.
        self.text_start = config.start_layer - 1 if config.adapts_text else len(backbone.text_blocks)
        self._prefix: tuple[tuple[str, ...], torch.Tensor, torch.Tensor] | None = None

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        self._prefix = None

    def remove_hooks(self) -> None:
        """Take the adapters out of the backbone's blocks (the backbone is then plain CLIP again)."""
        for block, handles in self._hooks:
            detach(block, handles)
        self._hooks = []

    # -- text with a cached frozen prefix -----------------------------------------------------------
    def text_prefix(self) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(self.prompts)
        device = self.backbone.clip.positional_embedding.device
        if self._prefix is None or self._prefix[0] != key or self._prefix[1].device != device:
            tokens = self.backbone.tokenize(self.prompts)
            self._prefix = (key, tokens, self.backbone.text_prefix(tokens, self.text_start))
        return self._prefix[1], self._prefix[2]

    def compute_text_features(self) -> torch.Tensor:
        tokens, hidden = self.text_prefix()
        return self.backbone.encode_text_from(hidden, tokens, self.text_start)

    @property
    def text_trainable(self) -> bool:
        return self.config.adapts_text

    # -- loss ---------------------------------------------------------------------------------------
    def regularization(self) -> dict[str, torch.Tensor | None]:
        """Sum of the branches' L1 terms from the last forward, per tower (None where absent)."""
        out: dict[str, torch.Tensor | None] = {"image": None, "text": None}
        for tower, branches in self.adapters.items():
            terms = [b.reg for b in branches.values() if b.reg is not None]
            out[tower] = torch.stack(terms).sum() if terms else None
        return out

    def loss(self, logits: torch.Tensor, labels: torch.Tensor):
        loss, parts = super().loss(logits, labels)
        weights = {"image": self.config.reg_weight_image, "text": self.config.reg_weight_text}
        for tower, reg in self.regularization().items():
            if reg is not None:
                loss = loss + weights[tower] * reg.float()
                parts[f"reg_{tower}"] = reg.detach().float()
        return loss, parts

    # -- bookkeeping --------------------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        counts = {"trainable": 0, "image": 0, "text": 0}
        for tower, branches in self.adapters.items():
            counts[tower] = sum(p.numel() for p in branches.parameters() if p.requires_grad)
        counts["trainable"] = counts["image"] + counts["text"]
        return counts

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"adapters.{k}": v for k, v in self.adapters.state_dict().items()}

    def method_config(self) -> dict:
        return self.config.to_dict()

    def branches(self, tower: str) -> dict[int, AdapterBranch]:
        return {int(k): b for k, b in self.adapters[tower].items()} if tower in self.adapters else {}
