"""Paper Figure 4: the rank DRA gives each image patch and each prompt token, at one adapted block.

The model runs its inference path once; each DRA branch's input is captured on the way, and the
adapter's own scoring turns it into per-token ranks without noise. `order_agreement` then reports how
far training's noisy order (the adapter's own perturbation, `noise_temperature` and
`noise_on_log_scores` as configured) is from that noiseless order (Spearman, 1 = same order).

With ground truth (`scene=(seed, index)`: the image is the pocket world's `world.sample(seed, index)`, drawn
without a shift, whose object mask the generator knows), the result also says how well the noiseless token
scores and ranks separate object from background patches (`image_object_auc`) and, for any image, the class
name's tokens from the template's words and padding (`text_class_word_auc`): `dra.analysis.ground_truth`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from dra.adapters.dynamic_rank import DynamicRankAdapter, gumbel_like, perturb, positions
from dra.analysis import ground_truth
from dra.data import clip_transforms, load_image
from dra.errors import SettingsError
from dra.report import order_agreement, plot_image_ranks, plot_text_ranks

if TYPE_CHECKING:  # the engine takes any method; no import cycle at runtime
    from dra.methods.base import ClassifierModel


def ranks_and_scores(adapter: DynamicRankAdapter, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noiseless token scores a_t and the rank floor(e_i r) each token gets from them, (B, N) each."""
    scores = adapter.token_scores(F.relu(adapter.down(y)))
    groups = adapter.token_groups(positions(scores.argsort(dim=-1, descending=True)))
    return adapter.kept[groups], scores


def noisy_order_agreement(adapter: DynamicRankAdapter, scores: torch.Tensor, samples: int = 16, seed: int = 0) -> float:
    """Mean Spearman agreement between the noiseless order and `samples` noisy orders of training."""
    cfg = adapter.config
    generator = torch.Generator(device=scores.device).manual_seed(seed)
    values = []
    for _ in range(samples):
        noisy = perturb(scores, cfg.noise_temperature, cfg.noise_on_log_scores, gumbel_like(scores, generator))
        values.append(order_agreement(scores, noisy))
    return sum(values) / len(values)


@torch.no_grad()
def branch_inputs(model: ClassifierModel, images: torch.Tensor) -> dict[str, dict[int, torch.Tensor]]:
    """tower -> {block: the LN1 output each branch saw} in one inference-mode forward."""
    seen: dict[str, dict[int, torch.Tensor]] = {}
    handles = []
    for tower in ("image", "text"):
        for k, branch in model.branches(tower).items():

            def keep(module, args, tower=tower, k=k):
                seen.setdefault(tower, {})[k] = args[0].detach()

            handles.append(branch.register_forward_pre_hook(keep))
    was_training = model.training
    model.eval()
    model.clear_text_cache()  # the text branches must run to be seen
    try:
        model(images)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


@torch.no_grad()
def token_ranks(
    model: ClassifierModel,
    image_path: str | None,
    classname: str | None,
    out_dir: str | Path,
    block: int | None = None,
    scene: tuple[int, int] | None = None,
) -> dict:
    """Fig. 4 for one image (`image_path`, or the pocket scene `scene` = (seed, index)) and one prompt: PNGs in
    `out_dir` and a dict of the blocks shown, the order agreement per block, the plots, and the ground-truth
    AUCs per block (`text_class_word_auc` always; `image_object_auc` for a pocket scene)."""
    from dra.data.generated import world
    from dra.io import ensure_writable

    if (image_path is None) == (scene is None):
        raise SettingsError("give exactly one of an image file (--image) and a pocket scene (--scene SEED:INDEX)")

    adapted = sorted({k for tower in ("image", "text") for k in model.branches(tower)})
    if block is not None and block not in adapted:
        raise SettingsError(f"--block {block} is not an adapted block of this model; choose one of {adapted}")
    out = ensure_writable(out_dir)  # before any work: an unwritable output fails first
    out.mkdir(parents=True, exist_ok=True)
    _, test_tf = clip_transforms(model.backbone.preprocess)
    picture = load_image(image_path) if scene is None else world.sample(*scene)[0]
    image = test_tf(picture).unsqueeze(0)
    device = model.backbone.text_device
    if classname is not None:
        model.set_classnames([classname])
    inputs = branch_inputs(model, image.to(device))
    shown = str(image_path) if scene is None else f"pocket scene {scene[0]}:{scene[1]} ({world.GENERATOR_VERSION})"
    result: dict = {"image": shown, "classname": model.classnames[0]}
    mean, std = model.backbone.preprocess.mean, model.backbone.preprocess.std
    for tower in ("image", "text"):
        branches = model.branches(tower)
        if not branches:
            continue
        per_block = {k: ranks_and_scores(b.adapter, inputs[tower][k][:1]) for k, b in branches.items()}
        k = block if block in per_block else max(per_block)
        ranks, scores = per_block[k]
        result[f"{tower}_block"] = k
        result[f"{tower}_order_agreement"] = {
            b: noisy_order_agreement(branches[b].adapter, per_block[b][1]) for b in per_block
        }
        path = out / f"{tower}_ranks_block{k}.png"
        if tower == "text":
            labels = ground_truth.prompt_labels(model.backbone, model.template, model.classnames[0])
        elif scene is not None:
            grid = math.isqrt(ranks.shape[-1] - 1)
            labels = np.concatenate([[-1], ground_truth.patch_labels(*scene, grid)])  # the CLS token is no patch
        else:
            labels = None
        if labels is not None:
            name = "text_class_word_auc" if tower == "text" else "image_object_auc"
            result[name] = {b: ground_truth.separation(s[0], r[0], labels) for b, (r, s) in per_block.items()}
        if tower == "image":
            plot_image_ranks(image[0], ranks[0].cpu(), path, mean=mean, std=std)
        else:
            tokens = model.backbone.tokenize(model.prompts[:1])[0].tolist()
            end = tokens.index(max(tokens)) + 1  # the EOT token has the largest id
            words = [model.backbone.tokenizer.decoder[t].replace("</w>", "") for t in tokens[:end]]
            plot_text_ranks(words, ranks[0].cpu(), scores[0].cpu(), path, title=model.prompts[0])
        result[f"{tower}_plot"] = str(path)
    return result


def ground_truth_aucs(model: ClassifierModel, scenes: list[tuple[int, int]]) -> dict:
    """Fig. 4 over many pocket scenes, without plots: per adapted block, the mean, std and count of the
    noiseless token scores' AUC for object vs background patches (over `scenes`, each `world.sample(seed,
    index)`; a scene whose objects half-cover no patch is left out) and for class words vs template words and
    padding (over the model's class names; a name the tokenizer merges with the template is left out)."""
    from dra.data.generated import world

    _, test_tf = clip_transforms(model.backbone.preprocess)
    images = torch.stack([test_tf(world.sample(*s)[0]) for s in scenes])
    inputs = branch_inputs(model, images.to(model.backbone.text_device))
    result: dict = {"scenes": len(scenes), "classnames": list(model.classnames)}
    labels_of = {"text": [ground_truth.prompt_labels(model.backbone, model.template, c) for c in model.classnames]}
    for tower, name in (("image", "image_object_auc"), ("text", "text_class_word_auc")):
        per_block = {}
        for k, branch in model.branches(tower).items():
            _, scores = ranks_and_scores(branch.adapter, inputs[tower][k])
            if tower not in labels_of:  # image: the same patch grid in every block; the CLS token is no patch
                grid = math.isqrt(scores.shape[-1] - 1)
                labels_of[tower] = [np.concatenate([[-1], ground_truth.patch_labels(*s, grid)]) for s in scenes]
            labels = labels_of[tower]
            aucs = [
                ground_truth.separation(row, row, lab)["auc_scores"]
                for row, lab in zip(scores, labels)
                if lab is not None
            ]
            aucs = [a for a in aucs if a is not None]
            per_block[k] = {
                "mean": float(np.mean(aucs)) if aucs else None,
                "std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else None,
                "n": len(aucs),
            }
        if per_block:
            result[name] = per_block
    return result


def ground_truth_over_checkpoints(checkpoints: list[str], scenes: list[tuple[int, int]], pretrained=None) -> dict:
    """`ground_truth_aucs` for each DRA checkpoint (trained) and for the same model with freshly initialised
    adapters (torch seed = the checkpoint's position in the list: the untrained reference), and a summary over
    the checkpoints per AUC and block: the trained and untrained means, and trained - untrained, each as mean,
    sample std and 95 % percentile bootstrap interval over the checkpoints (`dra.report.stats.summarise`;
    `resolved` when the interval excludes 0)."""
    from dra.backbones import load_backbone
    from dra.checkpoints import load_model, read_checkpoint
    from dra.checkpoints.rebuild import backbone_args
    from dra.report.stats import summarise

    backbones: dict[tuple, object] = {}  # each backbone is loaded once and lent to every model built on it
    runs = []
    for position, checkpoint in enumerate(checkpoints):
        args = backbone_args(read_checkpoint(checkpoint)[1], pretrained)
        if args not in backbones:
            backbones[args] = load_backbone(*args)
        run = {"checkpoint": str(checkpoint)}
        for key, trained in (("trained", True), ("untrained", False)):
            torch.manual_seed(position)
            model = load_model(checkpoint, pretrained=pretrained, adapters=trained, backbone=backbones[args])
            try:
                if model.method != "dra":
                    raise SettingsError(f"checkpoint {checkpoint} is a '{model.method}' model: only DRA assigns ranks")
                run[key] = ground_truth_aucs(model, scenes)
            finally:
                model.unload()  # the backbone is plain CLIP again for the next model
        runs.append(run)
    summary: dict = {}
    for name in ("image_object_auc", "text_class_word_auc"):
        for block in runs[0]["trained"].get(name, {}):
            pairs = [
                (r["trained"][name][block]["mean"], r["untrained"][name][block]["mean"])
                for r in runs
                if r["trained"][name][block]["mean"] is not None and r["untrained"][name][block]["mean"] is not None
            ]
            if pairs:
                trained, untrained = zip(*pairs)
                summary.setdefault(name, {})[block] = {
                    "trained": summarise(trained).as_dict(),
                    "untrained": summarise(untrained).as_dict(),
                    "trained_minus_untrained": summarise([t - u for t, u in pairs]).as_dict(),
                }
    return {"scenes": len(scenes), "checkpoints": runs, "summary": summary}
