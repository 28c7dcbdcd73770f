"""`dra tune`: each method's learning rate and epochs chosen on the pocket world's DEV draw, with the same
search budget for every method (issue #17, part 3). A SIMULATION's benchmark, like everything pocket.

    dra tune --config pocket --methods adapter dra coop kgcoop mma --seeds 1 2

The search space is one grid for every method (`GRID`): the method's current learning rate (its merged
settings: the settings file, the method's packaged YAML, the file's `method_overrides`, the command
line) times each of `lr_factors`, crossed with its current epochs times each of `epoch_factors`; the same
number of trials per method, the plain adapter included. `lr_factors` / `epochs` (absolute counts)
replace the grid for every method at once, never for one.

Each trial is an ordinary base-to-new run (`base2new.run_one`, the engine's own run folders, so a rerun
reuses every finished trial) on the dev draw of each dataset (`pocket_x@dev`: another generator seed
than the reported `pocket_x`), trained on the draw's few-shot base training set and scored on its
VALIDATION lists (`eval_split: val`: base.val for base classes, new.val for new classes; never a test
image), into `result-val.json`. The chosen trial has the highest mean harmonic mean of (base, new) over
datasets and seeds; ties go to the smaller lr, then fewer epochs (`select`, a pure function). A trial
with a diverged run (non-finite loss) is never chosen; collapsed runs count in the mean and are named.

Output in `<output>/tune/`: `tune.md` (a table per method), `tune.csv`, `tune.json` (every run's
numbers) and `tuned.yaml`, a `method_overrides:` block in the shape of `configs/pocket.yaml`'s, each
method's block of the settings file with the chosen lr and epochs, ready to paste.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf

from dra import settings as S
from dra.errors import SettingsError
from dra.io import atomic_write_text

GRID: dict[str, tuple[float, ...]] = {
    "lr_factors": (0.25, 0.5, 1.0, 2.0, 4.0),  # x the method's current learning rate
    "epoch_factors": (1.0, 0.5),  # x its current epochs (rounded, at least 1): the current and half of it
}
"""The search space of every method, in one place: 5 learning rates x 2 epoch counts = 10 trials each."""

OUTPUT_DIR = "tune"
TUNED_FILE = "tuned.yaml"


@dataclass(frozen=True)
class Trial:
    """One point of a method's grid: `index` counts from 1 in the method's table."""

    index: int
    lr: float
    epochs: int


def _round_lr(lr: float) -> float:
    """6 significant digits: 0.1 x 0.3 is 0.03 in the files, not 0.030000000000000002."""
    return float(f"{lr:.6g}")


def check_grid(lr_factors: Sequence[float] | None = None, epochs: Sequence[int] | None = None) -> dict[str, tuple]:
    """The grid to search: `GRID`, with `lr_factors` and/or `epochs` (absolute epoch counts, for every
    method) replacing its parts. An empty, repeated or out-of-range value is a SettingsError naming the option."""
    factors = tuple(GRID["lr_factors"] if lr_factors is None else lr_factors)
    if not factors:
        raise SettingsError("--lr-factors: the grid is empty; give at least one factor (e.g. --lr-factors 0.5 1 2)")
    bad = [
        f for f in factors if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f <= 0
    ]
    if bad:
        raise SettingsError(f"--lr-factors must be finite numbers > 0, got {bad[0]!r}")
    if len(set(factors)) != len(factors):
        raise SettingsError(f"--lr-factors must be distinct, got {list(factors)}")
    grid: dict[str, tuple] = {"lr_factors": tuple(float(f) for f in factors)}
    if epochs is None:
        efactors = tuple(GRID["epoch_factors"])
        if not efactors:
            raise SettingsError("the epoch grid is empty (dra.protocols.tune.GRID); give --epochs")
        grid["epoch_factors"] = efactors
        return grid
    counts = tuple(epochs)
    if not counts:
        raise SettingsError("--epochs: the grid is empty; give at least one epoch count (e.g. --epochs 10 20)")
    bad = [e for e in counts if isinstance(e, bool) or not isinstance(e, int) or e < 1]
    if bad:
        raise SettingsError(f"--epochs must be integers >= 1, got {bad[0]!r}")
    if len(set(counts)) != len(counts):
        raise SettingsError(f"--epochs must be distinct, got {list(counts)}")
    grid["epochs"] = counts
    return grid


def trials(lr: float, epochs: int, grid: Mapping[str, tuple], method: str = "") -> list[Trial]:
    """A method's trials around its current `lr` and `epochs`: every lr factor x every epoch count
    (`grid["epochs"]`) or epoch factor (`grid["epoch_factors"]`), lr first. Two epoch factors that round
    to the same count (half of 1 epoch) are a SettingsError: every method gets as many distinct trials."""
    if "epochs" in grid:
        counts = list(grid["epochs"])
    else:
        counts = [max(1, round(epochs * f)) for f in grid["epoch_factors"]]
        if len(set(counts)) != len(counts):
            raise SettingsError(
                f"--epochs: {method or 'a method'} trains {epochs} epochs; the epoch factors "
                f"{list(grid['epoch_factors'])} give {counts}, the same count twice; give --epochs explicitly"
            )
    points = [(_round_lr(lr * f), e) for f in grid["lr_factors"] for e in counts]
    return [Trial(i + 1, lr_, e) for i, (lr_, e) in enumerate(points)]


def dev_dataset(name: str) -> str:
    """The dev draw of a pocket dataset (`pocket_dusk` -> `pocket_dusk@dev`; a dev name stays); a dataset
    without one (not a pocket dataset) is a SettingsError naming --datasets."""
    from dra.data import DataError
    from dra.data.generated.pocket import DEV_SUFFIX, POCKET_DATASETS
    from dra.data.registry import DATASETS, dataset_name

    pocket = ", ".join(POCKET_DATASETS)
    try:
        key = dataset_name(name) if not str(name).endswith(DEV_SUFFIX) else str(name)
    except DataError:
        key = None
    base = key[: -len(DEV_SUFFIX)] if key and key.endswith(DEV_SUFFIX) else key
    if base not in POCKET_DATASETS or base + DEV_SUFFIX not in DATASETS:
        what = "unknown dataset" if key is None else "no dev draw for"
        raise SettingsError(
            f"--datasets: {what} {name!r}; dra tune tunes on a dev draw, which only the pocket world's "
            f"datasets have ({pocket})"
        )
    return base + DEV_SUFFIX


def _check_method(method: str) -> None:
    from dra.methods.registry import method_class, method_names

    if method not in method_names():
        raise SettingsError(f"--methods: unknown method '{method}'; choose from {', '.join(method_names())}")
    if not method_class(method).trains_by_sgd:
        raise SettingsError(
            f"--methods: {method} is not trained by SGD on train.lr (training-free or its own fit): "
            "nothing for dra tune to search"
        )


def trial_settings(cfg: DictConfig, datasets: list[str], trial: Trial, method: str) -> DictConfig:
    """`cfg` for one trial: the dev datasets (a test dataset's `dataset_overrides` carried to its dev
    draw), scored on val, with the trial's lr and epochs; checked, and the trial's values must hold for
    every dataset (a per-dataset override of train.lr or train.epochs would silently replace them)."""
    overrides = OmegaConf.to_container(cfg.dataset_overrides, resolve=True)
    for dev in datasets:
        test = dev.split("@", 1)[0]
        if dev not in overrides and test in overrides:
            overrides[dev] = overrides[test]
    out = OmegaConf.merge(
        cfg,
        {
            "datasets": list(datasets),
            "eval_split": "val",
            "train": {"lr": trial.lr, "epochs": trial.epochs},
            "dataset_overrides": overrides,
        },
    )
    where = f"{method} trial {trial.index} (lr {trial.lr:g}, {trial.epochs} epochs)"
    try:
        S.check(out)
    except ValueError as e:
        raise SettingsError(f"{where}: {e}") from None
    for d in datasets:
        t = S.for_dataset(out, d).train
        if (float(t.lr), int(t.epochs)) != (trial.lr, trial.epochs):
            raise SettingsError(
                f"{where}: dataset_overrides.{d} sets train.lr or train.epochs, which would replace the trial's; "
                "tune without that override"
            )
        if t.iterations or t.iterations_per_shot:
            raise SettingsError(
                f"{where}: {d} trains by an iteration budget (train.iterations / iterations_per_shot), so the "
                "epoch grid does not apply; set train.iterations_per_shot=0 train.iterations=0 to tune by epochs"
            )
    return out


def plan(
    methods: Sequence[str],
    settings_for: Callable[[str], DictConfig],
    datasets: Sequence[str] | None = None,
    lr_factors: Sequence[float] | None = None,
    epochs: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Everything checked before any run: {"grid", "datasets" (dev draws), "methods": {method:
    {"settings", "current": {"lr", "epochs"}, "trials": [(Trial, settings)]}}}. SettingsError on a method
    outside the registry (or not trained by SGD), a dataset without a dev draw, an empty or bad grid."""
    if not methods:
        raise SettingsError("--methods: give at least one method (e.g. --methods adapter dra coop)")
    methods = list(dict.fromkeys(methods))
    for m in methods:
        _check_method(m)
    grid = check_grid(lr_factors, epochs)
    out: dict[str, Any] = {"grid": grid, "methods": {}}
    dev: list[str] | None = None
    for m in methods:
        cfg = settings_for(m)
        if cfg.protocol != "base2new":
            raise SettingsError(f"--config: dra tune runs base-to-new, the settings say protocol {cfg.protocol}")
        if dev is None:
            dev = list(dict.fromkeys(dev_dataset(d) for d in (datasets or cfg.datasets)))
        lr, ep = float(cfg.train.lr), int(cfg.train.epochs)
        points = trials(lr, ep, grid, m)
        out["methods"][m] = {
            "settings": cfg,
            "current": {"lr": lr, "epochs": ep},
            "trials": [(t, trial_settings(cfg, dev, t, m)) for t in points],
        }
    counts = {len(v["trials"]) for v in out["methods"].values()}
    assert len(counts) == 1, counts  # the same budget for every method, by construction
    out["datasets"] = dev
    return out


def summarize(runs: Sequence[Mapping]) -> dict[str, Any]:
    """A trial's score from its runs (one per dataset x seed): mean base, new and HM (the mean of the
    runs' HMs), the collapsed runs; None scores when a run diverged."""
    diverged = any(r.get("diverged") for r in runs)
    done = [r for r in runs if not r.get("diverged")]
    out: dict[str, Any] = {
        "runs": len(runs),
        "diverged": diverged,
        "collapsed": sum(bool(r.get("collapsed")) for r in done),
    }
    for key in ("base", "new", "hm"):
        out[key] = None if diverged or not done else sum(float(r[key]) for r in done) / len(done)
    return out


def select(rows: Sequence[Mapping]) -> int | None:
    """The position in `rows` of the chosen trial: the highest mean HM (`hm`); ties go to the smaller
    `lr`, then fewer `epochs`. Rows without a finite `hm` (a diverged trial) are never chosen; None
    when no row has one."""
    ok = [i for i, r in enumerate(rows) if r.get("hm") is not None and math.isfinite(float(r["hm"]))]
    if not ok:
        return None
    return min(ok, key=lambda i: (-round(float(rows[i]["hm"]), 9), float(rows[i]["lr"]), int(rows[i]["epochs"])))


def method_table(method: str, info: Mapping, datasets: Sequence[str], seeds: Sequence[int]):
    """One method's trials as a `Table` (Trial, lr, Epochs, Base, New, HM, Chosen)."""
    from dra.report import Table

    rows, notes = [], []
    for row in info["rows"]:
        chosen = "<- chosen" if row["trial"] == info["chosen"] else ""
        rows.append([row["trial"], row["lr"], row["epochs"], row["base"], row["new"], row["hm"], chosen])
        if row["diverged"]:
            notes.append(f"Trial {row['trial']}: a run diverged (non-finite loss); never chosen.")
        elif row["collapsed"]:
            notes.append(f"Trial {row['trial']}: {row['collapsed']} collapsed run(s), kept in the means.")
    if info["chosen"] is None:
        notes.append("No trial finished: nothing chosen.")
    cur = info["current"]
    title = (
        f"{method}: {len(rows)} trials around lr {cur['lr']:g}, {cur['epochs']} epochs; mean over "
        f"{', '.join(datasets)} (dev draw, val split) x seeds {' '.join(map(str, seeds))}"
    )
    return Table(
        title=title,
        columns=["Trial", "lr", "Epochs", "Base", "New", "HM", "Chosen"],
        rows=rows,
        formats={"lr": "g"},
        notes=notes,
    )


def tuned_yaml(chosen: Mapping[str, Trial], blocks: Mapping[str, Any], command: str) -> str:
    """`method_overrides:` with each tuned method's block of the settings file (`blocks`), its train.lr and
    train.epochs set to the chosen trial's: one flow mapping per method, as configs/pocket.yaml writes them."""
    lines = [
        f"# {command}",
        "# Chosen on the dev draw's val split (mean HM over datasets x seeds); paste over the settings file's",
        "# method_overrides blocks of these methods. A SIMULATION's benchmark (docs/pocket.md).",
        "method_overrides:",
    ]
    for method, trial in chosen.items():
        block = json.loads(json.dumps(blocks.get(method) or {}))  # a plain deep copy
        train = block.setdefault("train", {})
        train["lr"], train["epochs"] = trial.lr, trial.epochs
        flow = yaml.safe_dump(block, default_flow_style=True, sort_keys=False, width=10**6).strip()
        lines.append(f"  {method}: {flow}")
    return "\n".join(lines) + "\n"


def _blocks(settings_file: str) -> dict:
    data = S.read_yaml(S.settings_path(settings_file))
    blocks = data.get("method_overrides") or {}
    return blocks if isinstance(blocks, dict) else {}


def run(
    methods: Sequence[str],
    settings_for: Callable[[str], DictConfig],
    datasets: Sequence[str] | None = None,
    lr_factors: Sequence[float] | None = None,
    epochs: Sequence[int] | None = None,
    settings_file: str = "pocket",
    echo=print,
) -> dict[str, Any]:
    """Run (or reuse) every trial of every method, choose, print a table per method and write
    `<output>/tune/tune.{md,csv,json}` and `tuned.yaml`. `settings_for(method)`: the method's merged
    settings (test-draw dataset names are fine: each becomes its dev draw); `settings_file`: the file whose
    `method_overrides` blocks `tuned.yaml` rewrites."""
    from dra import command
    from dra.backbones import load_backbone
    from dra.engine.trainer import TrainingDivergedError
    from dra.io import ensure_writable
    from dra.protocols.base2new import run_one
    from dra.protocols.experiment import Experiment
    from dra.report import Table

    p = plan(methods, settings_for, datasets, lr_factors, epochs)
    blocks = _blocks(settings_file)  # read before any run: a bad file is an error first
    first = next(iter(p["methods"].values()))["settings"]
    out_dir = ensure_writable(Path(first.output)) / OUTPUT_DIR
    seeds = [int(s) for s in first.seeds]
    dev = p["datasets"]
    n = len(next(iter(p["methods"].values()))["trials"])
    echo(
        f"dra tune: {len(p['methods'])} method(s) x {n} trials x {len(dev)} dataset(s) x {len(seeds)} seed(s), "
        f"scored on the dev draw's val split: {', '.join(dev)}"
    )
    backbones: dict[tuple, Any] = {}
    results: dict[str, Any] = {}
    for method, m in p["methods"].items():
        key = (m["settings"].model, str(m["settings"].pretrained))
        if key not in backbones:  # methods on one CLIP share it (each run takes its modules out again)
            backbones[key] = load_backbone(m["settings"].model, m["settings"].pretrained)
        exp = Experiment(m["settings"], backbones[key])
        rows = []
        for trial, cfg in m["trials"]:
            runs: list[dict] = []
            for dataset in dev:
                for seed in [int(s) for s in cfg.seeds]:
                    try:
                        r = run_one(exp, cfg, dataset, seed)
                    except TrainingDivergedError as e:
                        runs.append({"dataset": dataset, "seed": seed, "diverged": True})
                        echo(f"[{method} {trial.index}/{n}] {dataset} seed {seed}: diverged ({str(e).split(';')[0]})")
                        break
                    runs.append(
                        {k: r[k] for k in ("dataset", "seed", "base", "new", "hm")}
                        | {"collapsed": bool(r.get("collapsed"))}
                    )
                    echo(
                        f"[{method} {trial.index}/{n}] lr {trial.lr:g}, {trial.epochs} epochs: {dataset} seed {seed}: "
                        f"base {r['base']:.2f}  new {r['new']:.2f}  HM {r['hm']:.2f}"
                        + ("  COLLAPSED" if r.get("collapsed") else "")
                    )
                if runs and runs[-1].get("diverged"):
                    break
            rows.append(
                {
                    "trial": trial.index,
                    "lr": trial.lr,
                    "epochs": trial.epochs,
                    **summarize(runs),
                    "run_key": exp.run_key(cfg),
                    "results": runs,
                }
            )
        pick = select(rows)
        results[method] = {
            "current": m["current"],
            "chosen": None if pick is None else rows[pick]["trial"],
            "rows": rows,
        }
    tables = {m: method_table(m, info, dev, seeds) for m, info in results.items()}
    for table in tables.values():
        echo(table.to_terminal())
    chosen = {}
    for m, info in results.items():
        row = next((r for r in info["rows"] if r["trial"] == info["chosen"]), None)
        if row is not None:
            chosen[m] = Trial(row["trial"], row["lr"], row["epochs"])
    text = command.text() or (f"dra.protocols.tune.run(methods={list(p['methods'])}, datasets={dev}, seeds={seeds})")
    flat = Table(
        title="dra tune: every trial",
        columns=["Method", "Trial", "lr", "Epochs", "Base", "New", "HM", "Chosen"],
        rows=[
            [m, r["trial"], r["lr"], r["epochs"], r["base"], r["new"], r["hm"], r["trial"] == info["chosen"]]
            for m, info in results.items()
            for r in info["rows"]
        ],
    )
    summary = {
        "command": text,
        "simulation": True,
        "settings_file": settings_file,
        "datasets": dev,
        "seeds": seeds,
        "eval_split": "val",
        "grid": {k: list(v) for k, v in p["grid"].items()},
        "trials_per_method": n,
        "selection": "highest mean HM over datasets x seeds; ties: smaller lr, then fewer epochs",
        "methods": results,
    }
    atomic_write_text(
        out_dir / "tune.md", f"# command: {text}\n\n" + "\n".join(t.to_markdown() for t in tables.values())
    )
    atomic_write_text(out_dir / "tune.csv", flat.to_csv())
    atomic_write_text(out_dir / "tune.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out_dir / TUNED_FILE, tuned_yaml(chosen, blocks, text))
    echo(f"tables: {out_dir}/tune.{{md,csv,json}}; paste {out_dir / TUNED_FILE} into the settings file")
    return {"methods": results, "chosen": chosen, "tables": tables, "output": out_dir, "datasets": dev}
