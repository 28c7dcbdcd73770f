"""Launching a grid (dra.launch): N local processes and submitit's local executor give the in-process
table; a failed job is a row with its reason and log; a re-launch runs only what is missing; the sbatch
file of `--launcher slurm`; the settings checks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from filelock import FileLock

from conftest import TINY
from safety_helpers import invoke, one_error_line

QUICK = [
    "train.epochs=1",
    "train.warmup_epochs=0",
    "train.batch_size=4",
    "train.num_workers=0",
    "eval.num_workers=0",
    "eval.batch_size=50",
    "test_per_class=2",
]


def compare(out: Path, *extra):
    """`dra compare` of zeroshot and the plain adapter on shapes, 1 seed, tiny model (2 runs)."""
    return invoke(
        "compare",
        "--methods",
        "zeroshot",
        "adapter",
        "--datasets",
        "shapes",
        "--seeds",
        "1",
        "--model",
        TINY,
        "--pretrained",
        "none",
        "--shots",
        "2",
        "--output",
        out,
        *extra,
        *QUICK,
    )


def rows(out: Path) -> dict:
    data = json.loads((out / "compare" / "base2new" / "compare.json").read_text())
    return {r["Method"]: r for r in data["rows"]}


def test_local_processes_give_the_in_process_table(tmp_path):
    ref = compare(tmp_path / "inproc")
    assert ref.exit_code == 0, ref.output
    assert "jobs:" not in ref.output  # no --launcher / --jobs: today's in-process path
    out = compare(tmp_path / "jobs", "--launcher", "local", "--jobs", "2")
    assert out.exit_code == 0, out.output
    assert "2 runs: 0 finished (reused), 2 to run (local)" in out.output
    assert "jobs: 0 pending, 0 running, 2 done, 0 failed" in out.output
    assert rows(tmp_path / "jobs") == rows(tmp_path / "inproc")
    assert rows(tmp_path / "jobs")["adapter"]["Status"] == "ok"
    # each job: its own folder (unit, log, outcome, TMPDIR) and cores // 2 torch threads
    units = sorted((tmp_path / "jobs" / "jobs").rglob("unit.json"))
    assert len(units) == 2
    for path in units:
        unit = json.loads(path.read_text())
        assert unit["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
        assert (path.parent / "job.log").is_file() and (path.parent / "tmp").is_dir()
        assert json.loads((path.parent / "outcome.json").read_text())["status"] == "done"
        assert (Path(unit["run_dir"]) / "result-test_per_class2.json").is_file()
    # one few-shot draw of (shapes, 2 shots, seed 1), shared by both jobs
    [draw] = (tmp_path / "jobs" / "jobs" / "draws").glob("*.json")
    assert all(list(json.loads(p.read_text())["draws"].values()) == [str(draw)] for p in units)
    again = compare(tmp_path / "jobs", "--jobs", "2")  # --jobs alone: the local launcher; all reused
    assert again.exit_code == 0 and "2 runs: 2 finished (reused), 0 to run" in again.output


def test_a_draw_file_reads_back_the_same_splits(tmp_path):
    from dra.data import build_dataset, fewshot
    from dra.data.draw_files import read_draw, write_draw

    splits = fewshot(build_dataset("shapes"), 2, 3)
    assert read_draw(write_draw(tmp_path / "d.json", splits)) == splits


def test_submitit_failed_job_is_a_row_and_a_relaunch_runs_only_the_missing(tmp_path):
    out_dir = tmp_path / "grid"
    dry = compare(out_dir, "--launcher", "submitit-local", "--dry-run")
    assert dry.exit_code == 0, dry.output
    planned = re.findall(r"would run: (\S+)", dry.output)
    assert len(planned) == 2 and not (out_dir / "compare").exists()  # a dry run runs and writes nothing
    adapter_run = out_dir / next(p for p in planned if p.startswith("base2new/adapter-"))
    adapter_run.mkdir(parents=True)
    with FileLock(str(adapter_run / ".lock")):  # another process trains there: this job fails
        first = compare(out_dir, "--launcher", "submitit-local", "--jobs", "2")
    assert first.exit_code == 0, first.output
    got = rows(out_dir)
    assert got["zeroshot"]["Status"] == "ok"
    status = got["adapter"]["Status"]
    assert status.startswith("failed: ") and "in use" in status and got["adapter"]["Shapes Base"] is None
    log = Path(re.search(r"\(log: (\S+)\)", status).group(1))
    assert log.is_file() and "RunBusyError" in log.read_text()
    dry = compare(out_dir, "--launcher", "submitit-local", "--dry-run")
    assert re.findall(r"would run: (\S+)", dry.output) == [str(adapter_run.relative_to(out_dir))]
    second = compare(out_dir, "--launcher", "submitit-local")
    assert second.exit_code == 0, second.output
    assert "2 runs: 1 finished (reused), 1 to run (submitit-local)" in second.output
    assert rows(out_dir)["adapter"]["Status"] == "ok"
    ref = compare(tmp_path / "inproc")
    assert ref.exit_code == 0 and rows(out_dir) == rows(tmp_path / "inproc")


def test_the_sbatch_file_of_the_slurm_launcher(tmp_path):
    out = compare(
        tmp_path,
        "--launcher",
        "slurm",
        "--dry-run",
        "--partition",
        "gpu",
        "--time",
        "30",
        "--gpus",
        "1",
        "--cpus",
        "4",
        "--mem",
        "16",
        "--array-parallelism",
        "1",
        "--sbatch",
        "account=lab",
        "--sbatch",
        "qos=high",
    )
    assert out.exit_code == 0, out.output
    text = out.output
    for line in (
        "#!/bin/bash",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=16GB",
        "#SBATCH --array=0-1%1",  # 2 runs, one at a time
        "#SBATCH --account=lab",
        "#SBATCH --qos=high",
        "#SBATCH --job-name=dra",
    ):
        assert line in text.splitlines(), (line, text)
    assert f"#SBATCH --output={tmp_path}/jobs/submitit/%A_%a/%A_%a_0_log.out" in text
    assert re.search(r"srun .* -u -m submitit.core._submit \S*/jobs/submitit/%j", text)
    assert not (tmp_path / "jobs").exists() and not (tmp_path / "compare").exists()
    # the same from the settings (a --config file or key=value): slurm.*
    again = compare(tmp_path, "--launcher", "slurm", "--dry-run", "slurm.partition=big", "slurm.sbatch={qos: low}")
    assert "#SBATCH --partition=big" in again.output and "#SBATCH --qos=low" in again.output
    assert "#SBATCH --time=120" in again.output  # the schema's default


def test_launcher_options_are_checked(tmp_path):
    assert "--launcher must be one of" in one_error_line(compare(tmp_path, "--launcher", "pbs"))
    assert "--jobs must be >= 1" in one_error_line(compare(tmp_path, "--jobs", "0"))
    assert "--sbatch takes KEY=VALUE" in one_error_line(compare(tmp_path, "--launcher", "slurm", "--sbatch", "x"))
    bad_time = invoke("base2new", "--dataset", "shapes", "--output", tmp_path, "--launcher", "slurm", "--time", "0")
    assert "slurm.time_min must be >= 1" in one_error_line(bad_time)
    assert "array_parallelism" in one_error_line(compare(tmp_path, "--launcher", "slurm", "--jobs", "2"))
    assert not (tmp_path / "compare").exists()


def test_every_grid_command_takes_a_launcher(tmp_path):
    """base2new, cross-dataset, ablate: --dry-run lists the runs of the grid (a run folder each)."""
    tiny = ["--model", TINY, "--pretrained", "none", "--shots", "2", "--output", tmp_path, *QUICK]
    b2n = invoke("base2new", "--dataset", "shapes", "--seeds", "1", "2", "--jobs", "2", "--dry-run", *tiny)
    assert b2n.exit_code == 0, b2n.output
    assert sorted(re.findall(r"would run: (\S+)", b2n.output)) == [
        f"base2new/{m}/shapes/seed{s}"
        for m in re.findall(r"would run: base2new/(dra-\w+)/shapes/seed1", b2n.output)
        for s in (1, 2)
    ]
    xd = invoke(
        "cross-dataset", "--seeds", "1", "--launcher", "slurm", "--dry-run", "source=shapes", "targets=[]", *tiny
    )
    assert xd.exit_code == 0, xd.output
    assert re.findall(r"would run: (\S+)", xd.output) == [
        re.search(r"would run: (transfer/dra-\w+/shapes/seed1)", xd.output).group(1)
    ]
    assert "#SBATCH --array" not in xd.output and "#SBATCH --time=120" in xd.output  # one run: no array
    ab = invoke("ablate", "--suites", "table4", "--datasets", "shapes", "--seeds", "1", "--dry-run", *tiny)
    assert ab.exit_code == 0, ab.output
    runs = re.findall(r"would run: (\S+)", ab.output)
    assert len(runs) == 7 and len(set(runs)) == 7  # the 7 settings of Table 4: 7 run folders
    assert sum(r.startswith("base2new/adapter-") for r in runs) == 1
    assert not any((tmp_path / p).exists() for p in ("base2new", "transfer", "ablate", "jobs"))
