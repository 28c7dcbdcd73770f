"""One typed schema for every setting: unknown keys (with the nearest valid key), types, ranges,
choices, `shots: all`, distinct seeds; bad YAML files; each a one-line error with nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import TINY
from dra.settings import SettingsError, load_settings, method_names, shots
from safety_helpers import files_under, invoke, one_error_line


@pytest.mark.parametrize(
    "override, message",
    [
        ("tset_per_class=3", "unknown setting 'tset_per_class'; did you mean 'test_per_class'?"),
        ("skip_bad=true", "unknown setting 'skip_bad'; did you mean 'train.skip_bad_images'?"),
        ("dra.rnak=3", "unknown dra setting 'dra.rnak'; did you mean 'dra.rank'?"),
        ("train.epoch=3", "unknown train setting 'train.epoch'; did you mean 'train.epochs'?"),
        ("eval.batchsize=3", "unknown eval setting 'eval.batchsize'; did you mean 'eval.batch_size'?"),
        (
            "dataset_overrides.imagenet.train.lrr=1",
            "unknown train setting 'dataset_overrides.imagenet.train.lrr'; "
            "did you mean 'dataset_overrides.imagenet.train.lr'?",
        ),
        ("train.epochs=0", "train.epochs must be >= 1, got 0"),
        ("train.epochs=abc", "bad value for train.epochs: Value 'abc' of type 'str' could not be converted to Integer"),
        ("train.lr=fast", "bad value for train.lr: Value 'fast' of type 'str' could not be converted to Float"),
        ("train.lr=-1", "train.lr must be a finite number > 0, got -1.0"),
        ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
        ("train.precision=fp8", "train.precision must be one of ('auto', 'fp32', 'bf16', 'fp16'), got 'fp8'"),
        ("dra.rank=abc", "bad value for dra.rank: Value 'abc' of type 'str' could not be converted to Integer"),
        ("dra.branches=all", "dra settings: branches must be one of ('image', 'text', 'both'), got 'all'"),
        ("method=coopp", f"method must be one of {method_names()}, got 'coopp'"),
        ("shots=0", "shots must be an integer >= 1 or 'all' (every training image), got 0"),
        ("shots=-1", "shots must be an integer >= 1 or 'all' (every training image), got -1"),
        ("shots=many", "shots must be an integer >= 1 or 'all' (every training image), got 'many'"),
        ("seeds=[1,1]", "seeds must be distinct (repeated: [1]), got [1, 1]"),
        ("test_per_class=0", "test_per_class must be >= 1 or null, got 0"),
    ],
)
def test_every_setting_is_checked(override, message):
    with pytest.raises(SettingsError) as e:
        load_settings("base2new", None, [override])
    assert str(e.value) == message


def test_shots_all_is_explicit_and_zero_is_not_all():
    assert shots(load_settings("base2new", {"shots": "all"})) is None
    assert shots(load_settings("base2new", None, ["shots=all"])) is None
    assert shots(load_settings("base2new", {"shots": "8"})) == 8  # --shots arrives as text


def test_the_paper_sgd_values_are_written_once_in_src():
    src = Path(__file__).resolve().parents[1] / "src"

    def values(p: Path) -> str:  # a YAML's comments cite the published recipes; its values must not repeat them
        text = p.read_text()
        return "\n".join(line.split("#")[0] for line in text.splitlines()) if p.suffix == ".yaml" else text

    text = "\n".join(values(p) for p in src.rglob("*") if p.suffix in (".py", ".yaml"))
    assert len(re.findall(r"\b0\.0015\b", text)) == 1
    assert len(re.findall(r"\b5e-4\b|\b0\.0005\b", text)) == 1


def test_protocol_files_hold_only_what_differs():
    b2n, xd, dg = (load_settings(n) for n in ("base2new", "cross_dataset", "domain_gen"))
    assert (b2n.train.lr, b2n.train.momentum, b2n.train.weight_decay) == (0.0015, 0.9, 5e-4)
    assert (xd.dra.start_layer, xd.train.epochs, xd.train.batch_size) == (7, 1, 128)
    assert (dg.dra.start_layer, dg.train.epochs, dg.train.batch_size) == (7, 1, 128)
    assert b2n.dataset_overrides.imagenet.train.batch_size == 128


def test_settings_layer_does_not_import_the_engine():
    import subprocess
    import sys

    code = "import sys, dra.settings; print(any(m.startswith('dra.engine') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: {epochs: 1\n", "is not valid YAML at line 2, column 1"),
        ("train:\n  epochs: [1\n", "is not valid YAML"),
        ("- a\n- b\n", "must be a mapping of settings (key: value), got a list"),
        ("foo_bar: 3\n", "unknown setting 'foo_bar'; valid keys here:"),
        ("train:\n  skip_bad: true\n", "unknown train setting 'train.skip_bad'; did you mean 'train.skip_bad_images'?"),
        ("dra: 3\n", "dra must be a mapping of settings (dra: {key: value}), got 3"),
    ],
)
def test_bad_yaml_files_are_one_line_and_write_nothing(tmp_path, text, message):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    line = one_error_line(invoke("base2new", "--config", cfg, "--dataset", "shapes", "--output", out))
    assert message in line, line
    assert not out.exists()


def test_a_yaml_without_a_dra_section_takes_the_defaults(tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("train:\n  epochs: 2\n")
    s = load_settings(str(cfg))
    assert s.dra.rank == 32 and s.train.epochs == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["train.epochs=0"], "error: train.epochs must be >= 1, got 0"),
        (["train.epochs=abc"], "error: bad value for train.epochs"),
        (["--shots", "0"], "error: shots must be an integer >= 1 or 'all'"),
        (["--shots", "-1"], "error: shots must be an integer >= 1 or 'all'"),
        (["--seeds", "1", "1"], "error: seeds must be distinct (repeated: [1])"),
        (["skip_bad=true"], "error: unknown setting 'skip_bad'; did you mean 'train.skip_bad_images'?"),
    ],
)
def test_cli_settings_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = invoke("base2new", "--dataset", "shapes", "--model", TINY, "--pretrained", "none", "--output", out, *args)
    assert one_error_line(result).startswith(message)
    assert files_under(out) == []


def test_too_many_shots_warns(tmp_path, caplog):
    from dra.protocols.experiment import Experiment

    cfg = load_settings("demo", {"model": TINY, "output": str(tmp_path / "o"), "shots": 100000})
    with caplog.at_level("WARNING", logger="dra"):
        Experiment(cfg).draw(cfg, "shapes", 1)
    assert any(
        "shots=100000 but 10 of 10 shapes classes have fewer training images" in r.getMessage() for r in caplog.records
    )


def test_an_experiment_reads_a_dataset_once_for_its_seeds(tmp_path, monkeypatch):
    """The seeds of a dataset share one read of its split file; each seed's draw is Dassl's draw of it."""
    from dra.data import build_dataset, fewshot
    from dra.protocols import experiment

    reads = []

    def counted(*a, **kw):
        reads.append(a[0])
        return build_dataset(*a, **kw)

    monkeypatch.setattr(experiment, "build_dataset", counted)
    cfg = load_settings("demo", {"model": TINY, "output": str(tmp_path / "o")})
    exp = experiment.Experiment(cfg)
    draws = [exp.draw(cfg, "shapes", seed) for seed in (1, 2, 3)]
    assert reads == ["shapes"]
    assert [d.train for d in draws] == [fewshot(build_dataset("shapes"), cfg.shots, s).train for s in (1, 2, 3)]
    assert draws[0].train != draws[1].train
    exp.draw(load_settings("demo", {"model": TINY, "output": str(tmp_path / "o"), "test_per_class": 2}), "shapes", 1)
    assert reads == ["shapes", "shapes"]  # another reading of it: read again


# -- per-method settings (configs/methods/<method>.yaml) ------------------------------------------------


def test_method_files_merge_between_the_protocol_file_and_the_command_line():
    lora = load_settings("base2new", {"method": "clip_lora"})
    assert (lora.train.optimizer, lora.train.lr, lora.train.weight_decay, lora.train.batch_size) == (
        "adamw",
        2e-4,
        1e-2,
        32,
    )
    assert (lora.lora.rank, lora.lora.alpha, lora.lora.dropout) == (2, 1.0, 0.25)
    cli = load_settings("base2new", {"method": "clip_lora"}, ["train.lr=0.01", "lora.rank=4"])
    assert (cli.train.lr, cli.lora.rank) == (0.01, 4)  # the command line wins over the method file
    by_override = load_settings("base2new", None, ["method=clip_adapter"])  # the method may come from an override
    assert (by_override.train.epochs, by_override.train.warmup_epochs) == (200, 1)
    assert by_override.dataset_overrides.dtd.template == "{} texture."
    tip = load_settings("base2new", {"method": "tip_adapter_f"})
    assert tip.dataset_overrides.eurosat.train.epochs == 100 and tip.train.adam_eps == 1e-4
    dra = load_settings("base2new", {"method": "dra"})
    assert dra.train == load_settings("base2new").train  # dra.yaml is empty: the schema's defaults


@pytest.mark.parametrize(
    "override, message",
    [
        ("lora.rnak=3", "unknown lora setting 'lora.rnak'; did you mean 'lora.rank'?"),
        ("mma.scale=0", "mma settings: scale must be > 0, got 0.0"),
        ("lora.branches=all", "lora settings: branches must be one of ('image', 'text', 'both'), got 'all'"),
        ("train.optimizer=lion", "train.optimizer must be one of ('sgd', 'adam', 'adamw'), got 'lion'"),
        ("train.adam_eps=0", "train.adam_eps must be a finite number > 0, got 0.0"),
    ],
)
def test_method_sections_are_checked(override, message):
    with pytest.raises(SettingsError) as e:
        load_settings("base2new", None, [override])
    assert str(e.value) == message


def test_a_method_file_is_checked(tmp_path, monkeypatch):
    import dra.settings as S

    (tmp_path / "coop.yaml").write_text("all:\n  train: {lr: 0.1}\nbase2nwe:\n  train: {epochs: 2}\n")
    monkeypatch.setattr(S, "_methods_dir", lambda: tmp_path)  # a registered method's file, edited
    with pytest.raises(SettingsError, match="unknown setting 'base2nwe'; did you mean 'base2new'"):
        load_settings("base2new", {"method": "coop"})


def test_a_settings_files_method_overrides_win_over_the_method_file_and_lose_to_the_command_line():
    coop = load_settings("pocket", {"method": "coop"})  # configs/pocket.yaml: coop's pocket learning rate
    assert (coop.train.lr, coop.train.batch_size, coop.train.epochs, coop.coop.ctx_init) == (
        0.0125,
        16,
        20,
        "a photo of a",
    )
    assert load_settings("pocket", {"method": "coop"}, ["train.lr=0.3"]).train.lr == 0.3
    assert load_settings("pocket", {"method": "maple"}).maple.depth == 4
    assert load_settings("base2new", {"method": "coop"}).train.lr == 0.002  # the published value elsewhere
    assert "method_overrides" not in load_settings("pocket", {"method": "coop"})


@pytest.mark.parametrize(
    "block, message",
    [
        ("coop: {train: {lr: 0.2}}\n  cop: {train: {lr: 0.1}}", "method_overrides.cop: method must be one of"),
        ("coop: {trian: {lr: 0.2}}", "'method_overrides.coop.trian'; did you mean 'method_overrides.coop.train'?"),
        ("coop: {method: dra}", "method_overrides.coop must be a mapping of settings (not method/protocol)"),
    ],
)
def test_method_overrides_are_checked(tmp_path, block, message):
    path = tmp_path / "mine.yaml"
    path.write_text(f"protocol: base2new\nmethod_overrides:\n  {block}\n")
    with pytest.raises(SettingsError) as e:
        load_settings(str(path), {"method": "coop"})
    assert message in str(e.value) and str(path) in str(e.value)
