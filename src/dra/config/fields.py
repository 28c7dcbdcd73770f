"""The one unknown-key check of every config and settings level, and its error."""

from __future__ import annotations

import difflib
from typing import Iterable, Mapping

from dra.errors import DraError


class UnknownFieldError(DraError, ValueError):
    """A setting that no schema field has; the message names it and the nearest valid key."""


def check_fields(
    known: Iterable[str], keys: Iterable[str], prefix: str = "", elsewhere: Mapping[str, str] | None = None
) -> None:
    """The one unknown-key check (DRAConfig.from_dict and every level of the settings schema).

    `prefix` is the dotted path of the level ("dra.", "train.", ""); `elsewhere` maps leaf names of
    other levels to their full dotted key, for a suggestion when the key sits at the wrong level
    (`skip_bad` -> `train.skip_bad_images`).
    """
    known = list(known)
    for key in keys:
        if key in known:
            continue
        key = str(key)
        section = prefix.rstrip(".").split(".")[-1] if prefix else ""
        what = f"unknown {section} setting" if section else "unknown setting"
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"{prefix}{near[0]}" if near else None
        if hint is None and elsewhere:
            leaf = difflib.get_close_matches(key.split(".")[-1], list(elsewhere), n=1, cutoff=0.6)
            hint = elsewhere[leaf[0]] if leaf else None
        tail = f"did you mean '{hint}'?" if hint else f"valid keys here: {', '.join(sorted(known))}"
        raise UnknownFieldError(f"{what} '{prefix}{key}'; {tail}")
