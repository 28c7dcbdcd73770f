"""Tip-Adapter (training-free) and Tip-Adapter-F (learnable keys): a cache of few-shot image features.

    keys   = L2-normalise(mean over `augment_views` augmented views of CLIP's image features)   (N K, D)
    values = one-hot labels of the training images                                           (N K, C)
    logits = logit_scale * f W_text^T + alpha * exp(-beta (1 - f keys^T)) values

`fit_cache` builds the cache from the training set (the protocols call it before training) and, with
`search`, grid-searches alpha and beta on the val split (`search_set`: the whole split as the official code). The cache's
columns are the classes it was built for: with any other class set (the new classes of base-to-new)
there is no cache term, so the model is zero-shot CLIP with its template. Tip-Adapter-F learns the keys
(initialised from the cache) with the settings of configs/methods/tip_adapter_f.yaml.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

from dra.config import TipAdapterConfig
from dra.methods.base import DEFAULT_TEMPLATE, ClassifierModel

log = logging.getLogger("dra")


def grid(scale: float, steps: int) -> list[float]:
    """The official search grid: 0.1 + i (scale - 0.1) / steps, i = 0..steps-1."""
    return [0.1 + i * (scale - 0.1) / steps for i in range(steps)]


class TipCache(nn.Module):
    def __init__(self, dim: int, learnable: bool) -> None:
        super().__init__()
        self.learnable = learnable
        self.register_buffer("values", torch.zeros(0, 0))
        self.register_buffer("alpha", torch.tensor(1.0))
        self.register_buffer("beta", torch.tensor(1.0))
        self.set_keys(torch.zeros(0, dim))

    def set_keys(self, keys: torch.Tensor) -> None:
        if self.learnable:
            self.keys = nn.Parameter(keys.clone())
        else:
            if "keys" in self._buffers:
                del self._buffers["keys"]
            self.register_buffer("keys", keys.clone())

    def logits(self, f: torch.Tensor) -> torch.Tensor:
        affinity = f @ self.keys.to(f.dtype).t()
        return torch.exp(-self.beta * (1 - affinity)) @ self.values.to(f.dtype)


class TipAdapter(ClassifierModel):
    learnable_keys = False
    trains_by_sgd = False

    def __init__(
        self, backbone, classnames, config: TipAdapterConfig | None = None, template: str = DEFAULT_TEMPLATE
    ) -> None:
        super().__init__(backbone, classnames, template)
        self.config = config = config or TipAdapterConfig()
        self.cache = TipCache(backbone.clip.visual.output_dim, self.learnable_keys)
        with torch.no_grad():
            self.cache.alpha.fill_(config.alpha)
            self.cache.beta.fill_(config.beta)
        self.cache_classnames: list[str] | None = None

    @property
    def needs_cache(self) -> bool:
        return True

    @property
    def cache_active(self) -> bool:
        return self.cache_classnames == self.classnames and self.cache.keys.shape[0] > 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.image_features(images)
        text = self.text_features()
        logits = self.backbone.logit_scale * f @ text.to(f.dtype).t()
        if self.cache_active:
            logits = logits + self.cache.alpha * self.cache.logits(f)
        return logits

    # -- the cache ----------------------------------------------------------------------------------
    def _augment(self):
        from torchvision import transforms as T
        from torchvision.transforms import InterpolationMode

        p = self.backbone.preprocess
        return T.Compose(
            [
                T.RandomResizedCrop(p.image_size, scale=(0.5, 1.0), interpolation=InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(),
                T.Lambda(lambda im: im.convert("RGB")),
                T.ToTensor(),
                T.Normalize(p.mean, p.std),
            ]
        )

    @torch.no_grad()
    def _features(self, items, transform, device, normalize: bool, batch_size: int = 64) -> torch.Tensor:
        from dra.data import ImageDataset

        data = ImageDataset(items, transform)
        out = []
        for start in range(0, len(data), batch_size):
            images = torch.stack([data[i][0] for i in range(start, min(start + batch_size, len(data)))]).to(device)
            f = self.backbone.clip.encode_image(images).float()
            out.append(F.normalize(f, dim=-1) if normalize else f)
        return torch.cat(out)

    @torch.no_grad()
    def fit_cache(self, train_items, transforms, device, val_items=None, echo=None) -> None:
        cfg = self.config
        device = torch.device(device)
        self.to(device)
        was = self.training
        self.eval()
        augment = self._augment()
        keys = sum(self._features(train_items, augment, device, normalize=False) for _ in range(cfg.augment_views))
        keys = F.normalize(keys / cfg.augment_views, dim=-1)
        labels = torch.tensor([d.label for d in train_items], device=device)
        self.cache.set_keys(keys)
        self.cache.values = F.one_hot(labels, len(self.classnames)).float()
        self.cache_classnames = list(self.classnames)
        self.cache.to(device)
        if cfg.search and val_items and not self.learnable_keys:  # Tip-Adapter-F searches after training
            self._search(val_items, transforms[1], device)
        self.clear_text_cache()
        self.train(was)

    def finish_training(self, val_items, transforms, device) -> bool:
        """Tip-Adapter-F: the official alpha / beta search with the trained keys, on the val set."""
        if not (self.learnable_keys and self.config.search and val_items and self.cache_active):
            return False
        was = self.training
        self.eval()
        self._search(val_items, transforms[1], torch.device(device))
        self.train(was)
        return True

    @torch.no_grad()
    def _search(self, val_items, transform, device) -> None:
        """The official grid search (first best wins) of beta, then alpha, on the val set."""
        cfg = self.config
        f = self._features(val_items, transform, device, normalize=True)
        labels = torch.tensor([d.label for d in val_items], device=device)
        clip_logits = self.backbone.logit_scale * f @ self.text_features().float().t()
        affinity = f @ self.cache.keys.detach().float().t()
        best = (-1.0, float(self.cache.alpha), float(self.cache.beta))
        for beta in grid(cfg.search_scale_beta, cfg.search_steps_beta):
            cache = torch.exp(-beta * (1 - affinity)) @ self.cache.values
            for alpha in grid(cfg.search_scale_alpha, cfg.search_steps_alpha):
                acc = float(((clip_logits + alpha * cache).argmax(-1) == labels).float().mean())
                if acc > best[0]:
                    best = (acc, alpha, beta)
        self.cache.alpha.fill_(best[1])
        self.cache.beta.fill_(best[2])
        log.info("tip-adapter search: alpha %.4f beta %.4f (val accuracy %.2f)", best[1], best[2], 100 * best[0])

    # -- checkpoints --------------------------------------------------------------------------------
    def learned_modules(self) -> dict[str, nn.Module]:
        return {"cache": self.cache}

    def resize_for(self, tensors: dict[str, torch.Tensor]) -> None:
        """A fresh model's cache is empty: take the saved cache's shapes before loading it."""
        keys, values = tensors.get("cache.keys"), tensors.get("cache.values")
        if keys is not None and values is not None:
            self.cache.set_keys(torch.zeros_like(keys))
            self.cache.values = torch.zeros_like(values)

    def checkpoint_metadata(self) -> dict:
        return {"cache_classnames": self.cache_classnames}

    def load_checkpoint_metadata(self, meta: dict) -> None:
        names = meta.get("cache_classnames")
        self.cache_classnames = list(names) if names is not None else None

    def parameter_counts(self) -> dict[str, int]:
        n = sum(p.numel() for p in self.cache.parameters())
        return {"trainable": n, "image": n, "text": 0}


class TipAdapterF(TipAdapter):
    learnable_keys = True
    trains_by_sgd = True
