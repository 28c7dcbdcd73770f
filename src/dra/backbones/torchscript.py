"""The tensors of a TorchScript archive (OpenAI's CLIP files), read without running any of its code.

`torch.jit.load` compiles the archive's `code/` and calls the `__setstate__` methods it defines, and
TorchScript can read and write files (`aten::save`, `aten::from_file`): opening an untrusted `.pt`
with it runs the archive's code. This reader does not. It unpickles `data.pkl` with a pickle reader
that knows four things only — the `__torch__.*` module objects (kept as inert records of their
attributes), `torch._utils._rebuild_tensor_v2` (rebuilt here from the archive's raw storages), the
storage dtype tags and `collections.OrderedDict` (plus TorchScript's list builders) — and refuses
every other name. Which attributes are parameters and buffers is read from the `__parameters__` /
`__buffers__` lines of the archive's class declarations (as text, never executed), so the result is
what `torch.jit.load(path).state_dict()` would give.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from dra.errors import DraError

_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_MAX_DEPTH = 64  # module nesting; CLIP's is under 10


class TorchScriptError(DraError, ValueError):
    """The archive holds something other than modules of tensors; nothing of it was run."""


def is_torchscript(path: str | Path) -> bool:
    """Whether `path` is a zip archive laid out as TorchScript (a `constants.pkl` or a `code/` folder)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in zf.namelist())


class _ScriptObject:
    """An inert stand-in for a TorchScript module: its class name and its pickled attributes. The
    reader makes one subclass per archive class name (pickle's NEWOBJ needs a class to build)."""

    qualname = ""
    state: dict = {}

    def __setstate__(self, state) -> None:
        if not isinstance(state, dict):
            raise TorchScriptError(f"{self.qualname} has a state of type {type(state).__name__}, not attributes")
        self.state = state


class _StorageTag:
    """A storage type named in a persistent id: only its dtype is used, it is never called."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not (isinstance(storage, torch.Tensor) and isinstance(offset, int)):
        raise TorchScriptError("a tensor record does not name a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise TorchScriptError("a tensor record has a malformed shape")
    needed = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else 0
    if needed > storage.numel():
        raise TorchScriptError(f"a tensor of shape {list(size)} reaches past its storage of {storage.numel()}")
    return storage.as_strided(size, stride, offset)


def _list(values):
    return list(values)


def _restore_type_tag(value, _type: str):
    return value


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _list,
    ("torch.jit._pickle", "build_doublelist"): _list,
    ("torch.jit._pickle", "build_boollist"): _list,
    ("torch.jit._pickle", "build_tensorlist"): _list,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
}


class _Reader(pickle.Unpickler):
    def __init__(self, zf: zipfile.ZipFile, prefix: str, data: bytes) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._zf, self._prefix = zf, prefix
        self._storages: dict[str, torch.Tensor] = {}
        self._records: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__.") or module == "__torch__":
            qualname = f"{module}.{name}"
            if qualname not in self._records:
                self._records[qualname] = type("ScriptRecord", (_ScriptObject,), {"qualname": qualname})
            return self._records[qualname]
        if module == "torch" and name in _DTYPES:
            return _StorageTag(_DTYPES[name])
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise TorchScriptError(f"it names {module}.{name}, which a weights file has no need of") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise TorchScriptError(f"unknown persistent record {str(pid)[:80]}")
        _, tag, key, _location, numel = pid
        if not isinstance(tag, _StorageTag) or not isinstance(key, str) or not isinstance(numel, int):
            raise TorchScriptError(f"malformed storage record {str(pid)[:80]}")
        if key not in self._storages:
            try:
                raw = self._zf.read(f"{self._prefix}data/{key}")
            except KeyError:
                raise TorchScriptError(f"storage {key} is missing from the archive") from None
            itemsize = torch.empty((), dtype=tag.dtype).element_size()
            if len(raw) < numel * itemsize:
                raise TorchScriptError(f"storage {key} holds {len(raw)} bytes, {numel * itemsize} expected")
            flat = torch.frombuffer(bytearray(raw[: numel * itemsize]), dtype=tag.dtype) if numel else None
            self._storages[key] = flat if flat is not None else torch.empty(0, dtype=tag.dtype)
        return self._storages[key]


def _declarations(zf: zipfile.ZipFile, prefix: str, qualname: str) -> set[str]:
    """The names a class declares in `__parameters__` and `__buffers__` (read from its code as text)."""
    module, _, cls = qualname.rpartition(".")
    path = f"{prefix}code/{module.replace('.', '/')}.py"
    try:
        text = zf.read(path).decode("utf-8", "replace")
    except KeyError:
        raise TorchScriptError(f"the archive declares no class {qualname}") from None
    m = re.search(rf"^class {re.escape(cls)}\(.*?\):\n((?:[ \t]+.*\n|\n)*?)(?=^\S|\Z)", text + "\n", flags=re.MULTILINE)
    if m is None:
        raise TorchScriptError(f"the archive declares no class {qualname}")
    names: set[str] = set()
    for field in ("__parameters__", "__buffers__"):
        line = re.search(rf"^\s+{field} = \[(.*?)\]", m.group(1), flags=re.MULTILINE)
        if line:
            names.update(re.findall(r'"([^"]+)"', line.group(1)))
    return names


def _collect(obj: _ScriptObject, zf, prefix: str, key: str, out: dict, depth: int, seen: dict) -> None:
    if depth > _MAX_DEPTH:
        raise TorchScriptError(f"modules nest deeper than {_MAX_DEPTH}")
    if obj.qualname not in seen:
        seen[obj.qualname] = _declarations(zf, prefix, obj.qualname)
    declared = seen[obj.qualname]
    for name, value in obj.state.items():
        if isinstance(value, _ScriptObject):
            _collect(value, zf, prefix, f"{key}{name}.", out, depth + 1, seen)
        elif isinstance(value, torch.Tensor) and name in declared:
            out[f"{key}{name}"] = value


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of the TorchScript archive at `path`, as `torch.jit.load(path).state_dict()` would
    give it, without running the archive's code. Raises `TorchScriptError` for anything else."""
    with zipfile.ZipFile(path) as zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise TorchScriptError("it has no single <archive>/data.pkl")
        prefix = pkls[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in zf.namelist() and zf.read(order).strip() not in (b"little", b""):
            raise TorchScriptError("its tensors are stored big-endian")
        reader = _Reader(zf, prefix, zf.read(pkls[0]))
        try:
            root = reader.load()
        except TorchScriptError:
            raise
        except Exception as e:  # noqa: BLE001 - UnpicklingError, TypeError from a malformed stream, ...
            raise TorchScriptError(f"its data.pkl cannot be read ({type(e).__name__}: {str(e)[:120]})") from None
        if not isinstance(root, _ScriptObject):
            raise TorchScriptError("its data.pkl does not hold a module")
        out: dict[str, torch.Tensor] = {}
        _collect(root, zf, prefix, "", out, 0, {})
    if not out:
        raise TorchScriptError("it holds no tensors")
    return out
