"""Classify new images with a trained (or zero-shot) model: top-k class names with probabilities.

    from dra.engine.predict import predict
    out = predict(model, ["cat.jpg", "photos/"], top_k=5)      # a folder is read recursively
    out.rows    # [{"image": "cat.jpg", "top": [{"class": "tabby cat", "prob": 0.91}, ...]}, ...]
    out.errors  # [{"image": "photos/broken.jpg", "error": "cannot read image ..."}]

Images are paths (files or folders), PIL images or (3, H, W) tensors already transformed. Unreadable
files are reported in `errors` and skipped; every other image keeps its result. Probabilities are
the softmax of the model's logits over its current class names (`model.set_classnames` or
`classnames=` swaps the label space: zero-shot classes the adapters never saw).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

from dra.data.core import DataError, safe_text
from dra.data.folder import is_image_file
from dra.errors import SettingsError

if TYPE_CHECKING:  # the engine takes any method; no import cycle at runtime
    from dra.methods.base import ClassifierModel


@dataclass
class Predictions:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    classnames: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"predictions": self.rows, "errors": self.errors, "classnames": self.classnames}

    def to_csv(self) -> str:
        """One row per image: image, rank, class, prob (rank 1 = the top class)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "rank", "class", "prob"])
        for row in self.rows:
            for rank, top in enumerate(row["top"], 1):
                w.writerow([row["image"], rank, top["class"], f"{top['prob']:.6f}"])
        return buf.getvalue()

    def to_terminal(self) -> str:
        if not self.rows:
            return "no image classified"
        width = min(60, max(len(r["image"]) for r in self.rows))
        lines = []
        for r in self.rows:
            name = r["image"] if len(r["image"]) <= width else "..." + r["image"][-(width - 3) :]
            tops = "  ".join(f"{t['class']} {100 * t['prob']:.1f}%" for t in r["top"])
            lines.append(f"{name:{width}s}  {tops}")
        return "\n".join(lines)


def collect_images(inputs: Iterable[str | os.PathLike]) -> tuple[list[str], list[dict[str, str]]]:
    """Files as given, folders expanded recursively (image extensions, sorted); missing paths as errors."""
    files, errors = [], []
    for item in inputs:
        p = Path(os.path.expanduser(os.fspath(item)))
        if p.is_dir():
            found = sorted(
                str(f)
                for f in p.rglob("*")
                if f.is_file()
                and is_image_file(f.name)
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                errors.append({"image": safe_text(str(p)), "error": safe_text(f"no image files in folder {p}")})
            files.extend(found)
        elif p.is_file():
            files.append(str(p))
        else:
            errors.append({"image": safe_text(str(p)), "error": safe_text(f"no such file or folder: {p}")})
    return files, errors


class _Inputs(Dataset):
    """item -> (index, tensor or None, error or None): a bad file never stops the batch."""

    def __init__(self, items: Sequence, transform) -> None:
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from dra.data.image_dataset import load_image, to_rgb

        item = self.items[i]
        try:
            if torch.is_tensor(item):
                return i, item, None
            image = item if not isinstance(item, (str, os.PathLike)) else load_image(os.fspath(item))
            if getattr(image, "mode", "RGB") != "RGB":
                image = to_rgb(image)
            return i, self.transform(image), None
        except DataError as e:
            return i, None, str(e)
        except Exception as e:  # noqa: BLE001 - a transform failing on one odd image
            return i, None, f"cannot transform image ({type(e).__name__}: {e})"


def _collate(batch):
    return batch


def _label(item, i: int) -> str:
    """The name a row carries: the path, undecodable bytes escaped (`\\xff`) so it prints and writes."""
    return safe_text(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else f"<image {i}>"


@torch.no_grad()
def predict(
    model: ClassifierModel,
    images,
    top_k: int = 5,
    classnames: Sequence[str] | None = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    progress: bool | None = None,
    precision: str = "auto",
) -> Predictions:
    """Top-k classes of each image (paths, folders, PIL images or transformed tensors)."""
    from tqdm.auto import tqdm

    from dra.data.transforms import clip_transforms
    from dra.engine.precision import autocast, resolve

    if isinstance(images, (str, os.PathLike)) or not isinstance(images, (list, tuple)):
        images = [images]
    items: list = []
    errors: list[dict[str, str]] = []
    for x in images:  # input order kept; a folder's files in place of the folder
        if isinstance(x, (str, os.PathLike)):
            files, errs = collect_images([x])
            items.extend(files)
            errors.extend(errs)
        else:
            items.append(x)
    if classnames is not None:
        model.set_classnames(list(classnames))
    if top_k < 1:
        raise SettingsError(f"top_k must be >= 1, got {top_k}")
    k = min(top_k, len(model.classnames))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = resolve(precision, device)
    transform = clip_transforms(model.backbone.preprocess)[1]
    loader = DataLoader(
        _Inputs(items, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate
    )
    was_training = model.training
    model.to(device).eval()
    out = Predictions(errors=errors, classnames=list(model.classnames))
    results: dict[int, dict] = {}
    show = progress if progress is not None else len(items) > batch_size
    try:
        for batch in tqdm(loader, desc="predict", unit="batch", disable=not show, leave=False):
            good = [(i, x) for i, x, err in batch if err is None]
            for i, _, err in batch:
                if err is not None:
                    out.errors.append({"image": _label(items[i], i), "error": err})
            if not good:
                continue
            x = torch.stack([t for _, t in good]).to(device)
            with autocast(precision, device):
                logits = model(x)
            probs = logits.float().softmax(-1).cpu()
            values, indices = probs.topk(k, dim=-1)
            for (i, _), v, idx in zip(good, values.tolist(), indices.tolist(), strict=True):
                results[i] = {
                    "image": _label(items[i], i),
                    "top": [{"class": model.classnames[j], "prob": p} for j, p in zip(idx, v, strict=True)],
                }
    finally:
        model.train(was_training)
    out.rows = [results[i] for i in sorted(results)]
    return out
