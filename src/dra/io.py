"""Atomic file writes (a temp file in the target's folder, then `os.replace`) and output checks.

An interrupted write never leaves a half file under the final name (checkpoints, tables, plots); a
write that fails (read-only or full disk, ...) raises `OutputError` with a one-line message.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from dra.errors import DraError

TMP_SUFFIX = ".tmp"


class OutputError(DraError, OSError):
    """An output folder or file cannot be written; the message names it and the reason, on one line."""

    def __str__(self) -> str:  # OSError's str() would prefix an errno
        return self.args[0] if self.args else "output error"


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def ensure_writable(folder: str | os.PathLike) -> Path:
    """Check, without creating anything, that `folder` exists as a writable folder or could be made.

    The nearest existing ancestor must be a folder in which a file can be created.
    """
    folder = Path(folder).expanduser().absolute()
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"output {folder} cannot be created: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".dra-probe-"):
            pass
    except OSError as e:
        raise OutputError(f"output {folder} is not writable ({_reason(e)}); choose another --output") from None
    return folder


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove temp files left in `folder` by a killed atomic write (call while holding the folder's lock)."""
    removed = []
    for p in Path(folder).glob(f".*{TMP_SUFFIX}"):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)`, then move the result to `path`; the temp file goes away on failure."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"cannot write {path} ({_reason(e)})") from None
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001 - a full disk shows up as OSError, RuntimeError (torch), SafetensorError...
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path} ({_reason(e)})") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def cache_root() -> Path:
    """Where dra keeps what it makes for itself (generated data, feature and weight-hash caches):
    `$DRA_CACHE_DIR`, default `~/.cache/dra`."""
    return Path(os.environ.get("DRA_CACHE_DIR") or os.path.join("~", ".cache", "dra")).expanduser()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)
