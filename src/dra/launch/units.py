"""The grid as units: one per run folder, as plain data (what goes to a job is JSON-able, nothing else).

A unit is a dict: `id` (the run folder relative to the output), `kind` (`base2new`: one dataset and
seed; `transfer`: one seed's source run and its targets), `method`, `dataset`, `seed`, `settings`
(the full settings as a plain mapping), `run_dir` and `results` (the files that exist once it is done).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dra import settings as S
from dra.protocols.experiment import Experiment, read_json


def _unit(kind: str, cfg: DictConfig, dataset: str, seed: int, run_dir: Path, results: list[Path]) -> dict:
    output = Path(cfg.output)
    return {
        "id": str(run_dir.relative_to(output)),
        "kind": kind,
        "method": str(cfg.method),
        "dataset": dataset,
        "seed": int(seed),
        "settings": OmegaConf.to_container(cfg, resolve=True),
        "run_dir": str(run_dir),
        "results": [str(p) for p in results],
    }


def base2new_units(cfg: DictConfig) -> list[dict]:
    """One unit per dataset x seed of a base-to-new run (the folders `base2new.run_one` uses)."""
    from dra.protocols.base2new import run_paths

    exp = Experiment(cfg, writes=False)
    out = []
    for dataset in cfg.datasets:
        for seed in cfg.seeds:
            run_dir, result = run_paths(exp, S.for_dataset(cfg, dataset), dataset, int(seed))
            out.append(_unit("base2new", cfg, dataset, int(seed), run_dir, [result]))
    return out


def transfer_units(cfg: DictConfig) -> list[dict]:
    """One unit per seed of a cross-dataset / domain-generalisation run (source training + targets)."""
    from dra.protocols.transfer import seed_paths

    exp = Experiment(cfg, writes=False)
    out = []
    for seed in cfg.seeds:
        run_dir, paths = seed_paths(exp, cfg, int(seed))
        out.append(_unit("transfer", cfg, cfg.source, int(seed), run_dir, list(paths.values())))
    return out


def protocol_units(cfg: DictConfig) -> list[dict]:
    """The units of one method's protocol run (`cfg.protocol`)."""
    return base2new_units(cfg) if cfg.protocol == "base2new" else transfer_units(cfg)


def unique(units: list[dict]) -> list[dict]:
    """Each run folder once (two ablation suites share the full DRA's runs), in first-seen order."""
    seen: dict[str, dict] = {}
    for u in units:
        seen.setdefault(u["run_dir"], u)
    return list(seen.values())


def write_draws(units: list[dict], folder: Path, echo=print) -> None:
    """Draw each (dataset, shots, seed) the units need once, into `folder/<draw key>.json`, and point the
    units at it (`unit["draws"]`): the jobs share it instead of each drawing again."""
    from dra.data.draw_files import write_draw
    from dra.protocols.experiment import draw_key

    done: dict[str, str] = {}
    for u in units:
        cfg = S.from_container(u["settings"])
        source = S.for_dataset(cfg, u["dataset"])
        key = draw_key(source, u["dataset"], u["seed"])
        if key not in done:
            path = folder / f"{key}.json"
            echo(f"draw {u['dataset']} seed {u['seed']} ({cfg.shots} shots) -> {path}")
            write_draw(path, Experiment(cfg, writes=False).draw(source, u["dataset"], u["seed"]))
            done[key] = str(path)
        u["draws"] = {key: done[key]}


def is_done(unit: dict) -> bool:
    """Every result file of the unit exists and reads as JSON: a finished run, reused."""
    return all(read_json(Path(p)) is not None for p in unit["results"])
