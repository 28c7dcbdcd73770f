"""Hostile and careless inputs, each planted as a user (or an attacker) would: nothing runs code, nothing
answers from stale results, bad values are one `error:` line (exit 1) before anything is written.

The data-layer cases (symlink loops, giant labels, high-bit-depth images, odd file names, degenerate
folders) are in test_hostile_data.py; the readers' property-based fuzzing is in test_fuzz_readers.py.
"""

from __future__ import annotations

import json
import shutil
import warnings
from typing import Tuple

import pytest
import torch

from conftest import TINY
from dra.backbones import BackboneError, load_backbone
from dra.backbones.torchscript import TorchScriptError, read_torchscript_tensors
from dra.checkpoints import load_model, save_adapters
from dra.data import build_dataset, fewshot, subsample_classes
from dra.methods import build_method
from safety_helpers import QUICK, files_under, invoke, one_error_line


# -- 1. TorchScript archives: tensors read, code never run ---------------------------------------------
class MarkerModule(torch.nn.Module):
    """Scripted, its `__setstate__` writes a file (TorchScript's aten::save) when torch.jit.load opens it."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.marker = marker

    def forward(self, x):
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.weight, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.marker = state[1]
        self.training = state[2]
        torch.save(state[0], state[1])


def _script(module, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script / save are deprecated; OpenAI's files are such archives
        torch.jit.script(module).save(str(path))
    return path


@pytest.fixture
def evil_archive(tmp_path):
    marker = tmp_path / "marker"
    path = _script(MarkerModule(str(marker)), tmp_path / "evil.pt")
    assert not marker.exists()
    return path, marker


def test_the_marker_archive_does_run_code_under_torch_jit_load(evil_archive):
    """The payload is real: torch.jit.load writes the marker (so the tests below can fail)."""
    path, marker = evil_archive
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(str(path))
    assert marker.exists()


@pytest.mark.parametrize("name", ["evil.pt", "evil.bin"])
def test_a_torchscript_payload_as_pretrained_runs_nothing(evil_archive, name):
    path, marker = evil_archive
    path = path.rename(path.with_name(name)) if name != path.name else path
    with pytest.raises(BackboneError, match=r"TorchScript archive whose tensors cannot be read without running"):
        load_backbone(TINY, pretrained=str(path))
    assert not marker.exists()


def test_a_torchscript_payload_on_every_command_runs_nothing(evil_archive, tmp_path):
    path, marker = evil_archive
    shapes = subsample_classes(fewshot(build_dataset("shapes"), 2, seed=1), "base")
    torch.manual_seed(0)
    ckpt = save_adapters(build_method("dra", load_backbone(TINY), shapes.classnames), tmp_path / "ck" / "tiny")
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    meta["pretrained"] = str(path)  # a checkpoint JSON that names the payload
    ckpt.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(BackboneError):
        load_model(ckpt)
    official = tmp_path / "coop.pth.tar-1"  # a CoOp checkpoint of the official code: its context alone
    torch.save({"state_dict": {"ctx": torch.zeros(4, 64)}, "epoch": 1}, official)
    commands = [
        (
            "train",
            "--dataset",
            "shapes",
            "--model",
            TINY,
            "--pretrained",
            path,
            "--shots",
            "1",
            "--output",
            tmp_path / "t",
        ),
        ("eval", "--dataset", "shapes", "--checkpoint", ckpt, "--output", tmp_path / "e"),
        ("predict", str(tmp_path), "--checkpoint", ckpt),
        ("predict", str(tmp_path), "--checkpoint", ckpt, "--pretrained", path),
        (
            "import-checkpoint",
            official,
            "--method",
            "coop",
            "--model",
            TINY,
            "--pretrained",
            path,
            "--output",
            tmp_path / "i",
        ),
    ]
    for args in commands:
        line = one_error_line(invoke(*args, *QUICK[:3]) if args[0] == "train" else invoke(*args))
        assert "TorchScript archive" in line and str(path) in line, (args[0], line)
        assert not marker.exists(), args[0]
    assert not (tmp_path / "t").exists() and not (tmp_path / "i.safetensors").exists()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_an_openai_style_archive_loads_the_same_tensors_as_torch_jit_load(tmp_path, dtype):
    torch.manual_seed(3)
    source = load_backbone(TINY, quick_gelu=True)  # OpenAI trained with QuickGELU and ships fp16 archives
    path = _script(source.clip.to(dtype), tmp_path / "tiny-openai.pt")
    ours = read_torchscript_tensors(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.jit.load(str(path), map_location="cpu").state_dict()
    assert sorted(ours) == sorted(theirs) and len(ours) > 100
    for k, v in theirs.items():
        assert ours[k].dtype == v.dtype == (dtype if v.is_floating_point() else v.dtype), k
        assert torch.equal(ours[k], v), k
    loaded = load_backbone(TINY, pretrained=str(path))
    assert loaded.info["quick_gelu"] is True
    for k, v in loaded.clip.state_dict().items():
        assert torch.equal(v, source.clip.state_dict()[k].to(v.dtype)), k


def test_archives_that_are_not_modules_of_tensors_are_refused(tmp_path):
    import zipfile

    good = _script(torch.nn.Linear(3, 2), tmp_path / "lin.pt")
    assert sorted(read_torchscript_tensors(good)) == ["bias", "weight"]
    with zipfile.ZipFile(good) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    prefix = next(n for n in entries if n.endswith("/data.pkl"))[: -len("data.pkl")]

    def variant(name, **replace):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            for n, data in {**entries, **{prefix + k: v for k, v in replace.items()}}.items():
                if data is not None:
                    zf.writestr(n, data)
        return path

    import pickle

    os_system = pickle.dumps(("x",)).replace(b"\x80\x04", b"\x80\x02")[:2] + b"cos\nsystem\n(S'true'\ntR."
    cases = {
        "global.pt": dict(**{"data.pkl": os_system}),
        "garbage.pt": dict(**{"data.pkl": b"\x80\x02not a pickle"}),
        "nostorage.pt": dict(**{"data/0": None, "data/1": None}),
        "nodecl.pt": {n[len(prefix) :]: None for n in entries if "/code/" in n and n.endswith(".py")},
    }
    for name, replace in cases.items():
        with pytest.raises(TorchScriptError):
            read_torchscript_tensors(variant(name, **replace))
    with pytest.raises(BackboneError, match=r"global\.pt is a TorchScript archive .* names os\.system"):
        load_backbone(TINY, pretrained=str(variant("global.pt", **cases["global.pt"])))


# -- 2. results answer only for their inputs -----------------------------------------------------------
def _copy_folder_dataset(src, dst):
    shutil.copytree(src, dst)
    return dst


def _folder_dataset(root, seed):
    """A 4-class folder dataset of small generated images (10 per class), different for each seed."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    for c in "abcd":
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            pixels = (torch.rand(16, 16, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def _b2n(dataset, out, *extra):
    return invoke(
        "base2new",
        "--dataset",
        dataset,
        "--model",
        TINY,
        "--pretrained",
        *(extra or ("none",)),
        "--shots",
        "2",
        "--seeds",
        "1",
        "--output",
        out,
        *QUICK,
    )


def _scores(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if " seed 1: base " in line]


def test_a_result_is_not_reused_for_other_images(tmp_path):
    data = _folder_dataset(tmp_path / "ds", seed=1)
    first = _b2n(str(data), tmp_path / "out")
    assert first.exit_code == 0, first.output
    again = _b2n(str(data), tmp_path / "out")  # same inputs: reused
    assert again.exit_code == 0 and _scores(again) == _scores(first) and "epoch 1/1" not in again.output
    _folder_dataset(data, seed=2)  # the same files, other pixels
    line = one_error_line(_b2n(str(data), tmp_path / "out"))
    assert "holds results computed from other images" in line and "delete that folder" in line


def test_a_pretrained_file_is_keyed_by_its_content(tmp_path):
    weights = tmp_path / "w.pt"
    torch.save(load_backbone(TINY).clip.state_dict(), weights)
    first = _b2n("shapes", tmp_path / "out", str(weights))
    assert first.exit_code == 0, first.output
    before = set(files_under(tmp_path / "out"))
    torch.manual_seed(7)
    other = load_backbone(TINY).clip.state_dict()
    other = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in other.items()}
    torch.save(other, weights)  # overwritten in place: a new run, not the old result
    second = _b2n("shapes", tmp_path / "out", str(weights))
    assert second.exit_code == 0, second.output
    new_runs = sorted({p.split("/")[1] for p in set(files_under(tmp_path / "out")) - before if p.count("/") > 1})
    assert len(new_runs) == 1 and new_runs[0].startswith("dra-")
    moved = tmp_path / "moved.pt"
    weights.rename(moved)  # the same bytes elsewhere: the same run
    third = _b2n("shapes", tmp_path / "out", str(moved))
    assert third.exit_code == 0 and _scores(third) == _scores(second) and "epoch 1/1" not in third.output


def test_training_is_the_same_with_any_number_of_workers(tmp_path):
    from dra.engine.trainer import TrainSettings, fit

    shapes = subsample_classes(fewshot(build_dataset("shapes"), 2, seed=1), "base")
    tf = load_backbone(TINY).preprocess
    from dra.data import clip_transforms

    weights = []
    for workers in (0, 2):
        torch.manual_seed(0)
        model = build_method("dra", load_backbone(TINY), shapes.classnames)
        s = TrainSettings(epochs=2, batch_size=4, num_workers=workers, seed=1)
        fit(model, shapes.train, clip_transforms(tf), s, tmp_path / f"w{workers}")
        weights.append({k: v.clone() for k, v in model.adapter_state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


# -- 3. sizes that would exhaust memory -------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, message",
    [
        ("dra.rank=100000", "dra.rank=100000 does not fit the"),
        ("mma.dim=100000", "mma.dim=100000 does not fit the"),
    ],
)
def test_an_adapter_wider_than_clip_is_one_line_before_any_allocation(tmp_path, setting, message):
    method = setting.split(".")[0]
    out = invoke(
        "train", "--dataset", "shapes", "--model", TINY, "--pretrained", "none", "--shots", "1",
        "--method", method, "--output", tmp_path / "o", *QUICK, setting,
    )  # fmt: skip
    assert message in one_error_line(out) and "choose a value in [1, " in one_error_line(out)
    assert not (tmp_path / "o" / "train").exists()


# -- 4. NaN and nonsense ----------------------------------------------------------------------------------
@pytest.fixture
def tiny_checkpoint(tmp_path):
    shapes = subsample_classes(fewshot(build_dataset("shapes"), 2, seed=1), "base")
    torch.manual_seed(0)
    return save_adapters(build_method("dra", load_backbone(TINY), shapes.classnames), tmp_path / "ck" / "tiny")


def _edit(ckpt, **fields):
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    meta.update(fields)
    ckpt.with_suffix(".json").write_text(json.dumps(meta))


def test_a_checkpoint_with_nan_tensors_is_refused_everywhere(tmp_path, tiny_checkpoint):
    from safetensors.torch import load_file, save_file

    from dra.checkpoints.convert import import_checkpoint

    tensors = load_file(str(tiny_checkpoint))
    name = sorted(tensors)[0]
    tensors[name][0] = float("nan")
    with __import__("safetensors").safe_open(str(tiny_checkpoint), "pt") as f:
        metadata = f.metadata()
    save_file(tensors, str(tiny_checkpoint), metadata=metadata)
    for args in (
        ("predict", str(tmp_path), "--checkpoint", tiny_checkpoint, "--json"),
        ("eval", "--dataset", "shapes", "--checkpoint", tiny_checkpoint, "--output", tmp_path / "e"),
    ):
        line = one_error_line(invoke(*args))
        assert f"checkpoint {tiny_checkpoint} holds non-finite values (NaN or infinity) in {name}" in line
    official = tmp_path / "coop.pth.tar-1"
    torch.save({"state_dict": {"ctx": torch.full((4, 64), float("nan"))}, "epoch": 1}, official)
    with pytest.raises(Exception, match=r"'ctx' holds non-finite values"):
        import_checkpoint(official, "coop", TINY, None, tmp_path / "imported", ["a", "b"])
    assert not (tmp_path / "imported.safetensors").exists()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"template": "{x} {}"}, "'template' must be a text with exactly one {}"),
        ({"template": 5}, "'template' must be a text with {} for the class name, got a int"),
        ({"config": {"rank": "abc"}}, "records settings that do not build a dra model"),
        ({"config": [1, 2]}, "'config' must be dict or NoneType"),
        ({"pretrained": 5}, "'pretrained' must be str or NoneType"),
        ({"classnames": "circle"}, "'classnames' must be a list of texts, got a str"),
        ({"classnames": ["circle", "circle"]}, "'circle' is listed twice"),
    ],
)
def test_an_edited_checkpoint_json_is_one_line(tmp_path, tiny_checkpoint, fields, message):
    _edit(tiny_checkpoint, **fields)
    line = one_error_line(invoke("predict", str(tmp_path), "--checkpoint", tiny_checkpoint))
    assert message in line and "re-save the checkpoint" in line, line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
        (["--steps", "-1"], "--steps must be an integer >= 1, got -1"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 4"),
    ],
)
def test_pocket_pretrain_refuses_nonsense_before_anything_is_written(tmp_path, args, message):
    out = invoke("pocket", "pretrain", *args, "--output", tmp_path / "pp")
    assert message in one_error_line(out)
    assert not (tmp_path / "pp").exists()


def test_pocket_pretrain_stops_on_a_non_finite_loss_and_exports_nothing(tmp_path, monkeypatch):
    from dra.engine.trainer import TrainingDivergedError
    from dra.pocket import pretrain as P

    monkeypatch.setattr(P, "lr_at", lambda step, s: 1e30)  # a learning rate that blows the weights up
    with pytest.raises(TrainingDivergedError, match=r"pocket pretraining diverged at step \d+/3"):
        P.pretrain(P.PretrainSettings(steps=3, batch_size=8, workers=0), tmp_path / "pp", progress=False)
    assert not (tmp_path / "pp" / P.WEIGHTS_NAME).exists()


def test_duplicate_class_names_and_yaml_keys_are_refused(tmp_path, tiny_checkpoint):
    names = tmp_path / "names.txt"
    names.write_text("lake\nharbour\nlake\n")
    line = one_error_line(invoke("predict", str(tmp_path), "--checkpoint", tiny_checkpoint, "--classnames", names))
    assert f"class names file {names}: 'lake' is listed twice" in line
    settings = tmp_path / "s.yaml"
    settings.write_text("train:\n  epochs: 1\n  epochs: 3\n")
    line = one_error_line(invoke("train", "--dataset", "shapes", "--config", settings, "--output", tmp_path / "o"))
    assert "the key 'epochs' is given twice in one mapping" in line and str(settings) in line


# -- 5. one line, not a traceback -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, message",
    [
        ("template={x} {}", "override 'template={x} {}': the value is not valid YAML"),
        ("train.epochs=[1", "override 'train.epochs=[1': the value is not valid YAML"),
        ("train.epochs=!!python/object/apply:os.system [touch MARKER]", "could not determine a constructor"),
        ("template='a {} of {}'", "template must be a text with exactly one {}"),
    ],
)
def test_bad_overrides_are_one_line(tmp_path, override, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = invoke("train", "--dataset", "shapes", "--model", TINY, "--output", tmp_path / "o", override)
    assert message in one_error_line(out)
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "o").exists()


def test_a_template_with_a_stray_field_in_a_settings_file(tmp_path):
    settings = tmp_path / "s.yaml"
    settings.write_text('template: "{x} {}"\n')
    line = one_error_line(invoke("train", "--dataset", "shapes", "--config", settings, "--output", tmp_path / "o"))
    assert "template must be a text with exactly one {}" in line


@pytest.mark.parametrize("block", ["0", "99", "-1"])
def test_visualize_a_block_that_is_not_adapted(tmp_path, tiny_checkpoint, block):
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    line = one_error_line(
        invoke("visualize", "--checkpoint", tiny_checkpoint, "--image", tmp_path / "x.png", "--block", block,
               "--output", tmp_path / "v")
    )  # fmt: skip
    assert f"--block {block} is not an adapted block of this model; choose one of [" in line
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("what", ["corrupt", "pickle"])
def test_bad_weights_in_a_hugging_face_folder_are_one_line(tmp_path, what):
    transformers = pytest.importorskip("transformers")
    from safety_helpers import write_evil

    folder = tmp_path / "hf"
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 16},
        projection_dim=16,
    )  # fmt: skip
    transformers.CLIPModel(config).save_pretrained(folder)
    marker = tmp_path / "marker"
    if what == "corrupt":
        (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    else:
        (folder / "model.safetensors").unlink()
        write_evil(folder / "pytorch_model.bin", marker)
    with pytest.raises(BackboneError, match=r"cannot load the weights of .*hf") as e:
        load_backbone(f"hf:{folder}", "hf")
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)
    assert not marker.exists()


def test_command_line_mistakes_are_one_error_line(capsys):
    from dra.cli import main

    for argv, message in [
        (["base2new", "--seeds", "a"], "error: Invalid value for '--seeds'"),
        (["base2new", "--nosuch"], "error: No such option: --nosuch"),
        (["nosuch"], "error: No such command 'nosuch'"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert e.value.code == 1 and len(err) == 1 and err[0].startswith(message), (argv, err)


# -- 6. the user's choices are kept ------------------------------------------------------------------------
def test_demo_with_an_unknown_model_is_an_error_not_the_pocket_world(tmp_path):
    out = invoke("demo", "--model", "NoSuch", "--output", tmp_path / "o")
    assert one_error_line(out).startswith("error: unknown model 'NoSuch'")
    assert "pocket world" not in out.stdout


def test_outputs_are_checked_before_the_work(tmp_path, tiny_checkpoint, monkeypatch):
    import dra.engine.predict as P

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(P, "predict", lambda *a, **k: pytest.fail("classified before checking --csv"))
    line = one_error_line(
        invoke("predict", str(tmp_path), "--checkpoint", tiny_checkpoint, "--csv", blocker / "out.csv")
    )
    assert f"{blocker} is a file, not a folder" in line
    official = tmp_path / "coop.pth.tar-1"
    torch.save({"state_dict": {"ctx": torch.zeros(4, 64)}, "epoch": 1}, official)
    line = one_error_line(
        invoke("import-checkpoint", official, "--method", "coop", "--model", TINY, "--pretrained", "none",
               "--classnames", tmp_path / "missing.txt", "--output", blocker / "imported")
    )  # fmt: skip
    assert f"{blocker} is a file, not a folder" in line


def test_a_full_disk_during_the_first_checkpoint_leaves_no_half_run(tmp_path, monkeypatch):
    from dra.engine import trainer

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer, "save_resume_state", full)
    out = invoke(
        "train", "--dataset", "shapes", "--model", TINY, "--pretrained", "none", "--shots", "1",
        "--output", tmp_path / "o", *QUICK,
    )  # fmt: skip
    assert "No space left on device" in one_error_line(out)
    assert not list((tmp_path / "o").rglob("adapters.*")) and not list((tmp_path / "o").rglob("*.tmp"))
