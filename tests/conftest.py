"""Shared fixtures: small real open_clip architectures with random weights, and the shared data."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py and friends
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suite never touches the network
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TINY = "ViT-Tiny-16-test"


def shared_eurosat() -> Path:
    root = SHARED_DATA / "eurosat"
    if not (root / "split_zhou_EuroSAT.json").is_file():
        pytest.skip(f"real EuroSAT not found at {root} (the shared test data sits beside the repository)")
    return root


@pytest.fixture
def tiny_backbone():
    from dra.backbones import load_backbone

    torch.manual_seed(0)
    return load_backbone(TINY)


@pytest.fixture(scope="session")
def eurosat_batch():
    return load_eurosat_batch()


def load_eurosat_batch():
    """16 real EuroSAT images (first 4 of classes 0..3 of the split's train list) at the tiny model's size."""
    import json

    from PIL import Image
    from torchvision import transforms as T

    from dra.data import CLIP_MEAN, CLIP_STD

    root = shared_eurosat()
    split = json.loads((root / "split_zhou_EuroSAT.json").read_text())
    per_class: dict[int, list] = {}
    for rel, label, _ in split["train"]:
        if label < 4 and len(per_class.setdefault(label, [])) < 4:
            per_class[label].append(rel)
    tf = T.Compose([T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32), T.ToTensor(),
                    T.Normalize(CLIP_MEAN, CLIP_STD)])
    images, labels = [], []
    for label, rels in sorted(per_class.items()):
        for rel in rels:
            images.append(tf(Image.open(root / "2750" / rel).convert("RGB")))
            labels.append(label)
    names = {label: name for _, label, name in split["train"] if label < 4}
    return torch.stack(images), torch.tensor(labels), [names[i] for i in range(4)]
