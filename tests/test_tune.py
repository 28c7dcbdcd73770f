"""`dra tune` (issue #17, part 3): every method gets the same grid, each trial is a base-to-new run on a
pocket dataset's DEV draw scored on its VAL split, the chosen trial is the argmax of the mean HM, and
`tuned.yaml` loads back into the settings.

The runs use a tiny written copy of `pocket_dusk@dev` (2 images per class and split) and random pocket
towers (`pretrained: none`): accuracy does not matter here, which images are scored does.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from dra.errors import SettingsError
from dra.protocols import tune as T
from dra.settings import load_settings

DATASET = "pocket_dusk"
SMALL = {"train": 2, "val": 2, "test": 2}
FIVE = ["adapter", "dra", "coop", "kgcoop", "mma"]


def pocket_file() -> dict:
    from dra.settings import settings_path

    return yaml.safe_load(settings_path("pocket").read_text())


def pocket_settings(method: str, **values):
    return load_settings("pocket", {"method": method, **values})


# ---- the grid ------------------------------------------------------------------------------------


def test_every_method_gets_the_same_grid_around_its_current_lr():
    p = T.plan(FIVE, pocket_settings)
    assert p["datasets"] == [f"{d}@dev" for d in load_settings("pocket").datasets]
    n = len(T.GRID["lr_factors"]) * len(T.GRID["epoch_factors"])
    assert n == 10 and {m: len(v["trials"]) for m, v in p["methods"].items()} == dict.fromkeys(FIVE, n)
    for method, info in p["methods"].items():
        lr, epochs = info["current"]["lr"], info["current"]["epochs"]
        assert (lr, epochs) == (float(pocket_settings(method).train.lr), int(pocket_settings(method).train.epochs))
        grid = {(t.lr, t.epochs) for t, _ in info["trials"]}
        assert grid == {
            (lr * f, max(1, round(epochs * e))) for f in T.GRID["lr_factors"] for e in T.GRID["epoch_factors"]
        }
        for trial, cfg in info["trials"]:  # each trial: its own lr and epochs, the dev draws, scored on val
            assert (cfg.train.lr, cfg.train.epochs, cfg.eval_split) == (trial.lr, trial.epochs, "val")
            assert list(cfg.datasets) == p["datasets"] and cfg.method == method
    assert p["methods"]["coop"]["current"] == {"lr": 0.0125, "epochs": 20}  # configs/pocket.yaml's values
    assert p["methods"]["adapter"]["current"] == {"lr": 0.025, "epochs": 20}  # the plain adapter is swept too
    # --lr-factors / --epochs replace the grid for every method at once
    q = T.plan(["coop", "mma"], pocket_settings, [DATASET], lr_factors=[1, 3], epochs=[5])
    assert [(t.lr, t.epochs) for t, _ in q["methods"]["coop"]["trials"]] == [(0.0125, 5), (0.0375, 5)]
    assert [(t.lr, t.epochs) for t, _ in q["methods"]["mma"]["trials"]] == [(0.005, 5), (0.015, 5)]
    assert q["datasets"] == ["pocket_dusk@dev"]


def test_dev_draw_names():
    assert T.dev_dataset("pocket_dusk") == T.dev_dataset("pocket_dusk@dev") == "pocket_dusk@dev"
    assert T.dev_dataset("PocketShortcut") == "pocket_shortcut@dev"  # a CoOp-style name of the test draw


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"methods": ["nope"]}, "--methods: unknown method 'nope'"),
        ({"methods": ["zeroshot"]}, "--methods: zeroshot is not trained by SGD"),
        ({"methods": []}, "--methods: give at least one method"),
        ({"datasets": ["eurosat"]}, "--datasets: no dev draw for 'eurosat'"),
        ({"datasets": ["no_such_set"]}, "--datasets: unknown dataset 'no_such_set'"),
        ({"lr_factors": []}, "--lr-factors: the grid is empty"),
        ({"epochs": []}, "--epochs: the grid is empty"),
        ({"lr_factors": [0.0]}, "--lr-factors must be finite numbers > 0, got 0.0"),
        ({"lr_factors": [1, 1]}, "--lr-factors must be distinct"),
        ({"epochs": [0]}, "--epochs must be integers >= 1, got 0"),
        ({"epochs": [1]}, "coop trial 1 (lr 0.003125, 1 epochs): train.warmup_epochs must be in [0, train.epochs=1)"),
    ],
)
def test_bad_input_is_one_error_before_anything_runs(tmp_path, kwargs, message):
    args = {"methods": ["adapter", "coop"], "datasets": [DATASET], **kwargs}
    methods = args.pop("methods")
    with pytest.raises(SettingsError, match=None) as info:
        T.run(methods, lambda m: pocket_settings(m, output=str(tmp_path / "runs")), echo=lambda *_: None, **args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing was written


def test_the_cli_names_the_option(tmp_path):
    from typer.testing import CliRunner

    from dra.cli import app, expand_variadic

    argv = ["tune", "--methods", "adapter", "--datasets", "eurosat", "--output", str(tmp_path)]
    result = CliRunner().invoke(app, expand_variadic(argv))
    assert result.exit_code == 1 and "error: --datasets: no dev draw for 'eurosat'" in result.output
    assert expand_variadic(["tune", "--lr-factors", "0.5", "1", "--epochs", "5", "10"]) == [
        "tune", "--lr-factors", "0.5", "--lr-factors", "1", "--epochs", "5", "--epochs", "10",
    ]  # fmt: skip


def test_an_epoch_factor_that_repeats_a_count_is_refused():
    with pytest.raises(SettingsError, match="trains 1 epochs; the epoch factors .* give \\[1, 1\\]"):
        T.trials(0.1, 1, T.check_grid(), "dra")


# ---- selection (pure) ----------------------------------------------------------------------------


def row(lr, epochs, hm):
    return {"lr": lr, "epochs": epochs, "hm": hm}


def test_selection_is_the_argmax_of_the_mean_hm_ties_to_smaller_lr_then_fewer_epochs():
    assert T.select([row(0.1, 20, 60.0), row(0.2, 20, 70.0), row(0.4, 10, 65.0)]) == 1
    assert T.select([row(0.4, 20, 70.0), row(0.2, 20, 70.0), row(0.1, 20, 69.9)]) == 1  # tie: smaller lr
    assert T.select([row(0.2, 20, 70.0), row(0.2, 10, 70.0), row(0.4, 10, 70.0)]) == 1  # then fewer epochs
    assert T.select([row(0.1, 20, None), row(0.2, 20, 10.0)]) == 1  # a diverged trial is never chosen
    assert T.select([row(0.1, 20, None)]) is None
    # the score is the mean over runs of each run's HM, not the HM of the mean base and new
    runs_a = [{"base": 100.0, "new": 0.0, "hm": 0.0}, {"base": 0.0, "new": 100.0, "hm": 0.0}]  # HM of means: 50
    runs_b = [{"base": 40.0, "new": 40.0, "hm": 40.0}, {"base": 40.0, "new": 40.0, "hm": 40.0}]
    a, b = T.summarize(runs_a), T.summarize(runs_b)
    assert (a["base"], a["new"], a["hm"], b["hm"]) == (50.0, 50.0, 0.0, 40.0)
    assert T.select([{**row(0.1, 20, 0), **a}, {**row(0.2, 20, 0), **b}]) == 1
    assert T.summarize([{"dataset": "x", "seed": 1, "diverged": True}])["hm"] is None


def test_tuned_yaml_loads_back_into_the_settings(tmp_path):
    blocks = pocket_file()["method_overrides"]
    chosen = {"coop": T.Trial(3, 0.05, 10), "dra": T.Trial(7, 0.4, 20), "mma": T.Trial(1, 0.005, 10)}
    text = T.tuned_yaml(chosen, blocks, "dra tune --config pocket --methods coop dra mma")
    assert text.startswith("# dra tune --config pocket --methods coop dra mma\n")
    assert "  coop: {train: {lr: 0.05, batch_size: 16, epochs: 10}}\n" in text  # pocket.yaml's shape, other keys kept
    tuned = yaml.safe_load(text)
    config = pocket_file()
    config["method_overrides"].update(tuned["method_overrides"])
    path = tmp_path / "pocket-tuned.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for method, trial in chosen.items():
        cfg = load_settings(str(path), {"method": method})
        assert (cfg.train.lr, cfg.train.epochs) == (trial.lr, trial.epochs), method
    assert load_settings(str(path), {"method": "coop"}).train.batch_size == 16
    assert load_settings(str(path), {"method": "mma"}).mma.start_layer == 2


# ---- tiny real trials ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Two methods x two trials on a tiny dev draw, with every evaluated image list recorded."""
    import torch

    import dra.protocols.experiment as E
    from dra.data.generated.pocket import make_pocket_dataset

    root = tmp_path_factory.mktemp("tune")
    make_pocket_dataset(DATASET, root / "data", draw="dev", per_class=SMALL)
    scored: list[list] = []
    evaluate = E.evaluate

    def recording(model, items, *args, **kwargs):
        scored.append(list(items))
        return evaluate(model, items, *args, **kwargs)

    def settings_for(method):
        cfg = pocket_settings(
            method, output=str(root / "runs"), data_root=str(root / "data"), seeds=[1], shots=2, datasets=[DATASET]
        )
        cfg.pretrained = None  # random pocket towers: --pretrained none
        return cfg

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    E.evaluate = recording
    try:
        lines: list[str] = []
        result = T.run(["adapter", "coop"], settings_for, lr_factors=[1, 2], epochs=[2], echo=lines.append)
        first_scored = len(scored)
        again = T.run(["adapter", "coop"], settings_for, lr_factors=[1, 2], epochs=[2], echo=lambda *_: None)
    finally:
        E.evaluate = evaluate
        torch.set_num_threads(threads)
    yield {"root": root, "result": result, "again": again, "scored": scored[:first_scored], "rescored": scored[first_scored:],
           "lines": lines, "settings_for": settings_for}  # fmt: skip


def test_equal_trials_per_method_and_the_files(tuned):
    res, out = tuned["result"], tuned["result"]["output"]
    assert {m: len(info["rows"]) for m, info in res["methods"].items()} == {"adapter": 2, "coop": 2}
    assert {m: (t.lr, t.epochs) for m, t in res["chosen"].items()} == {
        "adapter": (0.025, 2),
        "coop": (0.0125, 2),
    }  # ties
    assert all((out / f).is_file() for f in ("tune.md", "tune.csv", "tune.json", "tuned.yaml"))
    summary = json.loads((out / "tune.json").read_text())
    assert summary["eval_split"] == "val" and summary["datasets"] == ["pocket_dusk@dev"]
    assert summary["trials_per_method"] == 2 and summary["methods"]["coop"]["chosen"] == 1
    assert "<- chosen" in (out / "tune.md").read_text()
    assert any(line.startswith("coop: 2 trials around lr 0.0125, 20 epochs") for line in tuned["lines"])
    # the written tuned.yaml loads back: the chosen lr and epochs
    config = pocket_file()
    config["method_overrides"].update(yaml.safe_load((out / "tuned.yaml").read_text())["method_overrides"])
    path = tuned["root"] / "pocket-tuned.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for method, trial in res["chosen"].items():
        cfg = load_settings(str(path), {"method": method})
        assert (cfg.train.lr, cfg.train.epochs) == (trial.lr, trial.epochs)


def test_the_val_split_of_the_dev_draw_is_scored_never_a_test_image(tuned):
    from dra.data import build_dataset

    dev = build_dataset(f"{DATASET}@dev", tuned["root"] / "data")
    val, test = {d.impath for d in dev.val}, {d.impath for d in dev.test}
    assert val and test and not val & test
    scored = [d.impath for items in tuned["scored"] for d in items]
    assert len(tuned["scored"]) == 2 * 2 * 2  # 2 methods x 2 trials x (base, new)
    assert scored and set(scored) <= val and not set(scored) & test
    assert all("@dev" in p for p in scored)
    assert tuned["rescored"] == []  # a rerun reuses every finished trial: nothing trained or scored again
    assert tuned["again"]["chosen"] == tuned["result"]["chosen"]
    results = list((tuned["root"] / "runs" / "base2new").glob("*/pocket_dusk@dev/seed1/result*.json"))
    assert len(results) == 4 and {p.name for p in results} == {"result-val.json"}
    assert all(json.loads(p.read_text())["eval_split"] == "val" for p in results)


def test_a_val_result_is_never_read_as_a_test_result(tuned):
    from dra.engine.trainer import RunMismatchError
    from dra.protocols.base2new import run_one, run_paths
    from dra.protocols.experiment import Experiment

    cfg = tuned["settings_for"]("adapter")
    cfg.train.epochs = 2
    cfg.datasets = [f"{DATASET}@dev"]
    exp = Experiment(cfg)
    run_dir, test_path = run_paths(exp, cfg, f"{DATASET}@dev", 1)
    val_path = run_dir / "result-val.json"
    assert val_path.is_file() and test_path.name == "result.json" and not test_path.exists()
    shutil.copy(val_path, test_path)  # a val result where a test result belongs
    try:
        with pytest.raises(RunMismatchError):
            run_one(exp, cfg, f"{DATASET}@dev", 1)
    finally:
        test_path.unlink()


def test_eval_split_setting():
    from dra.run_files import eval_suffix, result_name

    assert load_settings("pocket").eval_split == "test"
    assert result_name(eval_suffix(None, "val")) == "result-val.json"
    assert eval_suffix(8, "val") == "-val-test_per_class8" and eval_suffix(8) == "-test_per_class8"
    with pytest.raises(SettingsError, match=r"eval_split must be one of \('test', 'val'\), got 'dev'"):
        load_settings("pocket", None, ["eval_split=dev"])
    with pytest.raises(SettingsError, match="eval_split must be 'test' under protocol cross_dataset"):
        load_settings("cross_dataset", None, ["eval_split=val"])


def test_tune_runs_its_trials_as_jobs_and_then_reuses_them(tuned, tmp_path):
    """`dra tune --jobs N` / `--launcher slurm`: the plan's runs go to the launcher; `--dry-run` lists exactly the
    run folders the in-process tune writes, so the tables afterwards reuse what the jobs wrote (the launcher's
    job processes themselves are tested in test_launch.py)."""
    from omegaconf import OmegaConf

    from dra.launch.grid import LaunchOptions, launch_tune

    root = tuned["root"] / "runs"
    written = sorted(str(p.parent.relative_to(root)) for p in root.rglob("result-val.json"))
    assert len(written) == 4  # 2 methods x 2 trials x 1 dev dataset x 1 seed

    def settings_for(method, output=tmp_path / "runs"):
        return OmegaConf.merge(tuned["settings_for"](method), {"output": str(output)})

    lines: list[str] = []
    plan = T.plan(["adapter", "coop"], settings_for, lr_factors=[1, 2], epochs=[2])
    assert launch_tune(plan, LaunchOptions(dry_run=True), echo=lines.append) is None
    assert lines[0] == "4 runs: 0 finished (reused), 4 to run (local)"
    assert sorted(line.split()[2] for line in lines[1:]) == written
    same = T.plan(["adapter", "coop"], lambda m: settings_for(m, root), lr_factors=[1, 2], epochs=[2])
    assert launch_tune(same, LaunchOptions(dry_run=True), echo=lines.append) is None
    assert lines[-1] == "4 runs: 4 finished (reused), 0 to run (local)"
