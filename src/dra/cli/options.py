"""The options the commands share, defined once: `RunOptions` (one dataclass: the settings options and the
launcher options) and `with_options`, which gives a command the Typer options it names and hands them
to it as one `RunOptions`.

    @app.command()
    @with_options(*SETTINGS, "datasets", *LAUNCH)
    def base2new(opts: RunOptions) -> None:
        cfg = opts.settings("base2new")

Options that take several values accept both `--seeds 1 2 3` and `--seeds 1 --seeds 2 --seeds 3`
(`expand_variadic`). Trailing `key=value` arguments override any setting of the YAML
(e.g. `train.epochs=1 dra.rank=16`).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, List, Optional

import typer

from dra.errors import SettingsError
from dra.methods.registry import method_names

VARIADIC = (
    "--seeds",
    "--datasets",
    "--dataset",
    "--methods",
    "--targets",
    "--suites",
    "--suite",
    "--lr-factors",
    "--epochs",
)


def _option(*names: str, **kwargs) -> Any:
    return typer.Option(None, *names, **kwargs)


# name: (type, Typer parameter); a command may replace a definition (`with_options(datasets=...)`).
DEFINITIONS: dict[str, tuple[Any, Any]] = {
    "overrides": (
        Optional[List[str]],
        typer.Argument(None, help="Setting overrides as key=value, e.g. train.epochs=1 dra.rank=16."),
    ),
    "method": (
        Optional[str],
        _option(
            help=f"{', '.join(method_names())} (default: the settings file's); picks configs/methods/<method>.yaml."
        ),
    ),
    "model": (Optional[str], _option(help="open_clip model name, e.g. ViT-B-16.")),
    "pretrained": (
        Optional[str],
        _option(help="'openai' (or another open_clip tag), a checkpoint file, or 'none'."),
    ),
    "data_root": (Optional[str], _option("--data-root", help="Folder holding the datasets in CoOp's layout.")),
    "datasets": (Optional[List[str]], _option("--datasets", "--dataset", help="Datasets (default: all 11).")),
    "targets": (Optional[List[str]], _option("--targets", help="Target datasets (default: the paper's).")),
    "seeds": (Optional[List[int]], _option("--seeds", "--seed", help="Seeds (default: the settings file's).")),
    "shots": (
        Optional[str],
        _option(help="Images per class in the few-shot training set (an integer >= 1), or 'all'."),
    ),
    "output": (Optional[str], _option(help="Output folder (default: runs).")),
    "device": (Optional[str], _option(help="cpu, cuda, cuda:1 ... (default: cuda when available).")),
    "config": (
        Optional[Path],
        _option("--config", help="A settings YAML to start from instead of the packaged one."),
    ),
    "split": (
        Optional[str],
        _option("--split", help="CoOp split file (JSON) for a folder dataset (default: a seeded 50/20/30 split)."),
    ),
    "launcher": (
        Optional[str],
        _option(
            "--launcher",
            help="local (default: in this process, one run after another; with --jobs N: N processes), slurm (one "
            "job array through submitit), submitit-local (submitit's local executor: the SLURM path without SLURM).",
        ),
    ),
    "jobs": (Optional[int], _option("--jobs", help="Runs at once as separate processes (local launchers).")),
    "dry_run": (
        bool,
        typer.Option(
            False, "--dry-run", help="Print the runs that would be launched (and the sbatch file); run nothing."
        ),
    ),
    "partition": (Optional[str], _option("--partition", help="SLURM partition (slurm.partition).")),
    "time": (Optional[int], _option("--time", help="SLURM time limit of one run, minutes (slurm.time_min).")),
    "gpus": (Optional[int], _option("--gpus", help="GPUs per SLURM job (slurm.gpus_per_node).")),
    "cpus": (
        Optional[int],
        _option("--cpus", help="CPUs per SLURM job, also its torch threads (slurm.cpus_per_task)."),
    ),
    "mem": (Optional[int], _option("--mem", help="Memory per SLURM job, GB (slurm.mem_gb).")),
    "array_parallelism": (
        Optional[int],
        _option("--array-parallelism", help="SLURM jobs of the array running at once (slurm.array_parallelism)."),
    ),
    "sbatch": (
        Optional[List[str]],
        _option(
            "--sbatch",
            help="Extra sbatch option KEY=VALUE (repeat the flag), e.g. --sbatch account=lab --sbatch qos=high.",
        ),
    ),
}
SETTINGS = ("overrides", "method", "model", "pretrained", "data_root", "seeds", "shots", "output", "device", "config")
"""The options of every command that runs a protocol (each adds its datasets / targets / split)."""
LAUNCH = ("launcher", "jobs", "dry_run", "partition", "time", "gpus", "cpus", "mem", "array_parallelism", "sbatch")
"""The launcher options (`dra.launch`): in this process, as local jobs, or as a SLURM array."""
SETTING_KEYS = ("method", "model", "data_root", "datasets", "targets", "seeds", "shots", "output", "device", "split")
"""The options that are settings of the same name (`--pretrained` and the SLURM options are read apart)."""


def pretrained_value(value: str | None) -> str | None:
    """The raw --pretrained value with 'none' / 'random' as "" (random weights); None: not given."""
    return "" if value is not None and value.lower() in ("none", "random", "") else value


@dataclass
class RunOptions:
    """The shared options of one command invocation (None: not given, the settings file's value holds)."""

    overrides: Optional[List[str]] = None
    method: Optional[str] = None
    model: Optional[str] = None
    pretrained: Optional[str] = None
    data_root: Optional[str] = None
    datasets: Optional[List[str]] = None
    targets: Optional[List[str]] = None
    seeds: Optional[List[int]] = None
    shots: Optional[str] = None
    output: Optional[str] = None
    device: Optional[str] = None
    config: Optional[Path] = None
    split: Optional[str] = None
    launcher: Optional[str] = None
    jobs: Optional[int] = None
    dry_run: bool = False
    partition: Optional[str] = None
    time: Optional[int] = None
    gpus: Optional[int] = None
    cpus: Optional[int] = None
    mem: Optional[int] = None
    array_parallelism: Optional[int] = None
    sbatch: Optional[List[str]] = None

    def slurm(self) -> dict | None:
        """The `slurm` settings given on the command line (None: the settings file's)."""
        given = {
            "partition": self.partition,
            "time_min": self.time,
            "gpus_per_node": self.gpus,
            "cpus_per_task": self.cpus,
            "mem_gb": self.mem,
            "array_parallelism": self.array_parallelism,
        }
        out: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        for item in self.sbatch or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SettingsError(f"--sbatch takes KEY=VALUE (e.g. --sbatch account=lab), got {item!r}")
            out.setdefault("sbatch", {})[key.strip()] = value.strip()
        return out or None

    def launch_options(self):
        """The launcher (`dra.launch.grid.LaunchOptions`); checks --launcher and --jobs."""
        from dra.launch.grid import LaunchOptions

        return LaunchOptions(self.launcher, self.jobs, self.dry_run)

    def settings(self, name: str, **values):
        """The settings of a command: the packaged file `name` (or --config), the options given, `values`
        (which replace the options of the same name), the `key=value` overrides; --pretrained 'none' is
        random weights."""
        from dra.settings import load_settings

        given = {k: getattr(self, k) or None for k in SETTING_KEYS}  # an empty list: not given
        given["slurm"] = self.slurm()
        cfg = load_settings(str(self.config) if self.config else name, {**given, **values}, self.overrides)
        pretrained = pretrained_value(self.pretrained)
        if pretrained is not None:
            cfg.pretrained = pretrained or None  # "" (--pretrained none) = random weights
        return cfg


_FIELDS = {f.name for f in dataclasses.fields(RunOptions)}


def with_options(*names: str, **replaced: Any):
    """Give the command the shared options `names` (`DEFINITIONS`; `replaced` swaps a definition's Typer
    parameter, e.g. another help text) and call it with them as `opts: RunOptions`. The command's own
    parameters come after `overrides` and before the shared options, as in its help."""
    unknown = sorted((set(names) | set(replaced)) - _FIELDS)
    if unknown:
        raise TypeError(f"no shared option {unknown[0]!r}")

    def decorate(fn):
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "opts"]
        shared = [
            inspect.Parameter(
                n,
                inspect.Parameter.KEYWORD_ONLY,
                default=replaced.get(n, DEFINITIONS[n][1]),
                annotation=DEFINITIONS[n][0],
            )
            for n in names
        ]
        head = [p for p in shared if p.name == "overrides"]
        params = head + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        params += [p for p in shared if p.name != "overrides"]

        @wraps(fn)
        def command(**kwargs):
            opts = RunOptions(**{n: kwargs.pop(n) for n in names})
            return fn(opts, **kwargs)

        del command.__wrapped__  # Typer reads the signature below, not fn's
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def expand_variadic(argv: list[str]) -> list[str]:
    """`--seeds 1 2 3` -> `--seeds 1 --seeds 2 --seeds 3` (click options take one value each)."""
    out: list[str] = []
    current = None
    for token in argv:
        if token.startswith("-"):
            current = token if token in VARIADIC else None
            out.append(token)
        elif current and "=" not in token and out and out[-1] != current:
            out += [current, token]
        else:
            out.append(token)
    return out


def launched(options, run_in_process, launch, gather) -> None:
    """Today's in-process path, or: launch the grid (dra.launch), then build the tables from the run folders.
    `options`: `RunOptions.launch_options()`, made before the settings so that a bad --launcher is named first."""
    if options.in_process:
        run_in_process()
        return
    failures = launch()
    if failures is not None:  # None: a dry run
        gather(failures)
