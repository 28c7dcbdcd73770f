"""The plain adapter baseline of Table 4: no token scores, no mask, every token at full rank r.

A(X) = relu(up(relu(mid(relu(down(X))))))      # outer ReLU switchable (`output_relu`)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dra.adapters.bottleneck import check_bottleneck
from dra.config import DRAConfig


def project(adapter: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """mid -> ReLU -> up (-> ReLU): the tail shared by the plain adapter and Eqs. 17, 18.

    Without autograd (inference) the ReLUs run in place on the fresh outputs of `mid` and `up`: the same
    values, without two more (B, N, d)-sized tensors."""
    if not torch.is_grad_enabled():
        out = adapter.up(adapter.mid(h).relu_())
        return out.relu_() if adapter.config.output_relu else out
    out = adapter.up(F.relu(adapter.mid(h)))
    return F.relu(out) if adapter.config.output_relu else out


class PlainAdapter(nn.Module):
    tokenwise = True  # each token's output depends on that token alone

    def __init__(self, dim: int, config: DRAConfig) -> None:
        super().__init__()
        self.config = config
        self.down = nn.Linear(dim, check_bottleneck("dra.rank", config.rank, dim))
        self.mid = nn.Linear(config.rank, config.rank)
        self.up = nn.Linear(config.rank, dim)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return project(self, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(F.relu(self.down(x)))
