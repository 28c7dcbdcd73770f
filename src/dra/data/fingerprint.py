"""A short fingerprint of the images a run reads: which files, under which labels, and their bytes' identity.

A reused result must be the result of exactly these inputs. The fingerprint covers each item's path,
label and class name and the file's size and modification time (`os.stat`, no decoding: ImageNet's
50,000 test images cost a fraction of a second). Editing, replacing or relabelling an image, or a
split file that lists other images, changes it; reading the same files again does not.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable

from dra.data.core import Datum


def _stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def fingerprint(*parts: Iterable[Datum]) -> str:
    """16 hex digits over the items of `parts` (e.g. train, val, test), in their order."""
    h = hashlib.sha256()
    for i, items in enumerate(parts):
        h.update(f"#part {i}\n".encode())
        for d in items:
            name = os.fsencode(d.impath)
            h.update(name + f"\t{d.label}\t{d.classname}\t{_stat(d.impath)}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]
