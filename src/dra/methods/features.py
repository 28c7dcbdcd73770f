"""Frozen CLIP image features of a list of images, extracted once and kept as safetensors (no pickle).

`image_features(backbone, items, transform, device)` returns (N, V, D) normalised features, V the views
the transform makes of each image (FiveCrop: 5). With pretrained weights named (`backbone.info`), the
result is stored under `$DRA_CACHE_DIR/features/<key>.safetensors`, the key hashing the model, its
weights, the transform and every (path, label); a later run with the same key reads it back. A random
backbone (no weights named) is never cached: its features differ from one build to the next.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from dra.backbones.weights_id import weights_id
from dra.data.fingerprint import fingerprint
from dra.io import atomic_write, cache_root


def cache_dir() -> Path:
    return cache_root() / "features"


def cache_key(backbone, items, transform_name: str) -> str | None:
    """The weights' content hash and the images' fingerprint (`weights_id`, `fingerprint`), so that an
    overwritten weights file or edited images never answer from old features; None for random weights."""
    pretrained = backbone.info.get("pretrained")
    if not pretrained or pretrained == "random":
        return None
    ident = {
        "model": backbone.info.get("model"),
        "weights": weights_id(str(backbone.info.get("model")), pretrained),
        "transform": transform_name,
        "items": fingerprint(items),
    }
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


@torch.no_grad()
def extract(backbone, items, transform, device, batch_size: int = 32) -> torch.Tensor:
    """(N, V, D) normalised frozen image features; `transform` gives (3, H, W) or (V, 3, H, W) per image."""
    from dra.data import ImageDataset

    data = ImageDataset(items, transform)
    out = []
    for start in range(0, len(data), batch_size):
        views = [data[i][0] for i in range(start, min(start + batch_size, len(data)))]
        x = torch.stack([v if v.dim() == 4 else v.unsqueeze(0) for v in views]).to(device)
        b, v = x.shape[:2]
        f = backbone.clip.encode_image(x.flatten(0, 1)).float()
        out.append(F.normalize(f, dim=-1).view(b, v, -1).cpu())
    return torch.cat(out)


def image_features(backbone, items, transform, device, transform_name: str) -> torch.Tensor:
    """`extract`, read from / written to the feature cache when the backbone's weights are named."""
    key = cache_key(backbone, items, transform_name)
    path = cache_dir() / f"{key}.safetensors" if key else None
    if path is not None and path.is_file():
        try:
            return load_file(str(path))["features"]
        except Exception:  # noqa: BLE001 - a corrupt cache file is extracted again
            pass
    features = extract(backbone, items, transform, device)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: save_file({"features": features.contiguous()}, tmp))
        except OSError:
            pass  # a read-only cache only costs the extraction next time
    return features
