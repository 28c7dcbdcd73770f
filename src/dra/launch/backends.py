"""Where the jobs of a grid run. No scheduler of dra's own: local processes are driven by
`concurrent.futures` (a pool of N threads, each waiting on one `python -m dra.launch.job` process at
a time), cluster jobs by submitit (`SlurmExecutor`: one job array; `LocalExecutor`: the same path
without SLURM, for tests and a laptop).

Each job gets its own folder under `<output>/jobs/` (its unit, log, outcome and TMPDIR for local
processes; submitit's `%j` folders), so no two jobs write the same file outside their run folders.
Threads: `max(1, cores // N)` per local job; a SLURM job uses its `cpus_per_task`. With GPUs each local
job sees one (`CUDA_VISIBLE_DEVICES`, round robin over the visible ones).

Through submitit, what is pickled is `dra.launch.job.run_unit_safely` (by reference), its unit and its
result: plain dicts of settings, paths and strings (submitit's own pickles, in its job folders).
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from dra.errors import one_line
from dra.launch.job import THREADS_ENV, run_unit_safely
from dra.launch.progress import Board

POLL_S = 1.0


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out: CUDA_VISIBLE_DEVICES when set, else every CUDA device."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(k) for k in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _failed(reason: str, log: str) -> dict:
    return {"status": "failed", "reason": reason, "diverged": False, "log": log}


def run_processes(units: list[dict], jobs: int, folder: Path, board: Board) -> dict[str, dict]:
    """Every unit as its own process, `jobs` at a time; {unit id: outcome}."""
    gpus = visible_gpus()
    threads = max(1, cores() // jobs)
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for k in range(jobs):
        slots.put(k)

    def one(unit: dict) -> dict:
        jobdir = folder / unit["id"]
        (jobdir / "tmp").mkdir(parents=True, exist_ok=True)
        (jobdir / "outcome.json").unlink(missing_ok=True)
        (jobdir / "unit.json").write_text(json.dumps({**unit, "threads": threads}, indent=1))
        log = jobdir / "job.log"
        slot = slots.get()
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            THREADS_ENV: str(threads),
            "TMPDIR": str(jobdir / "tmp"),
        }
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        board.set(unit["id"], "running")
        try:
            with open(log, "w") as f:
                command = [sys.executable, "-m", "dra.launch.job", str(jobdir / "unit.json")]
                code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
        finally:
            slots.put(slot)
        try:
            outcome = json.loads((jobdir / "outcome.json").read_text())
            outcome["log"] = str(log)
        except (OSError, ValueError):
            outcome = _failed(f"the job process ended with code {code} before reporting (killed?)", str(log))
        board.set(unit["id"], outcome["status"])
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {u["id"]: pool.submit(one, u) for u in units}
        while wait(list(futures.values()), timeout=POLL_S).not_done:
            board.show()
    return {k: f.result() for k, f in futures.items()}


def slurm_parameters(slurm) -> dict:
    """SlurmExecutor's parameters (sbatch options) from the `slurm` settings section."""
    params = {
        "job_name": "dra",
        "time": int(slurm.time_min),
        "gpus_per_node": int(slurm.gpus_per_node),
        "cpus_per_task": int(slurm.cpus_per_task),
        "mem": f"{int(slurm.mem_gb)}GB",
        "array_parallelism": int(slurm.array_parallelism),
    }
    if slurm.partition:
        params["partition"] = str(slurm.partition)
    if slurm.sbatch:
        params["additional_parameters"] = {str(k): v for k, v in dict(slurm.sbatch).items()}
    return params


def submitit_folder(folder: Path) -> Path:
    return folder / "submitit" / "%j"


def sbatch_text(slurm, folder: Path, n_jobs: int) -> str:
    """The sbatch file submitit writes for an array of `n_jobs` jobs with these settings."""
    from submitit.slurm.slurm import _make_sbatch_string

    where = submitit_folder(folder)
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(where))])
    return _make_sbatch_string(
        command=command, folder=where, map_count=n_jobs if n_jobs > 1 else None, **slurm_parameters(slurm)
    )


def run_submitit(units: list[dict], cluster: str, folder: Path, slurm, window: int, board: Board) -> dict[str, dict]:
    """Every unit as a submitit job: one SLURM job array (`cluster="slurm"`), or local processes of
    submitit's LocalExecutor, `window` at a time (`cluster="local"`); {unit id: outcome}."""
    import submitit

    if cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=submitit_folder(folder))
        executor.update_parameters(**slurm_parameters(slurm))
        threads = int(slurm.cpus_per_task)
    else:
        executor = submitit.LocalExecutor(folder=submitit_folder(folder))
        executor.update_parameters(timeout_min=int(slurm.time_min), gpus_per_node=min(1, len(visible_gpus())))
        threads = max(1, cores() // window)
    todo = [{**u, "threads": threads} for u in units]
    jobs: dict[str, object] = {}
    outcomes: dict[str, dict] = {}
    if cluster == "slurm":
        with executor.batch():
            for u in todo:
                jobs[u["id"]] = executor.submit(run_unit_safely, u)
        todo = []
    while todo or len(outcomes) < len(jobs):
        running = len(jobs) - len(outcomes)
        while todo and running < window:
            u = todo.pop(0)
            jobs[u["id"]] = executor.submit(run_unit_safely, u)
            running += 1
        for job_id, job in jobs.items():
            if job_id in outcomes:
                continue
            if job.done():
                log = str(job.paths.stderr)
                try:
                    outcomes[job_id] = {**job.result(), "log": log}
                except Exception as e:  # noqa: BLE001 - a killed / timed-out job is a failed row
                    outcomes[job_id] = _failed(one_line(e), log)
                board.set(job_id, outcomes[job_id]["status"])
            else:
                board.set(job_id, "running" if job.state.upper() in ("RUNNING", "COMPLETING") else "pending")
        board.show()
        if todo or len(outcomes) < len(jobs):
            time.sleep(POLL_S)
    return outcomes
