"""Property-based fuzzing of the readers of user files (issue #19): the CoOp split-file reader, the
class-names file readers, settings files and `key=value` overrides, and a checkpoint's JSON description.
Any input gives a result or the reader's own error (`DataError`, `SettingsError`, `CheckpointError`,
`ValueError`) whose message is one line, never another exception and never a hang (each property runs a
bounded number of examples with a deadline).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dra.data.core import DataError
from dra.data.folder import folder_spec, read_classnames_file
from dra.data.readers import read_imagenet_classnames, read_split_json
from dra.labels import read_classnames

FUZZ = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow], database=None)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)
hostile_labels = st.sampled_from([float("inf"), float("nan"), 1e300, 10**10, 2**70, -1, True, 1.5, "1", None])
labels = st.integers(min_value=0, max_value=4) | hostile_labels | st.integers() | st.floats() | st.text(max_size=4)
paths = st.sampled_from(["A/0.png", "B/1.png", "/etc/hostname", "../x.png", "A/../../y", "", ".", "a\x00b"]) | st.text(
    max_size=12
)
entries = st.lists(paths, min_size=3, max_size=3).map(list) | st.tuples(paths, labels, st.text(max_size=6)).map(list)
split_like = st.fixed_dictionaries(
    {k: st.lists(entries, max_size=6) | st.lists(entries | json_values, max_size=6) for k in ("train", "val", "test")},
)


def _one_line_or_result(read, path, errors=(DataError,)):
    try:
        return read(path)
    except errors as e:
        message = str(e)
        assert message and "\n" not in message and "\r" not in message, message
        return None


def _split_reader(tmp: Path):
    spec = folder_spec(tmp)
    return lambda path: read_split_json(spec, path, tmp)


def _check_split(result, root: str) -> None:
    if result is not None:  # a result is a coherent dataset: labels 0..n-1 named, paths inside the folder
        n = len(result.classnames)
        for d in result.train + result.val + result.test:
            assert 0 <= d.label < n and d.classname == result.classnames[d.label]
            assert os.path.normpath(d.impath).startswith(root + os.sep)


@FUZZ
@given(data=split_like | json_values)
def test_split_reader_on_random_json(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "split.json"
        path.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
        _check_split(_one_line_or_result(_split_reader(Path(tmp)), path), tmp)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_split_reader_on_random_bytes(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "split.json"
        path.write_bytes(raw)
        _check_split(_one_line_or_result(_split_reader(Path(tmp)), path), tmp)


@settings(max_examples=20, deadline=5000, database=None)
@given(depth=st.integers(min_value=900, max_value=200_000), open_=st.sampled_from(["[", '{"a":']))
def test_split_reader_on_deep_nesting(depth, open_):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "split.json"
        close = "]" if open_ == "[" else "}"
        path.write_text(open_ * depth + "1" + close * depth, encoding="utf-8")
        assert _one_line_or_result(_split_reader(Path(tmp)), path) is None


class_lines = st.lists(
    st.text(max_size=30) | st.sampled_from(["# comment", "", "folder", "folder name", "n01440764 tench"]), max_size=8
)


@FUZZ
@given(content=class_lines.map("\n".join).map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=300))
def test_class_names_readers_on_random_files(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classnames.txt"
        path.write_bytes(content)
        folder_names = _one_line_or_result(read_classnames_file, path)
        if folder_names is not None:
            assert all(" " not in k and v == v.strip() and v for k, v in folder_names.items())
        imagenet_names = _one_line_or_result(read_imagenet_classnames, path)
        if imagenet_names is not None:
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in imagenet_names.items())
        predict_names = _one_line_or_result(read_classnames, path, (ValueError,))
        if predict_names is not None:
            assert predict_names and all(n == n.strip() and n and not n.startswith("#") for n in predict_names)


# -- settings files and overrides ---------------------------------------------------------------------
yaml_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
setting_keys = st.sampled_from(
    ["train", "train.epochs", "train.lr", "method", "template", "shots", "seeds", "datasets", "dra", "dra.rank",
     "mma.dim", "method_overrides", "dataset_overrides", "eval.batch_size", "nosuch", "train.nosuch"]
)  # fmt: skip
yaml_texts = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["a: [1", "a: !!python/object/apply:os.system [ls]", "{", "train: {epochs: 1, epochs: 2}",
                     "- 1\n- 2", "train:\n  lr: .inf", "template: '{x} {}'", "? [a]\n: 1", "&a [*a]"]),
    st.dictionaries(setting_keys, json_values, max_size=4).map(lambda d: json.dumps(d, allow_nan=True)),
)  # fmt: skip


def _settings_result(load):
    from dra.settings import SettingsError

    try:
        return load()
    except (SettingsError, ValueError) as e:  # SettingsError is a ValueError
        message = str(e)
        assert message and "\n" not in message, message
        return None


FUZZ_SETTINGS = settings(max_examples=80, deadline=5000, suppress_health_check=[HealthCheck.too_slow], database=None)


@FUZZ_SETTINGS
@given(text=yaml_texts)
@example(text='{"seeds": [[], []]}')  # found by a clean-clone run: seeds that are lists (was a TypeError)
def test_settings_files_on_random_text(text):
    from dra.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _settings_result(lambda: load_settings(str(path)))


override_values = st.one_of(
    yaml_scalars.map(str),
    st.text(max_size=20),
    st.sampled_from(["[1", "{x} {}", "!!python/name:os.system", "a {} b", "[1, 2]", "{a: 1}", "1e999", "'{}'"]),
)


@FUZZ_SETTINGS
@given(pairs=st.lists(st.tuples(setting_keys | st.text(max_size=10), override_values), max_size=4))
def test_overrides_on_random_pairs(pairs):
    from dra.settings import load_settings

    _settings_result(lambda: load_settings("base2new", {}, [f"{k}={v}" for k, v in pairs]))


# -- a checkpoint's JSON description ------------------------------------------------------------------
meta_fields = st.fixed_dictionaries(
    {},
    optional={
        "method": st.sampled_from(["dra", "adapter", "nosuch"]) | json_values,
        "model": st.sampled_from(["ViT-Tiny-16-test"]) | json_values,
        "classnames": st.lists(st.text(max_size=6), max_size=4) | json_values,
        "template": st.sampled_from(["a photo of a {}.", "{x} {}", "{}{}"]) | json_values,
        "config": st.dictionaries(st.sampled_from(["rank", "start_layer", "branches", "nosuch"]), json_values)
        | json_values,
        "pretrained": st.sampled_from([None, "", "random"]) | json_values,
        "quick_gelu": json_values,
    },
)


@settings(max_examples=40, deadline=10_000, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(fields=meta_fields, raw=st.none() | st.binary(max_size=60))
def test_checkpoint_descriptions_on_random_json(fields, raw):
    from safetensors.torch import save_file

    from dra.checkpoints import CheckpointError, load_model

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "ck.safetensors"
        save_file({"x": __import__("torch").zeros(1)}, str(weights), metadata={"save_id": "s"})
        meta = weights.with_suffix(".json")
        if raw is not None:
            meta.write_bytes(raw)
        else:
            meta.write_text(json.dumps({"save_id": "s", **fields}, allow_nan=True), encoding="utf-8")
        try:
            load_model(weights)
        except (CheckpointError, ValueError) as e:  # a dra checkpoint with these tensors can never load
            message = str(e)
            assert message and "\n" not in message, message
        else:
            raise AssertionError("a checkpoint of one tensor named x loaded")
