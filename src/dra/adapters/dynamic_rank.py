"""The DRA adapter, step by step as in docs/design.md section 1 (paper Eqs. 9-18).

| step             | code                                                                           |
|------------------|--------------------------------------------------------------------------------|
| down             | `h = relu(down(x))`                                    (B, N, r)               |
| token importance | `a_t = mean_i softmax(q q^T / sqrt(d))[i, :]`, `q = token_proj(h)`   (B, N)    |
| token order      | `argsort(a_t + tau g)`, Gumbel noise in training only                          |
| groups           | `torch.tensor_split(order, K)`: sizes differ by <= 1, larger groups first      |
| channel response | `a_c = var_unbiased over tokens of channel_proj(h)`              (B, r)        |
| channel order    | `argsort(a_c + tau g)`; channel response off: index order                      |
| mask             | token in group i keeps the top floor(e_i r) channels, scaled by 1/e_i          |
| train output     | `relu(up(relu(mid(h * M))))`                                    (Eq. 17)       |
| eval output      | `relu(up(relu(mid(h))))`                                        (Eq. 18)       |

The mask is built without physically sorting the tokens: the position of every token in the
importance order picks its group, and the position of every channel in the response order decides
whether the group keeps it. This equals Sort -> mask -> RestoringSort of Eq. 16.

Sorting has no gradient. With `learnable_scores` the forward value is exactly the hard mask, while the
backward pass goes through a soft mask built from soft ranks (pairwise sigmoids of the noisy scores),
so `token_proj` and `channel_proj` learn (a straight-through estimator).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

from dra.adapters.bottleneck import check_bottleneck
from dra.adapters.plain import project
from dra.config import DRAConfig


def gumbel_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise: -log(E), E ~ Exp(1)."""
    return -torch.empty_like(x).exponential_(generator=generator).log()


def perturb(
    scores: torch.Tensor, temperature: float, on_log_scores: bool = False, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """`a + tau g`, or `log a + tau g` (the Gumbel-top-k form); g ~ Gumbel(0, 1) unless given."""
    base = torch.log(scores.clamp_min(1e-12)) if on_log_scores else scores
    if temperature == 0:
        return base
    return base + temperature * (gumbel_like(scores) if noise is None else noise)


class NoiseSource:
    """Training noise for a batch encoded in row chunks, equal to the noise of one unchunked pass.

    The first request of an adapter for a kind ("token", "channel") draws the noise of *all* `rows`
    (`gumbel_like` of a (rows, ...) tensor, as the unchunked pass draws it, in the same order when the
    first chunk runs through the blocks in order); every request returns the rows `[start, stop)` set by
    `select`. So the chunks, and a second pass over them (recomputation for backward), see exactly the
    unchunked pass's noise, and the global RNG advances exactly as it would without chunks.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.start, self.stop = 0, rows
        self._drawn: dict[tuple[int, str], torch.Tensor] = {}

    def select(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __call__(self, adapter: nn.Module, kind: str, scores: torch.Tensor) -> torch.Tensor:
        key = (id(adapter), kind)
        if key not in self._drawn:
            full = torch.empty((self.rows, *scores.shape[1:]), dtype=scores.dtype, device=scores.device)
            self._drawn[key] = gumbel_like(full)
        return self._drawn[key][self.start : self.stop]


def positions(order: torch.Tensor) -> torch.Tensor:
    """Inverse permutation: positions[b, order[b, p]] = p."""
    pos = torch.empty_like(order)
    pos.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return pos


@functools.cache
def group_bounds(n: int, k: int) -> tuple[tuple[int, int], ...]:
    """[start, end) of each group of `torch.tensor_split(range(n), k)` (cached: a pure function of n, k)."""
    bounds, start = [], 0
    for chunk in torch.tensor_split(torch.arange(n), k):
        bounds.append((start, start + len(chunk)))
        start += len(chunk)
    return tuple(bounds)


def soft_positions(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable position in the descending order: sum_j sigmoid((s_j - s_i) / T), j != i."""
    diff = (scores.unsqueeze(-2) - scores.unsqueeze(-1)) / temperature  # [..., i, j] = s_j - s_i
    return torch.sigmoid(diff).sum(-1) - 0.5  # drop the j == i term, sigmoid(0) = 0.5


class DynamicRankAdapter(nn.Module):
    def __init__(self, dim: int, config: DRAConfig) -> None:
        super().__init__()
        r = check_bottleneck("dra.rank", config.rank, dim)
        self.config = config
        self.dim = dim
        self.down = nn.Linear(dim, r)  # W_d
        self.token_proj = nn.Linear(r, r)  # W_t
        self.channel_proj = nn.Linear(r, r) if config.channel_response else None  # W_c
        self.mid = nn.Linear(r, r)  # W_p
        self.up = nn.Linear(r, dim)  # W_u
        kept = torch.tensor(config.kept_channels)
        self.register_buffer("kept", kept, persistent=False)
        self.register_buffer("inv_ratio", 1.0 / torch.tensor(config.rank_ratios), persistent=False)
        self.last_ranks: torch.Tensor | None = None
        # Where training's Gumbel noise comes from when none is passed: None draws it here (`gumbel_like`);
        # chunked text encoding sets a `NoiseSource` that hands out rows of one draw for all classes.
        self.noise_source = None
        self.last_token_scores: torch.Tensor | None = None
        self.last_noisy_token_scores: torch.Tensor | None = None

    # -- scores ------------------------------------------------------------------------------------
    def token_scores(self, h: torch.Tensor) -> torch.Tensor:
        """a_t (Eq. 10): column mean of softmax(q q^T / sqrt(d)); each row of a_t sums to 1."""
        q = self.token_proj(h)
        attn = torch.softmax(q @ q.transpose(-1, -2) / math.sqrt(self.dim), dim=-1)
        return attn.mean(dim=-2)

    def channel_scores(self, h: torch.Tensor) -> torch.Tensor:
        """a_c (Eq. 12): unbiased variance over tokens of channel_proj(h)."""
        return self.channel_proj(h).var(dim=-2, unbiased=True)

    def perturb(self, scores: torch.Tensor, noise: torch.Tensor | None, kind: str = "token") -> torch.Tensor:
        """a + tau g (Eqs. 11, 13) in training, or log a + tau g with `noise_on_log_scores`."""
        if noise is None and self.noise_source is not None and self.config.noise_temperature != 0:
            noise = self.noise_source(self, kind, scores)
        return perturb(scores, self.config.noise_temperature, self.config.noise_on_log_scores, noise)

    # -- mask ----------------------------------------------------------------------------------------
    def group_channel_mask(self, channel_pos: torch.Tensor) -> torch.Tensor:
        """(B, K, r): 1/e_i on the channels group i keeps (its top floor(e_i r) of the order), else 0."""
        keep = channel_pos.unsqueeze(-2) < self.kept.view(-1, 1)
        return keep.to(self.inv_ratio.dtype) * self.inv_ratio.view(-1, 1)

    def token_groups(self, token_pos: torch.Tensor) -> torch.Tensor:
        """Group index of every token from its position in the importance order (B, N)."""
        n = token_pos.shape[-1]
        starts = torch.tensor([s for s, _ in group_bounds(n, self.config.num_groups)[1:]], device=token_pos.device)
        return torch.bucketize(token_pos, starts, right=True)

    def soft_mask(self, token_noisy: torch.Tensor, channel_noisy: torch.Tensor | None) -> torch.Tensor:
        """The relaxation used for gradients only: soft group membership x soft channel keep."""
        cfg = self.config
        rho = soft_positions(token_noisy, cfg.relax_temperature)  # (B, N)
        bounds = torch.tensor(group_bounds(rho.shape[-1], cfg.num_groups), device=rho.device, dtype=rho.dtype)
        member = torch.sigmoid(rho.unsqueeze(-1) - bounds[:, 0] + 0.5) - torch.sigmoid(
            rho.unsqueeze(-1) - bounds[:, 1] + 0.5
        )  # (B, N, K)
        if channel_noisy is None:
            kappa = torch.arange(cfg.rank, device=rho.device, dtype=rho.dtype).expand(rho.shape[0], -1)
        else:
            kappa = soft_positions(channel_noisy, cfg.relax_temperature)  # (B, r)
        keep = torch.sigmoid(self.kept.view(-1, 1).to(rho.dtype) - 0.5 - kappa.unsqueeze(-2))  # (B, K, r)
        return member @ (keep * self.inv_ratio.view(-1, 1).to(rho.dtype))

    def rank_mask(self, h: torch.Tensor, token_noise=None, channel_noise=None) -> torch.Tensor:
        """M' of Eq. 16, (B, N, r); records `last_ranks` and the token scores."""
        cfg = self.config
        b, n, r = h.shape
        a_t = self.token_scores(h)
        noisy_t = self.perturb(a_t, token_noise)
        groups = self.token_groups(positions(noisy_t.argsort(dim=-1, descending=True)))  # (B, N)

        if cfg.channel_response:
            noisy_c = self.perturb(self.channel_scores(h), channel_noise, "channel")
            channel_pos = positions(noisy_c.argsort(dim=-1, descending=True))
        else:
            noisy_c = None
            channel_pos = torch.arange(r, device=h.device).expand(b, r)

        group_mask = self.group_channel_mask(channel_pos).to(h.dtype)  # (B, K, r)
        mask = torch.gather(group_mask, 1, groups.unsqueeze(-1).expand(b, n, r))
        if cfg.learnable_scores:
            soft = self.soft_mask(noisy_t, noisy_c).to(h.dtype)
            mask = mask + (soft - soft.detach())

        self.last_ranks = self.kept[groups].detach()
        self.last_token_scores = a_t.detach()
        self.last_noisy_token_scores = noisy_t.detach()
        return mask

    # -- outputs -------------------------------------------------------------------------------------
    def project(self, h: torch.Tensor) -> torch.Tensor:
        return project(self, h)

    def forward(self, x: torch.Tensor, token_noise=None, channel_noise=None) -> torch.Tensor:
        h = F.relu(self.down(x))
        if not self.training:
            return self.project(h)  # Eq. 18: no scores, no mask, no noise
        return self.project(h * self.rank_mask(h, token_noise, channel_noise))  # Eq. 17

    def forward_with_reference(self, x: torch.Tensor, token_noise=None, channel_noise=None):
        """Training output (masked) and the eval output of the same input, sharing `down`."""
        h = F.relu(self.down(x))
        masked = self.project(h * self.rank_mask(h, token_noise, channel_noise))
        return masked, self.project(h)
