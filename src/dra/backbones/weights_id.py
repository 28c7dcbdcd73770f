"""What a run's backbone weights *are*, not where they lie: a content hash, cached by path, size and mtime.

`--pretrained FILE` is keyed by the file's SHA-256, so overwriting the file makes every run on it new,
and moving it keeps them. Hashing a 600 MB OpenAI file takes seconds; the digest is kept in
`$DRA_CACHE_DIR/weights-sha256.json` (default `~/.cache/dra`) under the file's absolute path,
size and modification time, and recomputed when any of them changes. A named tag ("openai", "laion2b_...")
is its own identity (the hub file behind a tag does not change); no weights is "random".
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from dra.backbones.weights import packaged

_memory: dict[tuple[str, int, int], str] = {}


def _cache_file() -> Path:
    from dra.io import cache_root

    return cache_root() / "weights-sha256.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of `path`'s bytes, from the cache when path, size and mtime are unchanged."""
    path = Path(path).expanduser().absolute()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _memory:
        return _memory[key]
    cache = _read_cache()
    entry = cache.get(key[0])
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        digest = str(entry.get("sha256"))
    else:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        digest = h.hexdigest()
        cache[key[0]] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        try:  # a cache that cannot be written only costs a re-hash next time
            from dra.io import atomic_write_text

            atomic_write_text(_cache_file(), json.dumps(cache, indent=1, sort_keys=True))
        except OSError:
            pass
    _memory[key] = digest
    return digest


def weights_id(model: str, pretrained) -> str:
    """The identity of the weights `load_backbone(model, pretrained)` loads: "sha256:<hex>" for a file
    (the pocket CLIP's packaged file included; every file of a local `hf:` folder), the tag otherwise."""
    if str(model).startswith("hf:"):
        folder = Path(str(model)[3:]).expanduser()
        if folder.is_dir() and pretrained not in (None, ""):
            h = hashlib.sha256()
            for f in sorted(p for p in folder.rglob("*") if p.is_file()):
                h.update(f"{f.relative_to(folder).as_posix()}\t{file_sha256(f)}\n".encode("utf-8", "surrogateescape"))
            return "sha256:" + h.hexdigest()
    if pretrained is None or str(pretrained) == "":
        return "random"
    entry = packaged(pretrained)
    if entry is not None:
        return "sha256:" + file_sha256(entry.path) if entry.path.is_file() else entry.name
    path = Path(str(pretrained)).expanduser()
    if path.is_file():
        return "sha256:" + file_sha256(path)
    return str(pretrained)
