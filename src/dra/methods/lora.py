"""CLIP-LoRA: low-rank updates of q, k, v in every block of both towers (docs/baselines.md).

Each block's attention becomes a `LoRAAttention` (the frozen fused projection plus three low-rank
pairs). Checkpoint tensors: `lora.<image|text>.<block>.<q|k|v>_<A|B>`. `merge()` folds the updates into
the frozen weights for inference; `unmerge()`, `train()` and `unload()` take them out again.
"""

from __future__ import annotations

import torch
from torch import nn

from dra.adapters.lora import LoRAAttention
from dra.backbones import TOWERS, BackboneError
from dra.config import LoRAConfig
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel


class CLIPLoRA(ClassifierModel):
    def __init__(
        self, backbone, classnames, config: LoRAConfig | None = None, template: str = DEFAULT_TEMPLATE
    ) -> None:
        super().__init__(backbone, classnames, template)
        self.config = config = config or LoRAConfig()
        self.towers = [t for t in TOWERS if config.branches in (t, "both")]
        self._attn: dict[str, dict[int, LoRAAttention]] = {}
        for tower in self.towers:
            n = len(backbone.blocks(tower))
            if config.start_layer > n:
                raise BackboneError(
                    f"lora start_layer {config.start_layer} is past the last of the {n} {tower} "
                    f"blocks of {backbone.name}"
                )
        for tower in self.towers:
            self._attn[tower] = {}
            for index in range(config.start_layer - 1, len(backbone.blocks(tower))):
                self._attn[tower][index + 1] = backbone.wrap_attention(
                    tower, index, lambda attn: LoRAAttention(attn, config.rank, config.scaling, config.dropout)
                )
        self._tokens: tuple[tuple[str, ...], torch.Tensor] | None = None

    @property
    def text_trainable(self) -> bool:
        return "text" in self._attn

    def compute_text_features(self) -> torch.Tensor:
        key = tuple(self.prompts)
        device = self.backbone.clip.positional_embedding.device
        if self._tokens is None or self._tokens[0] != key or self._tokens[1].device != device:
            self._tokens = (key, self.backbone.tokenize(self.prompts))
        return self.backbone.encode_text(self._tokens[1])

    # -- merging ------------------------------------------------------------------------------------
    def merge(self) -> None:
        """Fold scaling * B A into the frozen q, k, v weights (inference only; same logits, fewer matmuls)."""
        for attn in self._wrappers():
            attn.merge()

    def unmerge(self) -> None:
        for attn in self._wrappers():
            attn.unmerge()

    @property
    def merged(self) -> bool:
        return any(a.merged for a in self._wrappers())

    def train(self, mode: bool = True):
        if mode:
            self.unmerge()  # training changes A and B: never on merged weights
        return super().train(mode)

    def _wrappers(self) -> list[LoRAAttention]:
        return [a for blocks in self._attn.values() for a in blocks.values()]

    # -- bookkeeping --------------------------------------------------------------------------------
    def unload(self) -> None:
        self.unmerge()
        for tower, blocks in self._attn.items():
            for block in blocks:
                self.backbone.unwrap_attention(tower, block - 1)
        self._attn = {}

    def learned_modules(self) -> dict[str, nn.Module]:
        return {f"lora.{t}.{k}": a.lora for t, blocks in self._attn.items() for k, a in blocks.items()}

    def load_adapter_state_dict(self, tensors) -> None:
        was = self.merged
        self.unmerge()
        super().load_adapter_state_dict(tensors)
        if was:
            self.merge()

    def parameter_counts(self) -> dict[str, int]:
        counts = {
            t: sum(p.numel() for a in self._attn.get(t, {}).values() for p in a.lora.parameters()) for t in TOWERS
        }
        return {"trainable": counts["image"] + counts["text"], **counts}
