"""Plain re-statements of the paper's equations, written without the library's tricks.

The library builds the mask from positions (no physical sort); this reference follows Eq. 16 literally:
sort the tokens, mask each group's slice, restore the order.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def reference_dra(adapter, x, token_noise, channel_noise, train=True):
    cfg = adapter.config
    W = lambda lin, t: t @ lin.weight.T + lin.bias  # noqa: E731
    h = F.relu(W(adapter.down, x))  # Eq. 9
    if train:
        out = torch.empty(x.shape[0], x.shape[1], cfg.rank)
        for b in range(x.shape[0]):
            q = W(adapter.token_proj, h[b])
            attn = torch.softmax(q @ q.T / math.sqrt(x.shape[-1]), dim=-1)
            a_t = attn.sum(0) / attn.shape[0]  # Eq. 10: column mean
            t = torch.argsort(a_t + cfg.noise_temperature * token_noise[b], descending=True)  # Eq. 11
            if cfg.channel_response:
                v = W(adapter.channel_proj, h[b])
                mu = v.mean(0, keepdim=True)
                a_c = torch.diag((v - mu).T @ (v - mu)) / (v.shape[0] - 1)  # Eq. 12
                c = torch.argsort(a_c + cfg.noise_temperature * channel_noise[b], descending=True)  # Eq. 13
            else:
                c = torch.arange(cfg.rank)
            sorted_h = h[b][t]
            n, k = len(t), cfg.num_groups
            sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]  # larger groups first
            mask = torch.zeros(n, cfg.rank)
            start = 0
            for i, size in enumerate(sizes):  # Eq. 15, expanded to tokens
                keep = c[: int(math.floor(cfg.rank_ratios[i] * cfg.rank + 1e-9))]
                mask[start : start + size, keep] = 1.0 / cfg.rank_ratios[i]
                start += size
            restored = torch.empty_like(sorted_h)
            restored[t] = sorted_h * mask  # Eq. 16: RestoringSort
            out[b] = restored
        h = out
    y = W(adapter.up, F.relu(W(adapter.mid, h)))  # Eqs. 17 / 18
    return F.relu(y) if cfg.output_relu else y
