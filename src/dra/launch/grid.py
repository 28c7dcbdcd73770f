"""Launch a grid: skip the finished runs, print (`--dry-run`) or run the others as jobs, wait, and
return the failures for the protocols' gather step ({run folder: {"reason", "log", "diverged"}}).

    --launcher local            in-process, one run after another (no `--jobs`: today's path, untouched)
    --launcher local --jobs N   N processes on this machine
    --launcher submitit-local   submitit's LocalExecutor (the SLURM path without SLURM), `--jobs` at a time
    --launcher slurm            one SLURM job array through submitit (`slurm.*` settings)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from dra.errors import SettingsError
from dra.launch.units import is_done, protocol_units, unique

LAUNCHERS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class LaunchOptions:
    launcher: str | None = None
    jobs: int | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.launcher is not None and self.launcher not in LAUNCHERS:
            raise SettingsError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got {self.launcher!r}")
        if self.jobs is not None and self.jobs < 1:
            raise SettingsError(f"--jobs must be >= 1, got {self.jobs}")
        if self.jobs is not None and self.launcher == "slurm":
            raise SettingsError(
                "--jobs is for local launchers; on SLURM use slurm.array_parallelism (--array-parallelism)"
            )

    @property
    def in_process(self) -> bool:
        """Today's path: every run in this process, one after another."""
        return self.launcher in (None, "local") and self.jobs is None and not self.dry_run


def launch(units: list[dict], options: LaunchOptions, slurm: DictConfig, echo=print) -> dict | None:
    """Run what is missing of `units`; the failures by run folder, or None after a dry run."""
    from dra.launch.backends import run_processes, run_submitit, sbatch_text
    from dra.launch.progress import Board

    units = unique(units)
    todo = [u for u in units if not is_done(u)]
    launcher = options.launcher or "local"
    echo(f"{len(units)} runs: {len(units) - len(todo)} finished (reused), {len(todo)} to run ({launcher})")
    if not units:
        return {}
    folder = Path(units[0]["settings"]["output"]) / "jobs"
    if options.dry_run:
        for u in todo:
            echo(f"would run: {u['id']}  ({u['method']}, {u['dataset']}, seed {u['seed']})")
        if launcher == "slurm" and todo:
            echo(f"sbatch file submitit would write ({folder / 'submitit'}):")
            echo(sbatch_text(slurm, folder, len(todo)))
        return None
    if not todo:
        return {}
    from dra import command
    from dra.io import atomic_write_text
    from dra.launch.units import write_draws

    write_draws(todo, folder / "draws", echo)  # one few-shot draw per (dataset, shots, seed), shared by the jobs
    for u in todo:  # what each job runs, and the command that launched it (`dra report` reads it)
        u["command"] = command.text()
        atomic_write_text(folder / u["id"] / "unit.json", json.dumps(u, indent=1))
    board = Board([u["id"] for u in todo], echo)
    try:
        if launcher == "slurm":
            outcomes = run_submitit(todo, "slurm", folder, slurm, len(todo), board)
        elif launcher == "submitit-local":
            outcomes = run_submitit(todo, "local", folder, slurm, options.jobs or 1, board)
        else:
            outcomes = run_processes(todo, options.jobs or 1, folder, board)
    finally:
        board.close()
    failures = {u["run_dir"]: outcomes[u["id"]] for u in todo if outcomes[u["id"]]["status"] != "done"}
    for u in todo:
        o = outcomes[u["id"]]
        if o["status"] != "done":
            echo(f"failed: {u['id']}: {o['reason']} (log: {o['log']})")
    return failures


def launch_protocol(cfg: DictConfig, options: LaunchOptions, echo=print) -> dict | None:
    """base2new / cross-dataset / domain-gen of one method."""
    return launch(protocol_units(cfg), options, cfg.slurm, echo)


def launch_compare(methods: list[str], settings_for, options: LaunchOptions, echo=print) -> dict | None:
    """Every method's runs in one grid; a method whose settings fail is left to `compare.run`'s rows."""
    from dra.settings import method_names

    units, slurm = [], None
    for method in dict.fromkeys(methods):
        if method not in method_names():
            continue
        try:
            cfg = settings_for(method)
        except ValueError:
            continue  # compare.run reports it as a failed row
        slurm = slurm or cfg.slurm
        units += protocol_units(cfg)
    return launch(units, options, slurm, echo) if units else {}


def launch_ablate(cfg: DictConfig, suites: list[str], options: LaunchOptions, echo=print) -> dict | None:
    """Every setting of the suites (runs shared between suites once)."""
    from dra.backbones import load_backbone
    from dra.protocols.ablate import check_suites, suite_settings

    check_suites(cfg, suites)
    backbone = load_backbone(cfg.model, cfg.pretrained)
    blocks = min(len(backbone.image_blocks), len(backbone.text_blocks))
    units = [u for _, _, c in suite_settings(cfg, suites, blocks, echo=lambda *_: None) for u in protocol_units(c)]
    return launch(units, options, cfg.slurm, echo)


def launch_tune(plan: dict, options: LaunchOptions, echo=print) -> dict | None:
    """Every trial of every method of a `dra tune` plan (`dra.protocols.tune.plan`): the dev draws' runs."""
    cfgs = [cfg for m in plan["methods"].values() for _, cfg in m["trials"]]
    return launch([u for cfg in cfgs for u in protocol_units(cfg)], options, cfgs[0].slurm, echo)
