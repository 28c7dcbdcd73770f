"""Token-rank visualisation (paper Fig. 4) and the noisy-order measure.

The DRA adapters keep, from their last training forward, the rank each token got
(``last_ranks``, (B, N) ints) and the token scores. These helpers take one sample of those
(torch tensors or numpy arrays; torch is never imported here):

* :func:`image_rank_map` -- the image tokens' ranks as a (grid, grid) map;
* :func:`plot_image_ranks` -- that map over the image (lighter = higher rank, as in Fig. 4);
* :func:`plot_text_ranks` -- the text tokens' scores as bars coloured by rank;
* :func:`order_agreement` -- Spearman correlation between the noiseless and the noisy token
  order, i.e. how far the Gumbel noise moves the order (1 = same order, -1 = reversed);
  `dra.analysis.token_ranks` draws the adapter's own noise for it;
* :func:`auc` -- how well token scores (or ranks) separate two sets of tokens (object vs background
  patches, class words vs template words), exactly: Mann-Whitney, ties counted half.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from dra.report.plots import new_figure, save_figure

__all__ = [
    "to_numpy",
    "image_rank_map",
    "plot_image_ranks",
    "plot_text_ranks",
    "order_agreement",
    "auc",
]


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a torch tensor (any device or dtype, bf16 included), array or list."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        t = x.detach().cpu()
        if t.is_floating_point() and t.dtype.itemsize < 4:  # bf16 / fp16 -> fp32
            t = t.float()
        return t.numpy()
    return np.asarray(x)


def _squeeze_batch(a: np.ndarray, ndim: int, what: str) -> np.ndarray:
    while a.ndim > ndim and a.shape[0] == 1:
        a = a[0]
    if a.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} dims (or a batch of one), got shape {a.shape}")
    return a


# --------------------------------------------------------------------------------------------
# Image tokens
# --------------------------------------------------------------------------------------------


def image_rank_map(ranks: Any, grid: int | None = None) -> np.ndarray:
    """Patch ranks as a (grid, grid) map.

    Args:
        ranks: (N,) per-token ranks with N = 1 + grid*grid: the CLS token first, then the
            patches in row-major order (ViT-B/16 at 224 px: N = 197, grid = 14). A (B, N)
            batch gives (B, grid, grid).
        grid: patches per side; inferred from N when omitted.

    The CLS token's rank is dropped; ``out[i, j]`` is the rank of patch row ``i``, column ``j``.
    """
    a = to_numpy(ranks)
    if a.ndim == 0:
        raise ValueError("ranks must have a token dimension")
    n = a.shape[-1]
    if grid is None:
        grid = math.isqrt(max(n - 1, 0))
    if n != 1 + grid * grid:
        raise ValueError(f"{n} tokens is not 1 CLS + {grid}x{grid} patches")
    return a[..., 1:].reshape(*a.shape[:-1], grid, grid)


def _image_hwc(image: Any, mean: Any, std: Any) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] from (H,W,3) / (3,H,W) (optionally batched by one)."""
    img = _squeeze_batch(to_numpy(image), 3, "image")
    was_uint8 = img.dtype == np.uint8
    img = img.astype(np.float64)
    if img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.transpose(img, (1, 2, 0))  # CHW -> HWC
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    if img.shape[-1] != 3:
        raise ValueError(f"image must have 3 channels, got shape {img.shape}")
    if isinstance(mean, str) or isinstance(std, str):
        if "clip" not in (mean, std):
            raise ValueError("mean/std as a string must be 'clip'")
        from dra.data.transforms import CLIP_MEAN, CLIP_STD  # torch-free until asked for

        mean, std = CLIP_MEAN, CLIP_STD
    if mean is not None or std is not None:
        m = np.asarray(mean if mean is not None else 0.0, dtype=np.float64)
        s = np.asarray(std if std is not None else 1.0, dtype=np.float64)
        img = img * s + m
    elif was_uint8 or img.max() > 1.0:
        img = img / 255.0
    return np.clip(img, 0.0, 1.0)


def _rank_cmap(values: np.ndarray, cmap: str):
    """Distinct ranks (ascending), a ListedColormap with one colour each (higher = lighter),
    and the colours."""
    levels = np.unique(values)
    base = colormaps[cmap]
    ts = [1.0] if len(levels) == 1 else np.linspace(0.0, 1.0, len(levels))
    colors = [base(t) for t in ts]
    return levels, ListedColormap(colors), colors


def plot_image_ranks(
    image: Any,
    ranks: Any,
    path: str | os.PathLike,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
    grid: int | None = None,
    alpha: float = 0.55,
    title: str | None = None,
    cmap: str = "viridis",
) -> Path:
    """The image beside the same image overlaid with its patch-rank map (paper Fig. 4).

    Args:
        image: (H, W, 3) uint8 or float in [0, 1], or a (3, H, W) tensor / array; a leading
            batch dim of one is dropped. If ``mean``/``std`` are given the image is taken as
            normalised and un-normalised with ``x * std + mean`` per channel (``"clip"`` picks
            :data:`CLIP_MEAN` / :data:`CLIP_STD`).
        ranks: (N,) per-token ranks (CLS first, see :func:`image_rank_map`).
        path: the PNG to write.

    Each patch cell is coloured by its rank, one colour per distinct rank, lighter = higher.
    """
    img = _image_hwc(image, mean, std)
    r = _squeeze_batch(to_numpy(ranks), 1, "ranks")
    rmap = image_rank_map(r, grid).astype(np.float64)
    levels, listed, _ = _rank_cmap(rmap, cmap)
    # colour by the index of each rank among the distinct ranks, so the colour bar has one
    # equal-height cell per rank with its label in the middle
    idx = np.searchsorted(levels, rmap)
    norm = BoundaryNorm(np.arange(len(levels) + 1) - 0.5, listed.N)
    h, w = img.shape[:2]
    fig = new_figure(figsize=(8.0, 4.0))
    ax0, ax1 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax0.imshow(img)
    ax0.set_title("image")
    ax1.imshow(img)
    im = ax1.imshow(idx, cmap=listed, norm=norm, alpha=alpha, extent=(0, w, h, 0), interpolation="nearest")
    ax1.set_title("token rank")
    for ax in (ax0, ax1):
        ax.set_xticks([])
        ax.set_yticks([])
    cbar = fig.colorbar(im, ax=ax1, fraction=0.046, pad=0.04, ticks=np.arange(len(levels)))
    cbar.set_label("rank (channels kept)")
    cbar.ax.set_yticklabels([f"{v:g}" for v in levels])
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Text tokens
# --------------------------------------------------------------------------------------------


def plot_text_ranks(
    tokens: Sequence[str],
    ranks: Any,
    scores: Any,
    path: str | os.PathLike,
    title: str | None = None,
    crop: bool = True,
    cmap: str = "viridis",
) -> Path:
    """Bar chart of the text tokens' importance scores, each bar coloured by its rank.

    Args:
        tokens: the token strings to show (e.g. ``["<SOS>", "a", "photo", ...]``).
        ranks, scores: (N,) per-token ranks and scores with N >= len(tokens); positions past
            ``len(tokens)`` (padding up to the context length) are dropped.
        crop: as in the paper, when the top score (the <SOS> token, often > 0.7) is more
            than twice the next one, the y axis stops at 1.25x the next one and the cropped
            bar is labelled with its value.
    """
    tokens = [str(t) for t in tokens]
    n = len(tokens)
    r = _squeeze_batch(to_numpy(ranks), 1, "ranks").astype(np.float64)
    s = _squeeze_batch(to_numpy(scores), 1, "scores").astype(np.float64)
    if n == 0 or len(r) < n or len(s) < n:
        raise ValueError(f"need at least {n} (>0) ranks and scores, got {len(r)} and {len(s)}")
    r, s = r[:n], s[:n]
    levels, _, colors = _rank_cmap(r, cmap)
    color_of = {lv: c for lv, c in zip(levels, colors)}
    fig = new_figure(figsize=(max(5.0, 0.45 * n + 1.5), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n)
    ax.bar(x, s, color=[color_of[v] for v in r], edgecolor="black", linewidth=0.4)
    if crop and n > 1:
        top = int(np.argmax(s))
        rest = float(np.max(np.delete(s, top)))
        if rest > 0 and s[top] > 2.0 * rest:
            ymax = 1.25 * rest
            ax.set_ylim(0, ymax)
            ax.text(top, ymax * 0.97, f"{s[top]:.2f}", ha="center", va="top", fontsize="small")
    ax.set_xticks(x)
    ax.set_xticklabels(tokens, rotation=60, ha="right")
    ax.set_ylabel("token score")
    handles = [Patch(facecolor=color_of[lv], edgecolor="black", label=f"rank {lv:g}") for lv in levels[::-1]]
    ax.legend(handles=handles, fontsize="small")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# How far the noise moves the order
# --------------------------------------------------------------------------------------------


def _order_positions(a: np.ndarray) -> np.ndarray:
    """Position of each token in the descending order of ``a`` (0 = most important), per row.

    Ties are broken by token index (stable sort), so the positions are a permutation.
    """
    return np.argsort(np.argsort(-a, axis=-1, kind="stable"), axis=-1, kind="stable")


def order_agreement(scores: Any, noisy_scores: Any) -> float:
    """Spearman rank correlation between the token orders of ``scores`` and ``noisy_scores``.

    Args:
        scores, noisy_scores: (N,) or (..., N) token scores (e.g. ``a_t`` and ``a_t + g``);
            leading dims are a batch.

    Returns ρ = 1 - 6 Σ d² / (N (N² - 1)) per sample (d = difference of a token's positions in
    the two descending orders; ties broken by token index), averaged over the batch:
    1.0 for the same order, -1.0 for the reversed one, about 0 for an unrelated one.
    """
    a = to_numpy(scores).astype(np.float64)
    b = to_numpy(noisy_scores).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 0 or a.shape[-1] < 2:
        raise ValueError("need at least 2 tokens to compare orders")
    n = a.shape[-1]
    a, b = a.reshape(-1, n), b.reshape(-1, n)
    d = (_order_positions(a) - _order_positions(b)).astype(np.float64)
    rho = 1.0 - 6.0 * (d**2).sum(axis=-1) / (n * (n * n - 1.0))
    return float(rho.mean())


# --------------------------------------------------------------------------------------------
# How well scores separate two sets of tokens
# --------------------------------------------------------------------------------------------


def auc(values: Any, positive: Any) -> float | None:
    """The area under the ROC curve of ``values`` for telling ``positive`` tokens from the others.

    Args:
        values: (N,) token scores or ranks (higher = more important).
        positive: (N,) bools, True for the tokens that should score higher (object patches,
            class words).

    Returns P(value of a random positive > value of a random negative) + 0.5 P(equal), computed
    exactly from mid-ranks (the Mann-Whitney U statistic over n_pos * n_neg): 1 = every positive
    above every negative, 0.5 = no separation, 0 = reversed. None when either set is empty.
    """
    v = _squeeze_batch(to_numpy(values), 1, "values").astype(np.float64)
    p = _squeeze_batch(to_numpy(positive), 1, "positive").astype(bool)
    if v.shape != p.shape:
        raise ValueError(f"shapes differ: {v.shape} values vs {p.shape} labels")
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    mid = upper - (counts - 1) / 2.0  # mid-rank of each tie group
    u = mid[inverse][p].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
