"""MMA's adapter branch (Multi-Modal Adapter, CVPR'24), as its official code computes it.

For block k of either tower, with LN1 the block's own frozen ln_1 and s = ADAPTER_SCALE:

    a(x) = s * up(relu(shared_k(relu(down(LN1 x)))))        # no ReLU after `up`

`shared_k` (a dim x dim Linear followed by a ReLU) is ONE module per depth k, used by the text and the
image branch of that depth. The branch is added after the whole block (placement "block"). Gradient
scaling as in MMA's clip/gsl.py: the input's gradient is multiplied by s, the output's by 1/s, so the
forward adds s * a while the adapter's parameters get the gradient they would get without the factor.
Initialisation: Kaiming-normal (fan_out, relu) weights, zero biases, for every Linear.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dra.adapters.bottleneck import check_bottleneck
from dra.adapters.grad_scale import scale_gradient


def mma_init(linear: nn.Linear) -> nn.Linear:
    nn.init.kaiming_normal_(linear.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(linear.bias)
    return linear


class MMABranch(nn.Module):
    def __init__(self, width: int, dim: int, shared: nn.Linear, scale: float, gradient_scaling: bool = True) -> None:
        super().__init__()
        self.down = mma_init(nn.Linear(width, check_bottleneck("mma.dim", dim, width)))
        self.shared = shared  # the same module in the other tower's branch of this depth
        self.up = mma_init(nn.Linear(dim, width))
        self.scale = scale
        self.gradient_scaling = gradient_scaling
        self.reg = None  # no regularisation term

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        s = self.scale
        if self.gradient_scaling:
            y = scale_gradient(y, s)
        out = self.up(F.relu(self.shared(F.relu(self.down(y)))))
        if self.gradient_scaling:
            out = scale_gradient(out, 1.0 / s)
        return s * out

    def extra_repr(self) -> str:
        return f"scale={self.scale}, shared with the other tower"
