"""KgCoOp (Yao et al., CVPR 2023): CoOp whose prompts stay close to the hand-crafted ones.

    L = CE(logits, y) + lambda * (1 - mean_c cos(t_c, t_c^clip)),   lambda = 8

t_c^clip: frozen CLIP's feature of the hand-written prompt (the model's template) of class c; the mean
runs over every class of the label space.
"""

from __future__ import annotations

import torch

from dra.methods.coop import CoOp


class KgCoOp(CoOp):
    def hand_crafted_features(self) -> torch.Tensor:
        """(C, D) frozen CLIP text features of the template prompts (cached per class set)."""
        key = tuple(c.replace("_", " ") for c in self.classnames)
        cached = getattr(self, "_hand_crafted", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                tokens = self.backbone.tokenize([self.template.format(c) for c in key])
                cached = (key, self.backbone.encode_text(tokens, frozen=True))
            self._hand_crafted = cached
        return cached[1]

    def text_features(self) -> torch.Tensor:
        text = super().text_features()
        self._last_text = text if self.training else None  # the loss compares it with the hand-crafted one
        return text

    def loss(self, logits: torch.Tensor, labels: torch.Tensor):
        loss, parts = super().loss(logits, labels)
        text = getattr(self, "_last_text", None)
        if text is not None:
            cos = (text.float() * self.hand_crafted_features().float().to(text.device)).sum(-1)
            kg = 1.0 - cos.mean()
            loss = loss + self.config.kg_weight * kg
            parts["kg"] = kg.detach()
        return loss, parts
