"""The few calls a Python user needs: build a model, and rebuild one from a saved checkpoint."""

from __future__ import annotations

from dra.backbones import load_backbone
from dra.checkpoints.rebuild import load_model  # noqa: F401 - re-exported: dra.load_model
from dra.config import DRAConfig
from dra.methods import DEFAULT_TEMPLATE, ClassifierModel, build_method

__all__ = ["create_model", "load_model", "predict"]


def create_model(
    classnames: list[str],
    method: str = "dra",
    model: str = "ViT-B-16",
    pretrained: str | None = "openai",
    config: DRAConfig | dict | None = None,
    template: str = DEFAULT_TEMPLATE,
    quick_gelu: bool | None = None,
) -> ClassifierModel:
    """CLIP (frozen) + the method's adapters, ready to map images to logits over `classnames`."""
    backbone = load_backbone(model, pretrained, quick_gelu)
    return build_method(method, backbone, classnames, config, template)


def predict(
    model_or_checkpoint,
    images,
    top_k: int = 5,
    classnames: list[str] | None = None,
    pretrained: str | None = None,
    **kwargs,
):
    """Top-k classes per image, from a model (any `ClassifierModel`) or an adapter checkpoint (rebuilt with
    `load_model`).

    `images`: paths (a folder is read recursively), PIL images or transformed tensors. `classnames`
    swaps the label space (zero-shot classes the adapters were not trained on). Returns
    `dra.engine.predict.Predictions` (`rows`, `errors`, `to_json()`, `to_csv()`).
    """
    from dra.engine.predict import predict as run

    model = model_or_checkpoint
    if not isinstance(model, ClassifierModel):
        model = load_model(model_or_checkpoint, pretrained=pretrained)
    return run(model, images, top_k=top_k, classnames=classnames, **kwargs)
