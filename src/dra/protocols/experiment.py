"""What every protocol shares: one backbone per process, run folders, train-or-reuse, evaluation, tables.

A run folder is `<output>/<protocol>/<method>-<hash>/<dataset>/seed<k>`, where the hash covers every
setting that changes the trained model (model, the weights' content hash, the data root, method
config, training settings, shots, template). Evaluation results are files of that folder named by the
evaluation settings (`dra.run_files`: `result.json` for the full test set, `result-test_per_class8.json` for 8 images per
class), so a finished run is reused for another evaluation without training again, and a result is only
reused for the evaluation that produced it and for exactly the inputs it records (`inputs`: a fingerprint
of the images read and the weights' hash; `reuse` refuses a result of other inputs with an error naming
the folder). A run with `last.safetensors` resumes; its identity holds the same fingerprints.

`Experiment` holds what one invocation shares (device, output, backbone); every method takes the
settings it works with (`for_dataset` merges per-dataset overrides), never a copy of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from dra import run_files
from dra import settings as S
from dra.backbones import CLIPBackbone, load_backbone
from dra.backbones.weights_id import weights_id
from dra.data import build_dataset, clip_transforms, fewshot
from dra.data.core import Datum
from dra.data.fingerprint import fingerprint
from dra.engine import distributed
from dra.engine.evaluate import evaluate
from dra.engine.trainer import RunMismatchError, fit
from dra.errors import DraError
from dra.io import atomic_write_text, ensure_writable
from dra.methods import METHODS, build_method

if TYPE_CHECKING:  # the engine takes any method; no import cycle at runtime
    from dra.methods.base import ClassifierModel

log = logging.getLogger("dra")


class RunMissingError(DraError, RuntimeError):
    """A launched run has no result (its job failed); the message says why and where its log is."""


def limit_per_class(items: list[Datum], n: int | None) -> list[Datum]:
    """The first `n` items of each class, in list order (quick runs only)."""
    if not n:
        return items
    counts: dict[int, int] = {}
    out = []
    for d in items:
        if counts.get(d.label, 0) < n:
            counts[d.label] = counts.get(d.label, 0) + 1
            out.append(d)
    return out


def read_json(path: Path) -> Any | None:
    """A saved result, or None when absent or unreadable (then it is computed again)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reuse(path: Path, inputs: dict) -> Any | None:
    """The saved result at `path` when it was computed from exactly `inputs` (`Experiment.inputs`); None
    when there is none. A result of other images or other weights is never reused: it is an error that
    names the folder, so that nothing is overwritten and the user decides."""
    done = read_json(path)
    if done is None:
        return None
    saved = done.get("inputs") if isinstance(done, dict) else None
    if saved != inputs:
        what = "images" if not isinstance(saved, dict) or saved.get("data") != inputs["data"] else "weights"
        raise RunMismatchError(
            f"{path.parent} holds results computed from other {what} than this run reads (the data or weights "
            "changed since, or the folder is from an older dra); delete that folder to run it again, or use "
            "another --output"
        )
    return done


def seed_twin(run_dir: Path, name: str, scored: dict) -> dict | None:
    """Another seed's result file `name` of a seed-free method (zero-shot; `MethodSpec.seed_free`) that scored
    exactly the images and weights `scored` (its `scored_inputs`): that result is this seed's too. None: none."""
    for other in sorted(run_dir.parent.glob(f"seed*/{name}")):
        if other.parent != run_dir:
            done = read_json(other)
            if isinstance(done, dict) and done.get("scored_inputs") == scored:
                return done
    return None


def write_json(path: Path, value: Any) -> None:
    """Valid JSON only: a NaN or infinity is an error, never written."""
    atomic_write_text(path, json.dumps(value, indent=2, allow_nan=False))


def dataset_key(cfg: DictConfig, dataset: str) -> str:
    """The name a dataset's runs and results go by: the registry name, or `<folder>-<hash>` for a folder."""
    from dra.data.registry import dataset_name

    return dataset_name(dataset, cfg.get("split"))


def draw_key(cfg: DictConfig, dataset: str, seed: int) -> str:
    """What names a few-shot draw: the dataset (and where it is read from), the shots and the seed."""
    where = json.dumps([str(cfg.get("data_root")), str(cfg.get("split"))])
    digest = hashlib.sha1(where.encode()).hexdigest()[:8]
    return f"{dataset_key(cfg, dataset)}-{digest}-shots{cfg.shots}-seed{seed}"


def eval_suffix(cfg: DictConfig) -> str:
    """The part of a result file's name that names the evaluation settings ("" = the full test set,
    `-val` for the validation split, `-test_per_class8` ...)."""
    return run_files.eval_suffix(cfg.get("test_per_class"), eval_split(cfg))


def eval_split(cfg: DictConfig) -> str:
    """The split a base-to-new run is scored on (`eval_split`: test, or val for tuning)."""
    return str(cfg.get("eval_split") or "test")


def selection_set(splits) -> list[Datum] | None:
    """The few-shot val list a method may select hyper-parameters on (Tip-Adapter's alpha / beta search);
    None where val is the test set (ImageNet, as in CoOp): selecting there would leak the test set."""
    return None if getattr(splits, "val_is_test", False) or not splits.val else list(splits.val)


def write_tables(table, out: Path, stem: str, cfg: DictConfig, plot=None) -> None:
    """`stem`.md/.csv/.json and settings.yaml in `out` (headed by the command line that ran, when dra ran
    from one: `dra report` shows it); `plot(table, path)` adds `stem`.png."""
    from dra import command
    from dra.report import write

    write(table, out, stem)
    head = f"# command: {command.text()}\n" if command.text() else ""
    atomic_write_text(out / run_files.SETTINGS_FILE, head + OmegaConf.to_yaml(cfg))
    if plot is not None:
        plot(table, out / f"{stem}.png")


class Experiment:
    """The device, the output folder and the (frozen, shared) backbone of one protocol invocation."""

    def __init__(
        self, cfg: DictConfig, backbone: CLIPBackbone | None = None, writes: bool = True, gather: dict | None = None
    ) -> None:
        self.dist, self.device = distributed.setup(cfg.get("device"))
        self.gather = gather  # None: train what is missing; a dict: read results only (dra.launch)
        self.draw_files: dict[str, str] = {}  # draw_key -> a launched grid's shared draw (dra.launch)
        self.output = Path(cfg.output)
        if writes and self.dist.is_main:
            ensure_writable(self.output)  # before any work: a read-only or full-path output fails first
        self._model, self._pretrained = cfg.model, cfg.pretrained
        self._backbone = backbone
        self._weights_id: str | None = None
        # The last dataset read (its split file), kept for the next seeds: (what was read, its splits). One only:
        # a protocol runs all seeds of a dataset in a row, and a large dataset's lists are big.
        self._last_dataset: tuple[tuple, Any] | None = None

    def check_may_run(self, run_dir: Path) -> None:
        """In gather mode (the tables of a launched grid) a run without its result is not trained here:
        it is an error naming why its job failed (`gather`: {run folder: failure}, from `dra.launch`)."""
        if self.gather is None:
            return
        failure = self.gather.get(str(run_dir))
        if failure is None:
            raise RunMissingError(f"no result in {run_dir}: launch the grid again to run what is missing")
        if failure.get("diverged"):
            from dra.engine.trainer import TrainingDivergedError

            raise TrainingDivergedError(failure["reason"])
        raise RunMissingError(f"{failure['reason']} (log: {failure['log']})")

    @property
    def backbone(self) -> CLIPBackbone:
        if self._backbone is None:
            self._backbone = load_backbone(self._model, self._pretrained)
        return self._backbone

    def transforms(self, crop_scale_min: float | None = None):
        """(train, test) transforms; `crop_scale_min` of the random crop (the run's `train.crop_scale_min`)."""
        if crop_scale_min is None:
            return clip_transforms(self.backbone.preprocess)
        return clip_transforms(self.backbone.preprocess, crop_scale_min)

    @property
    def weights_id(self) -> str:
        """The content identity of the backbone weights (`weights_id`): a file is keyed by its bytes."""
        if self._weights_id is None:
            self._weights_id = weights_id(self._model, self._pretrained)
        return self._weights_id

    def run_key(self, cfg: DictConfig) -> str:
        """Short hash of everything that changes a trained model: the settings, the weights' content and
        the data root (the images read are checked by `inputs` on reuse)."""
        ident = {
            "model": cfg.model,
            "pretrained": weights_id(cfg.model, cfg.pretrained),  # cached: the file is hashed once
            "data_root": os.path.abspath(os.path.expanduser(str(cfg.data_root))) if cfg.get("data_root") else "",
            "method": cfg.method,
            "template": cfg.template,
            "shots": cfg.shots,
            **self.method_config(cfg),
            "train": {
                k: v
                for k, v in asdict(S.train_settings(cfg, 0)).items()
                if k not in ("seed", "num_workers", "log_every", "text_chunk", "text_chunk_above")  # exact either way
                and not (k in S.LATER_TRAIN_DEFAULTS and v == S.LATER_TRAIN_DEFAULTS[k])
            },
        }
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
        return f"{cfg.method}-{digest}"

    def draw(self, cfg: DictConfig, dataset: str, seed: int):
        """The few-shot splits of `dataset` for `seed`; warns when a class has fewer images than `shots`.
        A launched job reads its grid's shared draw instead (`draw_files`, written by the launcher)."""
        shared = self.draw_files.get(draw_key(cfg, dataset, seed)) if self.draw_files else None
        if shared is not None:
            from dra.data.draw_files import read_draw

            return read_draw(shared)
        splits = self.dataset(cfg, dataset)
        k = S.shots(cfg)
        if k is not None:
            counts: dict[int, int] = {}
            for d in splits.train:
                counts[d.label] = counts.get(d.label, 0) + 1
            short = {label: n for label, n in counts.items() if n < k}
            if short and self.dist.is_main:
                log.warning(
                    "warning: shots=%d but %d of %d %s classes have fewer training images (smallest: %d); "
                    "those classes use all their images",
                    k,
                    len(short),
                    len(counts),
                    dataset,
                    min(short.values()),
                )
        drawn = fewshot(splits, k, seed)
        if self.full_val(cfg) and not splits.val_is_test:  # the train draw is unchanged (val is drawn after it)
            return replace(drawn, val=list(splits.val))
        return drawn

    def dataset(self, cfg: DictConfig, dataset: str):
        """The full splits of `dataset` as `build_dataset` reads them, read once for consecutive calls (seeds).
        A generated dataset may stop at the test images a run scores (`test_per_class`: the first n per class)."""
        key = (dataset, cfg.data_root, cfg.get("split"), cfg.get("test_per_class"))
        if self._last_dataset is None or self._last_dataset[0] != key:
            self._last_dataset = (key, build_dataset(*key[:3], test_per_class=key[3]))
        return self._last_dataset[1]

    @staticmethod
    def full_val(cfg: DictConfig) -> bool:
        """Whether the method selects on the whole val split (Tip-Adapter's `search_set: full`)."""
        section = METHODS[cfg.method].config_section
        config = S.section_config(cfg, section) if section else None
        return getattr(config, "search_set", "fewshot") == "full"

    def inputs(self, *parts: list[Datum]) -> dict:
        """What a result was computed from: the images read (`fingerprint` of `parts`) and the weights."""
        return {"data": fingerprint(*parts), "weights": self.weights_id}

    @staticmethod
    def method_config(cfg: DictConfig) -> dict:
        """{section: fields} of the method's own settings section (`dra`, `mma`, ...); {} for none."""
        section = METHODS[cfg.method].config_section
        return {section: S.section_config(cfg, section).to_dict()} if section else {}

    def build(self, cfg: DictConfig, classnames: list[str], seed: int):
        torch.manual_seed(seed)  # adapter initialisation
        section = METHODS[cfg.method].config_section
        config = S.section_config(cfg, section) if section else None
        model = build_method(cfg.method, self.backbone, classnames, config, cfg.template)
        model.set_text_chunks(cfg.train.text_chunk, cfg.train.text_chunk_above)  # exact; not part of the run key
        return model

    def train(
        self,
        cfg: DictConfig,
        model,
        train_items: list[Datum],
        seed: int,
        run_dir: Path,
        val_items: list[Datum] | None = None,
        **run,
    ):
        """Train (or resume, or reload a finished run); `run` names the run (protocol, dataset, ...).

        A method that builds something from the training set first (Tip-Adapter's cache) gets its
        `fit_cache` call here, before SGD; with nothing to train that is all it gets."""
        if model.needs_cache:
            torch.manual_seed(seed)  # the cache's augmented views
            model.fit_cache(train_items, self.transforms(), self.device, val_items)
        if not model.trainable_parameters() or not model.trains_by_sgd:
            if model.needs_cache and self.dist.is_main:  # the built cache is the method's checkpoint
                from dra.checkpoints import save_adapters

                run_dir.mkdir(parents=True, exist_ok=True)
                save_adapters(model, run_files.adapters_path(run_dir))
            return []
        identity = {
            **run,
            "seed": seed,
            "classnames": list(model.classnames),
            "model": cfg.model,
            "pretrained": str(cfg.pretrained),
            "weights": self.weights_id,
            "data": fingerprint(train_items),
            "method": cfg.method,
            "dra": model.method_config(),
        }
        history = fit(
            model,
            train_items,
            self.transforms(cfg.train.crop_scale_min),
            S.train_settings(cfg, seed),
            run_dir,
            self.device,
            identity,
        )
        if model.finish_training(val_items, self.transforms(), self.device) and self.dist.is_main:
            from dra.checkpoints import save_adapters

            save_adapters(model, run_files.adapters_path(run_dir), extra={"epoch": len(history)})
        return history

    def accuracy(self, cfg: DictConfig, model: ClassifierModel, items: list[Datum], desc: str) -> dict:
        items = limit_per_class(items, cfg.get("test_per_class"))
        ev = cfg.eval
        return evaluate(
            model,
            items,
            self.transforms()[1],
            ev.batch_size,
            self.device,
            cfg.train.precision,
            ev.num_workers,
            desc=desc,
        )

    def release(self, model: ClassifierModel) -> None:
        """Take a method's adapters out of the shared backbone."""
        model.unload()
