"""The options the commands share (`dra.cli.options`): defined once, given to each command as one object."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dra.cli import app
from dra.cli.options import DEFINITIONS, LAUNCH, SETTINGS, RunOptions
from dra.methods import METHODS

runner = CliRunner()


def _help(command: str) -> str:
    result = runner.invoke(app, [*command.split(), "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_method_help_lists_the_registry():
    assert DEFINITIONS["method"][1].help.startswith(", ".join(sorted(METHODS)) + " (default")
    text = _help("train")
    assert all(f" {m}," in text or f" {m} " in text for m in ("lfa", "proda", "metaprompt", "zeroshot"))


@pytest.mark.parametrize("command", ["base2new", "cross-dataset", "domain-gen", "compare", "ablate"])
def test_launcher_options_on_every_grid_command(command):
    text = _help(command)
    for name in LAUNCH:
        assert f"--{name.replace('_', '-')}" in text


def test_slurm_settings_from_the_options():
    opts = RunOptions(partition="gpu", time=30, sbatch=["account=lab", "qos = high"])
    assert opts.slurm() == {"partition": "gpu", "time_min": 30, "sbatch": {"account": "lab", "qos": "high"}}
    assert RunOptions().slurm() is None
    with pytest.raises(ValueError, match="--sbatch takes KEY=VALUE"):
        RunOptions(sbatch=["account"]).slurm()


def test_settings_take_the_given_options_only():
    cfg = RunOptions(method="adapter", seeds=[4, 5], datasets=[], pretrained="none").settings("base2new")
    assert cfg.method == "adapter" and list(cfg.seeds) == [4, 5] and cfg.pretrained is None
    assert len(cfg.datasets) == 11  # an empty list is not given: the settings file's datasets
    cfg = RunOptions(overrides=["train.epochs=2"], shots="4").settings("base2new", method="coop")
    assert cfg.method == "coop" and cfg.train.epochs == 2 and cfg.shots == 4
    assert "overrides" in SETTINGS and "split" not in SETTINGS
