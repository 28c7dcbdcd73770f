"""Top-1 accuracy of a model over a list of labelled images (sharded across torchrun processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from dra.data import DataError, ImageDataset
from dra.engine import distributed
from dra.engine.precision import autocast, resolve

if TYPE_CHECKING:  # the engine takes any method; no import cycle at runtime
    from dra.methods.base import ClassifierModel


@torch.no_grad()
def evaluate(
    model: ClassifierModel,
    items,
    transform,
    batch_size: int = 100,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    num_workers: int = 0,
    desc: str = "eval",
) -> dict:
    """{"accuracy": percent, "correct": int, "total": int} over `items` with the model's class names.

    An empty `items` raises `DataError`: an accuracy over no image is not 0 %.
    """
    if len(items) == 0:
        raise DataError(f"{desc}: no images to evaluate (the list is empty): add test images; see docs/datasets.md")
    device = torch.device(device)
    precision = resolve(precision, device)
    info = distributed.current()
    dataset = ImageDataset(items, transform)
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))  # no padding, no repeats
    loader = DataLoader(
        shard, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda"
    )
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not info.is_main, unit="batch"):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(precision, device):
            logits = model(images)
        correct += int((logits.argmax(-1) == labels).sum())
        total += len(labels)
    model.train(was_training)
    correct, total = distributed.all_reduce_sum([correct, total], device)
    return {"accuracy": 100.0 * correct / max(total, 1), "correct": int(correct), "total": int(total)}
