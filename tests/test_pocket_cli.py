"""The pocket world's commands (a simulation): `dra pocket pretrain`, `dra ablate`, `dra demo --json`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dra.cli import app, expand_variadic

runner = CliRunner()


@pytest.mark.parametrize("command", ["pocket pretrain", "pocket probe", "ablate", "demo"])
def test_help(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_ablate_rejects_an_unknown_suite_in_one_line(tmp_path):
    args = expand_variadic(
        ["ablate", "--config", "pocket", "--suites", "table9", "--seeds", "1", "--output", str(tmp_path)]
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "unknown ablation suite" in result.output


def test_pretrained_pocket_needs_the_pocket_model():
    from dra.backbones import BackboneError, load_backbone

    with pytest.raises(BackboneError, match="ViT-Pocket"):
        load_backbone("ViT-Tiny-16-test", "pocket")


def test_demo_summary_json_shape():
    from dra.protocols.demo import summarise

    rec = [{"dataset": "pocket_dusk", "base": 80.0, "new": 60.0, "base_classes": 4, "new_classes": 4}]
    out = summarise({"zeroshot": rec, "dra": rec}, "ViT-Pocket", simulation=True)
    assert out["simulation"] is True and out["chance_base"] == 25.0 and out["chance_new"] == 25.0
    assert out["rows"][1] == {"method": "dra", "base": 80.0, "new": 60.0, "hm": 68.57}


def test_a_diverged_seed_is_reported_and_left_out_of_the_mean(tmp_path):
    import math

    from dra.protocols.ablate import settings_table
    from dra.report.plots import plot_ablation

    records = [
        {"setting": "ok", "seed": 1, "base": 80.0, "new": 70.0},
        {"setting": "ok", "seed": 2, "base": 76.0, "new": 60.0},
        {"setting": "half", "seed": 1, "base": 50.0, "new": 40.0},
        {"setting": "half", "seed": 2, "diverged": True},
        {"setting": "gone", "seed": 1, "diverged": True},
        {"setting": "gone", "seed": 2, "diverged": True},
    ]
    table = settings_table(records, "base2new", "t")
    assert table.column("Base")[:2] == [78.0, 50.0] and table.n_seeds == [2, 1, 0]
    assert all(math.isnan(v) for v in table.rows[2][1:])
    assert [n for n in table.notes if "diverged" in n] == [
        "half: training diverged (non-finite loss) in seed(s) [2], left out.",
        "gone: training diverged (non-finite loss) in seed(s) [1, 2], left out.",
    ]
    assert plot_ablation(table, "setting", tmp_path / "t.png").stat().st_size > 0
