"""`dra train` and `dra eval`: one dataset, one seed, one label space (all, base or new classes)."""

from __future__ import annotations

from omegaconf import DictConfig

from dra import settings as S
from dra.checkpoints import load_adapters, load_model
from dra.data import subsample_classes
from dra.engine.outcome import loss_outcome
from dra.errors import SettingsError
from dra.protocols.experiment import Experiment, dataset_key, selection_set
from dra.run_files import ADAPTERS_WEIGHTS


def train(cfg: DictConfig, dataset: str, subsample: str, seed: int) -> dict:
    """Train the adapters; returns where the checkpoint is and the training history."""
    cfg = S.for_dataset(cfg, dataset)
    if cfg.method == "zeroshot":
        raise SettingsError(f"method {cfg.method} has nothing to train; use `dra eval --method {cfg.method}`")
    exp = Experiment(cfg)
    splits = subsample_classes(exp.draw(cfg, dataset, seed), subsample)
    name = dataset_key(cfg, dataset)  # a folder dataset goes by <folder>-<hash>
    run_dir = exp.output / "train" / exp.run_key(cfg) / f"{name}-{subsample}" / f"seed{seed}"
    model = exp.build(cfg, splits.classnames, seed)
    if not model.trainable_parameters() and not model.needs_cache:
        raise SettingsError(f"method {cfg.method} has nothing to train; use `dra eval --method {cfg.method}`")
    history = exp.train(
        cfg,
        model,
        splits.train,
        seed,
        run_dir,
        val_items=selection_set(splits),
        protocol="train",
        dataset=name,
        subsample=subsample,
    )
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(run_dir / ADAPTERS_WEIGHTS),
        "train_images": len(splits.train),
        "classes": len(splits.classnames),
        **loss_outcome(history),  # first_loss, last_loss, collapsed
        "history": history,
    }


def names_a_model(method: str | None, model: str | None, config=None, overrides: list[str] | None = None) -> bool:
    """Whether the user named the model to evaluate (a method, a model, a settings file or a dra.* setting):
    then `evaluate` builds it from the settings and a checkpoint must fit it."""
    return bool(method or model or config or any(str(o).startswith("dra.") for o in overrides or []))


def evaluate(
    cfg: DictConfig,
    dataset: str,
    subsample: str,
    seed: int,
    checkpoint: str | None,
    weights: str | None = None,
    explicit_model: bool = False,
) -> dict:
    """Accuracy on the test split.

    With a checkpoint alone, the model is rebuilt from what the checkpoint records (method, backbone,
    config); its backbone weights are the recorded ones unless `weights` names others ("" = random).
    With `explicit_model` (see `names_a_model`) the model is built from the settings and the checkpoint
    must fit it: a checkpoint of another config is refused.
    """
    if checkpoint is None and cfg.method != "zeroshot":
        raise SettingsError("give --checkpoint (from `dra train`), or --method zeroshot")
    exp = Experiment(cfg, writes=False)  # evaluation writes nothing
    splits = subsample_classes(exp.draw(cfg, dataset, seed), subsample)
    if checkpoint and explicit_model:
        model = exp.build(cfg, splits.classnames, seed)
        load_adapters(model, checkpoint)
    elif checkpoint:
        model = load_model(checkpoint, pretrained=weights, classnames=splits.classnames)
        exp._backbone = model.backbone
    else:
        model = exp.build(cfg, splits.classnames, seed)
    acc = exp.accuracy(cfg, model.to(exp.device), splits.test, f"{dataset} {subsample}")
    return {"dataset": dataset, "subsample": subsample, "method": model.method, "checkpoint": checkpoint, **acc}
