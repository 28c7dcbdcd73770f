"""What a runs folder holds, read as plain data for `dra report` (JSON, YAML text and CSV only).

    base2new/<method>-<hash>/<dataset>/seed<k>/result*.json    one base-to-new run (the table's numbers)
    (file names: `dra.run_files`)
    base2new/<method>-<hash>/settings.yaml                      its settings (first line: the command)
    jobs/<run id>/unit.json                                     a launched run: its settings and command
    **/metrics.csv                                              training curves of every run
    compare/, ablate/, <protocol>/<key>/ *.json                 the tables dra wrote (as written)
    **/efficiency_*.json                                        `dra efficiency --out`
    **/*_ranks_block*.png                                       `dra visualize`

A partial grid is read as it is: the expected runs of a method are its settings' datasets x seeds (or,
without settings, every dataset and seed seen in the folder); the ones without a result are listed as
missing, with whether their run folder exists (started: running, failed or killed) or not (not run).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dra.engine.outcome import loss_outcome
from dra.report.metrics import mean_std
from dra.report.paper_tables import display_name, method_base2new_table
from dra.report.stats import bootstrap_interval
from dra.report.tables import Table
from dra.run_files import METRICS_FILE, RESULT_GLOB, SETTINGS_FILE, eval_suffix, parse_result_name, result_name

JOBS = "jobs"
SEED = re.compile(r"^seed(\d+)$")


@dataclass
class Run:
    """One run folder of a method: its result (None: missing) and where it is."""

    dataset: str
    seed: int
    run_dir: Path
    result: dict | None
    status: str  # "done", "started (no result: running, failed or killed)", "not run"
    log: Path | None = None


@dataclass
class MethodRuns:
    """The runs of one `base2new/<method>-<hash>` folder."""

    label: str
    folder: Path
    settings: str | None  # the YAML text that produced the runs
    command: str | None
    runs: list[Run] = field(default_factory=list)

    @property
    def done(self) -> list[Run]:
        return [r for r in self.runs if r.result is not None]

    @property
    def missing(self) -> list[Run]:
        return [r for r in self.runs if r.result is None]


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _settings(folder: Path, runs_dir: Path) -> tuple[str | None, str | None, dict]:
    """(settings YAML text, command, settings mapping) of a method folder: its settings.yaml, else a
    launched job's unit.json."""
    path = folder / SETTINGS_FILE
    if path.is_file():
        text = path.read_text()
        first = text.splitlines()[0] if text else ""
        command = first[len("# command: ") :] if first.startswith("# command: ") else None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            data = {}
        return text, command, data if isinstance(data, dict) else {}
    rel = folder.relative_to(runs_dir)
    for unit_path in sorted((runs_dir / JOBS / rel).glob("*/seed*/unit.json")):
        unit = read_json(unit_path)
        if isinstance(unit, dict) and isinstance(unit.get("settings"), dict):
            return yaml.safe_dump(unit["settings"], sort_keys=False), unit.get("command"), unit["settings"]
    return None, None, {}


def _suffix(settings: dict, folder: Path) -> str:
    """The evaluation the table reads: the settings' test_per_class, else the most common result file;
    always a test-split one (a val result of `dra tune` is never shown as a test number)."""
    if settings:
        return eval_suffix(settings.get("test_per_class"))
    names: dict[str, int] = {}
    val = eval_suffix(None, "val")
    for p in folder.glob(f"*/seed*/{RESULT_GLOB}"):
        suffix = parse_result_name(p.name)[1]
        if suffix.startswith(val):
            continue
        names[suffix] = names.get(suffix, 0) + 1
    return max(sorted(names), key=lambda k: names[k]) if names else ""


def _job_log(runs_dir: Path, run_dir: Path) -> Path | None:
    jobdir = runs_dir / JOBS / run_dir.relative_to(runs_dir)
    log = jobdir / "job.log"
    return log if log.is_file() else None


def base2new_methods(runs_dir: Path) -> list[MethodRuns]:
    """Every `base2new/<method>-<hash>` folder with its runs, expected ones included."""
    out = []
    root = runs_dir / "base2new"
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    methods = [f.name.rsplit("-", 1)[0] for f in folders]
    for folder, method in zip(folders, methods):
        text, command, settings = _settings(folder, runs_dir)
        suffix = _suffix(settings, folder)
        seen = {
            (d.name, int(SEED.match(s.name).group(1)))
            for d in folder.iterdir()
            if d.is_dir()
            for s in d.iterdir()
            if s.is_dir() and SEED.match(s.name)
        }
        datasets = list(settings.get("datasets") or []) or sorted({d for d, _ in seen})
        seeds = [int(s) for s in settings.get("seeds") or []] or sorted({s for _, s in seen})
        expected = [(d, s) for d in datasets for s in seeds]
        expected += sorted(seen - set(expected))
        label = method if methods.count(method) == 1 else folder.name
        group = MethodRuns(label, folder, text, command)
        for dataset, seed in expected:
            run_dir = folder / dataset / f"seed{seed}"
            result = read_json(run_dir / result_name(suffix))
            if result is not None:
                status = "done"
            elif run_dir.is_dir():
                status = "started (no result: running, failed or killed)"
            else:
                status = "not run"
            group.runs.append(Run(dataset, seed, run_dir, result, status, _job_log(runs_dir, run_dir)))
        out.append(group)
    return out


def base2new_grid_table(groups: list[MethodRuns]) -> Table:
    """Paper Table 1 with a row per method folder, from the run folders' results (the same builder as
    `dra compare`: seed means, sample std, HM, Average, best marked, collapsed runs named); a folder without
    any result is a row "failed: no results"."""
    records = {
        g.label: [
            {
                "dataset": r.dataset,
                "seed": r.seed,
                "base": r.result["base"],
                "new": r.result["new"],
                "collapsed": r.result.get("collapsed", loss_outcome(r.result.get("history") or [])["collapsed"]),
            }
            for r in g.done
        ]
        for g in groups
    }
    failed = {g.label: "no results yet" for g in groups if not g.done}
    return method_base2new_table(
        {k: v for k, v in records.items() if v},
        failed,
        title="Base-to-new generalisation (from the run folders)",
        order=[g.label for g in groups],
    )


def cell_seeds(groups: list[MethodRuns]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method label, column) -> {"values": per-seed values, "expected": seeds expected, "interval": the 95%
    bootstrap interval of the mean (`dra.report.stats`, as in the tables)} for the per-dataset Base and New columns."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for g in groups:
        for dataset in dict.fromkeys(r.dataset for r in g.runs):
            mine = [r for r in g.runs if r.dataset == dataset]
            for key, name in (("base", "Base"), ("new", "New")):
                values = [float(r.result[key]) for r in mine if r.result is not None]
                column = f"{display_name(dataset)} {name}"
                out[(g.label, column)] = {
                    "values": values,
                    "expected": len(mine),
                    "interval": bootstrap_interval(values),
                    "std": mean_std(values)[1] if values else None,
                }
    return out


def written_tables(runs_dir: Path) -> list[tuple[str, dict]]:
    """The tables dra wrote (compare, ablate, each protocol's own), as (relative path, JSON), sorted."""
    out = []
    for path in sorted(runs_dir.rglob("*.json")):
        rel = path.relative_to(runs_dir)
        if rel.parts[0] == JOBS or SEED.match(path.parent.name):
            continue
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("columns"), list) and isinstance(data.get("rows"), list):
            out.append((str(rel), data))
    return out


def efficiency_records(runs_dir: Path) -> list[tuple[str, dict]]:
    """`dra efficiency --out` records under the folder."""
    out = []
    for path in sorted(runs_dir.rglob("efficiency_*.json")):
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            out.append((str(path.relative_to(runs_dir)), data))
    return out


def metrics_files(runs_dir: Path) -> list[Path]:
    """Every run's metrics.csv (training curves), in folder order."""
    return sorted(p for p in runs_dir.rglob(METRICS_FILE) if p.relative_to(runs_dir).parts[0] != JOBS)


def token_rank_maps(runs_dir: Path) -> list[Path]:
    """The PNGs of `dra visualize` (image and prompt-token rank maps)."""
    return sorted(runs_dir.rglob("*_ranks_block*.png"))
