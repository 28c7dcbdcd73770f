"""Property-based fuzzing of the readers of user files (issue #19): the CoOp split-file reader and the
class-names file readers. Any input gives a result or a `DataError` whose message is one line, never
another exception and never a hang (each property runs a bounded number of examples with a deadline).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dra.data.core import DataError
from dra.data.folder import folder_spec, read_classnames_file
from dra.data.registry import read_imagenet_classnames, read_split_json
from dra.engine.predict import read_classnames

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


def _one_line_or_result(read, path: Path):
    try:
        return read(path)
    except DataError as e:
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
        predict_names = _one_line_or_result(read_classnames, path)
        if predict_names is not None:
            assert predict_names and all(n == n.strip() and n and not n.startswith("#") for n in predict_names)
