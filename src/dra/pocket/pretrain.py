"""`dra pocket pretrain`: contrastive pretraining of the pocket world's tiny CLIP (a SIMULATION).

`--recipe groups` (the first shipped weights'): batch `k` holds B/4 groups `world.sample_group(seed, g)`, g = k*B/4 .. (k+1)*B/4-1: four scenes
equal in everything but one attribute (shape, pattern, count, colour or background), each caption
naming it; without such groups a tiny CLIP learns background and colour and stops there. The data
is a pure function of (seed, step), so a resumed run sees exactly the batches an uninterrupted one would.
open_clip's `ClipLoss`, AdamW, linear warm-up then cosine decay. Every `checkpoint_every` steps the
model and the optimizer state go to `checkpoint.safetensors` (+ `checkpoint.json`: step, settings,
losses); a run started again with the same output folder resumes from there. At the end the weights
are written in fp16 as `pocket.safetensors` with `pocket.json` (command, seed, steps, final loss,
generator version, recipe); `--ship` also copies both into the package (`dra/pocket/`), where
`--pretrained pocket` finds them.

`--recipe curriculum` (earlier, not what made the shipped weights): the same groups, drawn by
stage (`CURRICULUM`): the first quarter of the steps `world.sample_curriculum_group(.., "single")`
(one large object, complete captions, groups weighted to shape and pattern), the second quarter
`"counts"` (one to six objects, complete captions), the rest `"full"` (`world.sample_group`: the
default recipe's batches, partial captions). The stage depends on the step and `--steps`, so a
curriculum run resumes only with the same `--steps`.

`--recipe attributes` (the default, the shipped weights'): the curriculum's batches, and beside the CLIP loss an attribute-prompt
term in the spirit of UniCL (image-text-label contrast): for each attribute of the world (shape, colour,
pattern, size, count, background) every image is also contrasted with one caption per value of that
attribute, all in one frame drawn per step from the grammar's frames ("a drawing of a star.", "a drawing of
a red object.", ...): a cross-entropy over the values, through both towers and the learned logit scale,
weighted `ATTRIBUTE_WEIGHT`. It asks the towers what the probe asks, in words the captions already use.

`--model` picks the tower (`dra.pocket.MODELS`): ViT-Pocket-P6 (default, the shipped weights': 6-px
patches) or the earlier ViT-Pocket (8-px patches); `pocket.json` records it as `model`, which is how
`dra pocket probe` knows which tower a weights file belongs to.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dra.data.generated import world
from dra.engine.trainer import TrainingDivergedError
from dra.errors import SettingsError
from dra.io import atomic_write, atomic_write_text
from dra.pocket import MODEL, MODELS, WEIGHTS
from dra.pocket.attributes import ATTRIBUTES, phrase, values

WEIGHTS_NAME = "pocket.safetensors"
META_NAME = "pocket.json"
RECIPES = ("groups", "curriculum", "attributes")
CURRICULUM = ((0.25, "single"), (0.5, "counts"), (1.0, "full"))  # (end as a fraction of the steps, stage)
ATTRIBUTE_WEIGHT = 1.0  # the attribute-prompt term beside the CLIP loss (recipe "attributes")
GROUP = 4  # a batch is made of groups of GROUP scenes that differ in one attribute (world.sample_group)


@dataclass
class PretrainSettings:
    steps: int = 5000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 50
    seed: int = 0
    checkpoint_every: int = 50
    threads: int = 1
    workers: int = 1
    model: str = MODEL
    recipe: str = "attributes"

    def __post_init__(self) -> None:
        """Every value checked before anything is made: one ValueError naming the option and the fix."""
        rules = [
            (self.steps >= 1, "--steps", "an integer >= 1", self.steps),
            (
                self.batch_size >= GROUP,
                "--batch-size",
                f"an integer >= {GROUP} (one group of the world)",
                self.batch_size,
            ),
            (math.isfinite(self.lr) and self.lr > 0, "--lr", "a finite number > 0", self.lr),
            (math.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay),
            (self.warmup >= 0, "warmup", ">= 0", self.warmup),
            (self.checkpoint_every >= 1, "checkpoint_every", ">= 1", self.checkpoint_every),
            (self.threads >= 1, "--threads", ">= 1", self.threads),
            (self.workers >= 0, "--workers", ">= 0", self.workers),
            (self.recipe in RECIPES, "--recipe", f"one of {', '.join(RECIPES)}", self.recipe),
            (self.model in MODELS, "--model", f"one of {', '.join(MODELS)}", self.model),
        ]
        for ok, name, rule, value in rules:
            if not ok:
                raise SettingsError(f"{name} must be {rule}, got {value!r}")


def _to_tensor(image) -> torch.Tensor:
    from dra.data.transforms import CLIP_MEAN, CLIP_STD

    x = torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]


def stage_at(step: int, steps: int) -> str:
    """The curriculum stage of (0-based) `step` in a run of `steps` steps (`CURRICULUM`)."""
    for end, stage in CURRICULUM:
        if step < end * steps:
            return stage
    return CURRICULUM[-1][1]


class WorldBatches(torch.utils.data.Dataset):
    """Item `k` = batch `k`: (images, tokens) of world groups k*B/4 .. (k+1)*B/4-1 (`world.sample_group`;
    with `recipe="curriculum"`, `world.sample_curriculum_group` of the step's stage)."""

    def __init__(self, seed: int, batch_size: int, model: str, recipe: str = "groups", steps: int = 1) -> None:
        import open_clip

        from dra.backbones.loading import open_clip_quietly, register_model_configs

        register_model_configs()
        self.seed, self.batch_size, self.recipe, self.steps = seed, batch_size, recipe, steps
        with open_clip_quietly():
            self.tokenizer = open_clip.get_tokenizer(model)
        if recipe == "attributes":  # the same 8 x 42 prompts every run: tokenized once, not every step
            self.prompt_tokens = [self.tokenizer(attribute_prompts(frame)) for frame in world.FRAMES]
            self.value_index = {a: attribute_labels(a) for a in ATTRIBUTES}

    def __len__(self) -> int:
        return 1 << 40

    def __getitem__(self, step: int):
        images, captions = [], []
        groups = self.batch_size // GROUP
        scenes = []
        stage = stage_at(step, self.steps) if self.recipe in ("curriculum", "attributes") else "full"
        for g in range(step * groups, (step + 1) * groups):  # groups of scenes differing in one attribute
            for image, text, scene in world.sample_curriculum_group(self.seed, g, stage, GROUP):
                images.append(_to_tensor(image))
                captions.append(text)
                scenes.append(scene)
        for i in range(step * self.batch_size, step * self.batch_size + self.batch_size - groups * GROUP):
            image, text, scene = world.sample(self.seed, i)
            images.append(_to_tensor(image))
            captions.append(text)
            scenes.append(scene)
        if self.recipe != "attributes":
            return torch.stack(images), self.tokenizer(captions)
        labels = torch.tensor([[self.value_index[a][getattr(s, a)] for a in ATTRIBUTES] for s in scenes])
        prompts = self.prompt_tokens[step % len(world.FRAMES)]
        return torch.stack(images), self.tokenizer(captions), prompts, labels


def attribute_labels(attribute: str) -> dict:
    """Value -> index of one attribute of the world (the probe's value order)."""
    return {v: i for i, v in enumerate(values(attribute))}


def attribute_prompts(frame: str) -> list[str]:
    """One caption per value of every attribute (ATTRIBUTES order, then value order), in `frame`."""
    return [frame.format(phrase(a, v)) for a in ATTRIBUTES for v in values(a)]


def attribute_loss(image_features, prompt_features, logit_scale, labels) -> torch.Tensor:
    """Mean over the attributes of the cross-entropy of each image against its attribute's value prompts
    (features L2-normalised; `labels` (B, len(ATTRIBUTES)) value indices)."""
    logits = logit_scale * image_features @ prompt_features.T
    losses, start = [], 0
    for j, a in enumerate(ATTRIBUTES):
        k = len(values(a))
        losses.append(torch.nn.functional.cross_entropy(logits[:, start : start + k], labels[:, j]))
        start += k
    return torch.stack(losses).mean()


def lr_at(step: int, s: PretrainSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return 0.5 * s.lr * (1 + math.cos(math.pi * min(1.0, t)))


def build_model(s: PretrainSettings):
    import open_clip

    from dra.backbones.loading import open_clip_quietly, register_model_configs

    register_model_configs()
    with torch.random.fork_rng(devices=[]), open_clip_quietly():
        torch.manual_seed(s.seed)
        return open_clip.create_model(s.model, pretrained=None, output_dict=True)


def _optimizer(model, s: PretrainSettings) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=s.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def _save_checkpoint(out: Path, model, opt, step: int, s: PretrainSettings, losses: list[float]) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(value).detach().contiguous()
    atomic_write(out / "checkpoint.safetensors", lambda tmp: save_file(tensors, tmp))
    atomic_write_text(
        out / "checkpoint.json",
        json.dumps(
            {"step": step, "settings": asdict(s), "generator": world.GENERATOR_VERSION, "losses": losses}, indent=1
        ),
    )


def _load_checkpoint(out: Path, model, opt, s: PretrainSettings) -> tuple[int, list[float]]:
    from safetensors.torch import load_file

    meta_path, weights_path = out / "checkpoint.json", out / "checkpoint.safetensors"
    if not (meta_path.is_file() and weights_path.is_file()):
        return 0, []
    meta = json.loads(meta_path.read_text())
    ignored = ("threads", "workers", "checkpoint_every") + (() if s.recipe != "groups" else ("steps",))
    saved = {"recipe": "groups", **{k: v for k, v in meta["settings"].items() if k not in ignored}}
    mine = {k: v for k, v in asdict(s).items() if k in saved}
    if saved != mine or meta.get("generator") != world.GENERATOR_VERSION:
        raise SettingsError(f"{out} holds a pretraining run with other settings ({saved}); use another --output")
    tensors = load_file(str(weights_path))
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    state = opt.state_dict()
    per_param: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            per_param.setdefault(int(i), {})[name] = v
    state["state"] = per_param
    opt.load_state_dict(state)
    return int(meta["step"]), list(meta["losses"])


def read_run(out: str | os.PathLike) -> tuple[str, int, dict]:
    """(model name, step, model state dict) of the latest checkpoint in a pretraining run folder `out`: a run
    can be probed while it goes on (`dra pocket probe --weights RUN_FOLDER`). No checkpoint: SettingsError."""
    from safetensors.torch import load_file

    out = Path(out)
    meta_path, weights_path = out / "checkpoint.json", out / "checkpoint.safetensors"
    if not (meta_path.is_file() and weights_path.is_file()):
        raise SettingsError(
            f"{out} is a folder without a pretraining checkpoint (checkpoint.json + checkpoint.safetensors); pass "
            "--weights a weights file or the --output folder of `dra pocket pretrain`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        model, step = meta["settings"]["model"], int(meta["step"])
    except (ValueError, KeyError, TypeError) as e:
        raise SettingsError(f"{meta_path} is not a pretraining checkpoint's record ({type(e).__name__}: {e})") from None
    tensors = load_file(str(weights_path))
    return model, step, {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}


def export_weights(model, path: Path, meta: dict) -> Path:
    """The model's weights in fp16 safetensors (about half the fp32 size) and a JSON beside them."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata={"format": "pt", "simulation": "pocket world"}))
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return path


def pretrain(
    s: PretrainSettings,
    output: str | os.PathLike,
    ship: bool = False,
    progress: bool = True,
    command: str | None = None,
    echo=print,
    stop_after: int | None = None,
) -> dict:
    """Run (or resume) pretraining into `output`; returns the summary written to pocket.json.

    `stop_after`: stop once this many steps (in all) are done, with a checkpoint there and no weights
    exported (an interruption on purpose: the same call without it resumes); returns {"stopped_at": step}.
    """
    from open_clip.loss import ClipLoss
    from tqdm.auto import tqdm

    torch.set_num_threads(max(1, s.threads))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(s)
    model.train()
    opt = _optimizer(model, s)
    start, losses = _load_checkpoint(out, model, opt, s)
    if start:
        echo(f"resuming {out} at step {start}/{s.steps}")
    loss_fn = ClipLoss()
    data = WorldBatches(s.seed, s.batch_size, s.model, s.recipe, s.steps)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=None,
        sampler=range(start, s.steps if stop_after is None else min(s.steps, stop_after)),
        num_workers=s.workers,
        prefetch_factor=4 if s.workers else None,
        persistent_workers=False,
    )
    t0 = time.time()
    log = open(out / "train.log", "a", encoding="utf-8")
    bar = tqdm(total=s.steps, initial=start, desc="pocket pretrain", disable=not progress, dynamic_ncols=True)
    step = start
    try:
        for step, batch in enumerate(loader, start=start):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, s)
            images, tokens = batch[0], batch[1]
            o = model(images, tokens)
            loss = loss_fn(o["image_features"], o["text_features"], o["logit_scale"])
            if s.recipe == "attributes":
                prompts = model.encode_text(batch[2], normalize=True)
                loss = loss + ATTRIBUTE_WEIGHT * attribute_loss(
                    o["image_features"], prompts, o["logit_scale"], batch[3]
                )
            if not torch.isfinite(loss):  # never save or ship non-finite weights
                raise TrainingDivergedError(
                    f"pocket pretraining diverged at step {step + 1}/{s.steps} (loss {loss.item()}); the last "
                    f"good checkpoint in {out} is kept and no weights were exported. Lower --lr (now {s.lr:g})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(round(loss.item(), 5))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{lr_at(step, s):.1e}")
            if (step + 1) % 10 == 0:
                log.write(
                    f"step {step + 1} loss {np.mean(losses[-10:]):.4f} lr {lr_at(step, s):.2e} "
                    f"elapsed {time.time() - t0:.0f}s\n"
                )
                log.flush()
            if (step + 1) % s.checkpoint_every == 0 or step + 1 == s.steps:
                _save_checkpoint(out, model, opt, step + 1, s, losses)
    finally:
        bar.close()
        log.close()
    if stop_after is not None and len(losses) < s.steps:
        _save_checkpoint(out, model, opt, len(losses), s, losses)
        return {"stopped_at": len(losses)}
    final = float(np.mean(losses[-50:])) if losses else float("nan")
    meta = {
        "simulation": True,
        "what": "the pocket world's tiny CLIP, pretrained by dra itself on procedurally generated captions",
        "command": command
        or f"dra pocket pretrain --steps {s.steps} --batch-size {s.batch_size} --lr {s.lr} --seed {s.seed} "
        f"--recipe {s.recipe} --model {s.model}",
        "model": s.model,
        "seed": s.seed,
        "steps": s.steps,
        "batch_size": s.batch_size,
        "lr": s.lr,
        "weight_decay": s.weight_decay,
        "warmup": s.warmup,
        "final_loss": round(final, 4),
        "first_loss": losses[0] if losses else None,
        "generator": world.GENERATOR_VERSION,
        "recipe": s.recipe,
        "batches": f"groups of {GROUP} (world.sample_group)"
        if s.recipe == "groups"
        else f"groups of {GROUP} (world.sample_curriculum_group, stages {CURRICULUM}) + attribute prompts "
        f"(weight {ATTRIBUTE_WEIGHT})"
        if s.recipe == "attributes"
        else f"groups of {GROUP} (world.sample_curriculum_group, stages {CURRICULUM})",
        "dtype": "float16",
        "wall_seconds_this_session": round(time.time() - t0, 1),
    }
    model.eval()
    path = export_weights(model, out / WEIGHTS_NAME, meta)
    if ship:
        shutil.copyfile(path, WEIGHTS)  # where backbones/weights.py's table reads it
        shutil.copyfile(path.with_suffix(".json"), WEIGHTS.with_name(META_NAME))
        echo(f"shipped: {WEIGHTS}")
    echo(f"final loss {final:.4f} (mean of the last 50 steps); weights: {path}")
    return meta
