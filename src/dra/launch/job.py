"""One job: run one unit (one run folder) in this process, and say how it went as plain data.

Through submitit the function `run_unit_safely` is what is pickled (by reference) with its unit (a
plain dict); its result is a plain dict too. Local processes run `python -m dra.launch.job UNIT.json`,
which writes the same dict to `outcome.json` beside the unit file (JSON both ways, nothing unpickled).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from dra.errors import SettingsError

THREADS_ENV = "DRA_JOB_THREADS"


def run_unit(unit: dict) -> dict:
    """Train (or resume, or reuse) the unit's run and write its results into its run folder."""
    import torch

    from dra import settings as S
    from dra.protocols import base2new, transfer
    from dra.protocols.experiment import Experiment

    threads = int(unit.get("threads") or os.environ.get(THREADS_ENV) or 0)
    if threads:
        torch.set_num_threads(threads)
    cfg = S.from_container(unit["settings"])
    exp = Experiment(cfg)
    exp.draw_files = dict(unit.get("draws") or {})  # the grid's shared few-shot draws
    if unit["kind"] == "base2new":
        run_dir, _ = base2new.run_paths(exp, S.for_dataset(cfg, unit["dataset"]), unit["dataset"], unit["seed"])
    else:
        run_dir, _ = transfer.seed_paths(exp, cfg, unit["seed"])
    if str(run_dir) != unit["run_dir"]:  # the settings must name the same run folder as at launch
        raise SettingsError(f"job {unit['id']} resolves to {run_dir}, not {unit['run_dir']}: launch the grid again")
    if unit["kind"] == "base2new":
        base2new.run_one(exp, cfg, unit["dataset"], unit["seed"])
    else:
        transfer.run_seed(exp, cfg, unit["seed"])
    return {"id": unit["id"], "status": "done"}


def run_unit_safely(unit: dict) -> dict:
    """`run_unit`, with a failure as data: {"status": "failed", "reason": one line, "diverged": bool}.
    The traceback goes to the job's log (stderr)."""
    from dra.engine.trainer import TrainingDivergedError
    from dra.protocols.compare import failure_reason

    try:
        return run_unit(unit)
    except Exception as e:  # noqa: BLE001 - a job reports its failure; the grid goes on
        traceback.print_exc()
        print(f"error: {failure_reason(e)}", file=sys.stderr, flush=True)
        return {
            "id": unit["id"],
            "status": "failed",
            "reason": failure_reason(e),
            "diverged": isinstance(e, TrainingDivergedError),
        }


def main(argv: list[str] | None = None) -> int:
    """`python -m dra.launch.job UNIT.json`: run it, write `outcome.json` beside it; exit 1 on failure."""
    path = Path((sys.argv[1:] if argv is None else argv)[0])
    outcome = run_unit_safely(json.loads(path.read_text()))
    from dra.io import atomic_write_text

    atomic_write_text(path.parent / "outcome.json", json.dumps(outcome))
    return 0 if outcome["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
