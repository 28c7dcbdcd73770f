"""The command line: every --help, one-line errors with nothing half-written, 1 vs 2 processes.

Training runs use the embedded `shapes` dataset (no --data-root), so they run in any clone; the
train/eval round trip is repeated on the real EuroSAT where ../shared/data is present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import SHARED_DATA, TINY, shared_eurosat
from dra.cli import app, expand_variadic

runner = CliRunner()
COMMANDS = [
    "info",
    "train",
    "eval",
    "base2new",
    "cross-dataset",
    "domain-gen",
    "demo",
    "efficiency",
    "visualize",
    "plot",
    "report",
    "compare",
    "import-checkpoint",
    "predict",
    "ablate",
    "tune",
    "pocket pretrain",
    "data",
    "data check",
    "data fewshot",
]


def invoke(*args):
    return runner.invoke(app, expand_variadic([str(a) for a in args]))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_variadic_options_take_several_values():
    assert expand_variadic(["base2new", "--seeds", "1", "2", "3", "--dataset", "eurosat", "dtd", "train.epochs=1"]) == [
        "base2new",
        "--seeds",
        "1",
        "--seeds",
        "2",
        "--seeds",
        "3",
        "--dataset",
        "eurosat",
        "--dataset",
        "dtd",
        "train.epochs=1",
    ]


def test_info_prints_the_paper_counts_as_json():
    result = invoke("info", "--model", "ViT-B-16", "--method", "dra")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert (counts["trainable"], counts["image"], counts["text"]) == (716800, 424960, 291840)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["base2new", "--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
        (["base2new", "--dataset", "eurosat", "--data-root", "/no/such/root"], "data root not found"),
        (["base2new", "--dataset", "eurosat"], "no data root given"),
        (["base2new", "--dataset", "eurosat", "dra.rnak=3"], "unknown dra setting"),
        (["base2new", "--dataset", "shapes", "--model", "ViT-Q-99"], "unknown model"),
        (["info", "--method", "coopp"], "unknown method 'coopp'"),
        (["eval", "--dataset", "eurosat"], "give --checkpoint"),
    ],
)
def test_bad_arguments_end_with_one_clear_line_and_write_nothing(tmp_path, args, needle):
    out = tmp_path / "out"
    result = invoke(*args, "--output", out) if args[0] != "info" else invoke(*args)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert not out.exists()


def data_args(dataset):
    """The shapes set needs no data root; EuroSAT reads the shared copy (and skips, naming it, without)."""
    if dataset == "shapes":
        return ["--dataset", "shapes"]
    shared_eurosat()
    return ["--dataset", dataset, "--data-root", SHARED_DATA]


def quick_train(out, *extra, dataset="shapes"):
    return [
        "train",
        *data_args(dataset),
        "--model",
        TINY,
        "--pretrained",
        "none",
        "--shots",
        "2",
        "--output",
        out,
        "train.epochs=2",
        "train.batch_size=4",
        "train.num_workers=0",
        *extra,
    ]


@pytest.mark.parametrize("dataset", ["shapes", pytest.param("eurosat", marks=pytest.mark.shared_data)])
def test_train_then_eval_and_a_checkpoint_of_another_config(tmp_path, dataset):
    result = invoke(*quick_train(tmp_path, dataset=dataset))
    assert result.exit_code == 0, result.output
    ck = json.loads(result.stdout)["checkpoint"]
    ok = invoke(
        "eval",
        *data_args(dataset),
        "--checkpoint",
        ck,
        "--subsample",
        "new",
        "test_per_class=3",
        "eval.num_workers=0",
        "--output",
        tmp_path,
    )
    assert ok.exit_code == 0, ok.output
    acc = json.loads(ok.stdout)
    assert acc["total"] == 15 and 0 <= acc["accuracy"] <= 100  # 5 new classes x 3 test images
    bad = invoke(
        "eval",
        *data_args(dataset),
        "--checkpoint",
        ck,
        "--model",
        TINY,
        "--pretrained",
        "none",
        "dra.rank=16",
        "--output",
        tmp_path,
    )
    assert bad.exit_code == 1
    assert "config.rank: checkpoint 32 vs model 16" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_two_processes_match_one_process(tmp_path):
    """torchrun + DDP (gloo) on the CPU: the global batch is split over 2 processes.

    With deterministic inputs (no augmentation) and no Gumbel noise the two runs see the same global
    batches; the only difference is the order of float additions in the gradient all-reduce, so the
    adapters agree to 1e-5 (absolute) after 2 epochs of 5 steps.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    same = ["train.augment=false", "dra.noise_temperature=0"]
    one = subprocess.run(
        [sys.executable, "-m", "dra", *map(str, quick_train(tmp_path / "one", *same))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "dra",
            *map(str, quick_train(tmp_path / "two", *same)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a = load_file(str(next((tmp_path / "one").rglob("adapters.safetensors"))))
    b = load_file(str(next((tmp_path / "two").rglob("adapters.safetensors"))))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5, msg=k)
    meta = json.loads(next((tmp_path / "two").rglob("adapters.json")).read_text())
    assert meta["epoch"] == 2


def test_settings_prints_the_merged_recipe():
    import yaml

    out = invoke("settings", "--method", "maple", "--protocol", "cross_dataset", "--dataset", "imagenet")
    assert out.exit_code == 0, out.output
    shown = yaml.safe_load(out.stdout)
    assert (shown["maple"]["depth"], shown["train"]["lr"], shown["train"]["epochs"]) == (3, 0.0026, 2)
    bad = invoke("settings", "--method", "nosuch")
    assert bad.exit_code != 0 and "method must be one of" in bad.output
