"""Wrappers through which prompt methods put their own tokens into CLIP's token sequences.

- `AppendTokens` around the image tower's `ln_pre`: the prompt tokens join the sequence after the
  positional embedding and before `ln_pre` (MaPLe's visual prompts: after all patch tokens).
- `ReplaceTokens` around a residual block: before the block runs, the tokens at `start .. start+n`
  (text: right after SOS) or the last n tokens (`start=None`, image) are replaced by the method's.

The tokens come from `source()`, a callable of the method: the learned tensors live in the method's
own module (one place for checkpoints), the wrappers only say where they enter.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from dra.backbones.wrapping import ModuleWrapper

TokenSource = Callable[[], torch.Tensor]


def _batched(tokens: torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
    """(n, D) shared by the batch, or (batch, n, D) per row, as (batch, n, D)."""
    tokens = tokens.to(dtype)
    return tokens.expand(batch, -1, -1) if tokens.dim() == 2 else tokens


class AppendTokens(ModuleWrapper):
    def __init__(self, base: nn.Module, source: TokenSource) -> None:
        super().__init__(base)
        self.source = source

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, D) entering ln_pre
        return self.base(torch.cat([x, _batched(self.source(), x.shape[0], x.dtype)], dim=1))


class ReplaceTokens(ModuleWrapper):
    def __init__(self, base: nn.Module, source: TokenSource, start: int | None) -> None:
        super().__init__(base)
        self.source = source
        self.start = start
        self.batch_first = getattr(getattr(base, "attn", None), "batch_first", True)

    def forward(
        self,
        q_x: torch.Tensor,
        k_x: torch.Tensor | None = None,
        v_x: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = q_x if self.batch_first else q_x.transpose(0, 1)
        tokens = _batched(self.source(), x.shape[0], x.dtype)
        n = tokens.shape[1]
        start = x.shape[1] - n if self.start is None else self.start
        x = torch.cat([x[:, :start], tokens, x[:, start + n :]], dim=1)
        return self.base(x if self.batch_first else x.transpose(0, 1), attn_mask=attn_mask)

    def extra_repr(self) -> str:
        return "replaces the last tokens" if self.start is None else f"replaces tokens from position {self.start}"
