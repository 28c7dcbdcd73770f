"""MMA's own model (ZjjConan/Multi-Modal-Adapter), built from a user's clone of its source, for a side-by-side column.

Nothing of MMA is copied here: `build_mma(path, ...)` imports `clip/model.py` and `trainers/mmadapter.py`
from the given clone (Dassl, which the trainer module imports but the model does not use, is replaced by
empty stand-ins during that import), builds MMA's `CustomCLIP` on a randomly initialised ViT CLIP of
the same shape as dra's backbone (speed and memory do not depend on the values), with the settings of
MMA's `configs/trainers/MultiModalAdapter/vit_b16_ep5.yaml` (adapters in blocks 5..12, dim 32, scale
0.001), and trains what MMA trains (its adapters) with the same loss MMA's trainer uses
(cross-entropy on the logits).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


@contextlib.contextmanager
def _dassl_stand_ins():
    """Empty `dassl.*` modules for the import of MMA's trainer file (its model classes do not use them)."""
    names = ["dassl", "dassl.engine", "dassl.utils", "dassl.optim"]
    saved = {n: sys.modules.get(n) for n in names}
    stub = types.SimpleNamespace(register=lambda *a, **k: lambda cls: cls)
    mods = {n: types.ModuleType(n) for n in names}
    mods["dassl.engine"].TRAINER_REGISTRY = stub
    mods["dassl.engine"].TrainerX = object
    mods["dassl.utils"].load_pretrained_weights = mods["dassl.utils"].load_checkpoint = None
    mods["dassl.optim"].build_optimizer = mods["dassl.optim"].build_lr_scheduler = None
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _import_mma(root: Path):
    root = Path(root).expanduser().resolve()
    if not (root / "trainers" / "mmadapter.py").is_file() or not (root / "clip" / "model.py").is_file():
        raise ValueError(
            f"{root} is not a clone of ZjjConan/Multi-Modal-Adapter (no trainers/mmadapter.py, clip/model.py)"
        )
    saved_clip = {k: v for k, v in sys.modules.items() if k == "clip" or k.startswith("clip.")}
    for k in saved_clip:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    try:
        with _dassl_stand_ins():
            spec = importlib.util.spec_from_file_location("_mma_trainer", root / "trainers" / "mmadapter.py")
            trainer = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(trainer)
        model_module = sys.modules["clip.model"]
    except ImportError as e:
        raise ValueError(f"MMA's source at {root} does not import here: {e}") from e
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k == "clip" or k.startswith("clip.")]:
            del sys.modules[k]
        sys.modules.update(saved_clip)
    return trainer, model_module


def _cfg(image_size: int, layers: int):
    ns = types.SimpleNamespace
    mm = ns(
        TEXT_CTX_INIT="a photo of a",
        ADAPTER_START=min(5, layers),
        ADAPTER_END=layers,
        ADAPTER_DIM=32,
        ADAPTER_SCALE=0.001,
        PREC="fp32",
    )
    return ns(INPUT=ns(SIZE=(image_size, image_size)), TRAINER=ns(MMADAPTER=mm))


class MMAModel(nn.Module):
    """MMA's CustomCLIP with the small interface the benchmark runner uses."""

    method = "mma"

    def __init__(self, custom_clip: nn.Module) -> None:
        super().__init__()
        self.net = custom_clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor):
        ce = F.cross_entropy(logits, labels)  # MMA's forward_backward
        return ce, {"ce": ce.detach()}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> dict[str, int]:
        return {"trainable": sum(p.numel() for p in self.trainable_parameters())}

    def text_features(self):
        return None  # MMA caches its text features inside its first eval-mode forward

    def clear_text_cache(self) -> None:
        self.net.text_features_for_inference = None

    def unload(self) -> None:
        pass


def build_mma(source, backbone, classnames: list[str]) -> MMAModel:
    """MMA's model for `classnames` on a random CLIP shaped like `backbone` (a dra `CLIPBackbone`)."""
    trainer, model_module = _import_mma(Path(source))
    clip = backbone.clip
    vis = clip.visual
    size = backbone.preprocess.image_size
    patch = vis.conv1.kernel_size[0]
    heads = clip.transformer.resblocks[0].attn.num_heads if hasattr(clip.transformer.resblocks[0], "attn") else None
    with torch.random.fork_rng():
        torch.manual_seed(0)
        mma_clip = model_module.CLIP(
            embed_dim=clip.text_projection.shape[1],
            image_resolution=size,
            vision_layers=len(vis.transformer.resblocks),
            vision_width=vis.transformer.width,
            vision_patch_size=patch,
            context_length=clip.context_length,
            vocab_size=clip.vocab_size,
            transformer_width=clip.transformer.width,
            transformer_heads=heads or clip.transformer.width // 64,
            transformer_layers=len(clip.transformer.resblocks),
        ).float()
        net = trainer.CustomCLIP(_cfg(size, len(vis.transformer.resblocks)), classnames, mma_clip)
    for name, p in net.named_parameters():  # MMA's build_model: only the adapters train
        p.requires_grad_("text_adapter" in name or "visual_adapter" in name or "shared_adapter" in name)
    return MMAModel(net).to(clip.positional_embedding.device)
