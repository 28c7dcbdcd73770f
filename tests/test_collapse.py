"""A run whose training loss ends above where it began is reported as collapsed, not as a plain result (#17)."""

from __future__ import annotations

import json
import math

from dra.engine.outcome import loss_outcome
from dra.protocols import base2new, experiment
from dra.report import ablation_table, base2new_table, method_base2new_table
from test_protocols import settings

RISING = [{"epoch": 1, "loss": 2.2}, {"epoch": 2, "loss": 1.9}, {"epoch": 3, "loss": 5.6}]
FALLING = [{"epoch": 1, "loss": 2.2}, {"epoch": 2, "loss": 5.6}, {"epoch": 3, "loss": 1.4}]


def test_loss_outcome_compares_the_last_epoch_with_the_first():
    assert loss_outcome(RISING) == {"first_loss": 2.2, "last_loss": 5.6, "collapsed": True}
    assert loss_outcome(FALLING) == {"first_loss": 2.2, "last_loss": 1.4, "collapsed": False}  # a spike it left
    assert loss_outcome([{"loss": 2.0}]) == {"first_loss": 2.0, "last_loss": 2.0, "collapsed": False}
    assert loss_outcome([{"loss": 2.0}, {"loss": math.nan}])["collapsed"] is True
    assert loss_outcome([]) == {"first_loss": None, "last_loss": None, "collapsed": False}


def test_a_run_whose_loss_rises_is_flagged_and_named_in_the_table(tmp_path, monkeypatch):
    """Seed 2's (fake) training ends above its first epoch's loss: its result says so, the terminal line says
    COLLAPSED, and the table keeps it in the means but counts and names it; seed 1 is a normal run."""
    monkeypatch.setattr(experiment, "fit", lambda model, items, tf, s, *a, **k: RISING if s.seed == 2 else FALLING)
    lines = []
    out = base2new.run(settings(tmp_path, seeds=[1, 2]), echo=lines.append)
    one, two = out["records"]
    assert (one["collapsed"], one["first_loss"], one["last_loss"]) == (False, 2.2, 1.4)
    assert (two["collapsed"], two["first_loss"], two["last_loss"]) == (True, 2.2, 5.6)
    assert "COLLAPSED (loss 2.200 -> 5.600)" in lines[1] and "COLLAPSED" not in lines[0]
    saved = json.loads(next((tmp_path / "base2new").rglob("seed2/result*.json")).read_text())
    assert saved["collapsed"] is True and saved["last_loss"] == 5.6
    rows = json.loads((out["output"] / "base2new.json").read_text())["rows"]
    assert [row["Collapsed"] for row in rows] == [1, 1]  # Shapes, Average
    assert rows[0]["Base"] == (one["base"] + two["base"]) / 2  # kept in the mean, not dropped silently
    md = (out["output"] / "base2new.md").read_text()
    assert "Collapsed runs, kept in the means" in md and "Shapes: seed 2." in md


def test_tables_without_collapsed_runs_are_unchanged():
    records = [{"dataset": "shapes", "seed": s, "base": 80.0, "new": 60.0} for s in (1, 2)]
    table = base2new_table(records)
    assert table.columns == ["Dataset", "Base", "New", "HM"] and not any("Collapsed" in n for n in table.notes)
    table = base2new_table([{**r, "collapsed": False} for r in records])
    assert table.columns == ["Dataset", "Base", "New", "HM"]


def test_method_and_ablation_tables_name_the_collapsed_seeds():
    records = [{"dataset": "shapes", "seed": s, "base": 80.0, "new": 60.0, "collapsed": s == 3} for s in (1, 2, 3)]
    table = method_base2new_table({"dra": records, "adapter": [{**r, "collapsed": False} for r in records]})
    assert table.notes[-1].endswith("dra: Shapes seed 3.") and "adapter" not in table.notes[-1]
    assert [row[-1] for row in table.rows] == ["ok", "ok"]  # dra compare reads the Status column
    sweep = [{"setting": "a", "seed": s, "base": 50.0 + s, "new": 40.0, "collapsed": s == 1} for s in (1, 2)]
    sweep += [{"setting": "b", "seed": 1, "diverged": True}, {"setting": "b", "seed": 2, "base": 1.0, "new": 2.0}]
    table = ablation_table(sweep, "setting")
    assert table.columns[-1] == "Collapsed" and [row[-1] for row in table.rows] == [1, 0]
    assert table.rows[0][1] == 51.5  # in the mean
    assert table.notes[-1].endswith("a: seed 1.") and "b: training diverged" in table.notes[0]


def test_a_real_short_run_records_its_losses_and_is_not_collapsed(tmp_path):
    (record,) = base2new.run(settings(tmp_path), echo=lambda *_: None)["records"]
    losses = [epoch["loss"] for epoch in record["history"]]
    assert len(losses) == 1 and math.isfinite(losses[0]) and losses[0] > 0
    assert (record["first_loss"], record["last_loss"], record["collapsed"]) == (losses[0], losses[0], False)


def test_the_demo_names_a_collapsed_method_and_the_ablation_plot_takes_the_table(tmp_path):
    from dra.protocols.demo import summarise, table_of
    from dra.report.plots import plot_ablation

    ok = {"dataset": "pocket_dusk", "base": 80.0, "new": 60.0, "base_classes": 4, "new_classes": 4}
    summary = summarise({"adapter": [ok], "dra": [{**ok, "collapsed": True}]}, "ViT-Pocket", simulation=True)
    assert summary["collapsed"] == {"dra": ["pocket_dusk"]}
    assert any(n.startswith("dra: collapsed on pocket_dusk") for n in table_of(summary).notes)
    assert summarise({"adapter": [ok]}, "ViT-Pocket", simulation=True)["collapsed"] == {}
    sweep = [{"setting": "a", "seed": s, "base": 50.0, "new": 40.0, "collapsed": s == 1} for s in (1, 2)]
    table = ablation_table(sweep, "setting")
    assert table.columns[-1] == "Collapsed" and plot_ablation(table, "setting", tmp_path / "a.png").stat().st_size
