"""Prompt templates and class-name lists: the one check every reader of them applies.

A template is text with exactly one `{}` where the class name goes ("a photo of a {}."): a stray
`{x}` or a second `{}` would fail inside `str.format` far from where it was written. Class names are
non-empty, distinct texts: a duplicate makes two outputs of one class and splits its probability.
"""

from __future__ import annotations

import string
from typing import Any

from dra.errors import DraError

DEFAULT_TEMPLATE = "a photo of a {}."
"""The benchmark's prompt (CoOp / CoCoOp / MaPLe / MMA convention): settings' and the methods' default."""


class LabelsError(DraError, ValueError):
    """Class names or a prompt template a model cannot use; the message names where they came from."""


def template_problem(template: Any) -> str | None:
    """Why `template` is not a prompt template, or None."""
    if not isinstance(template, str):
        return f"a text with {{}} for the class name, got a {type(template).__name__} ({template!r})"
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        return (
            f"a text with one {{}} for the class name ({e}; write {{{{ or }}}} for a literal brace), got {template!r}"
        )
    if fields != [("", "", None)]:
        return f"a text with exactly one {{}} (no name, no format) for the class name, got {template!r}"
    return None


def check_template(template: Any, where: str = "template") -> str:
    problem = template_problem(template)
    if problem:
        raise LabelsError(f"{where} must be {problem}")
    return template


def check_classnames(names: Any, where: str = "class names") -> list[str]:
    """`names` as a list of str: a list (or tuple) of non-empty, distinct texts; else a LabelsError."""
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
        raise LabelsError(f"{where} must be a list of texts, got a {type(names).__name__}")
    if not names:
        raise LabelsError(f"{where}: at least one class name is needed")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise LabelsError(f"{where}: every class name must be a non-empty text, got {bad[0]!r}")
    seen: set[str] = set()
    repeated = sorted({n for n in names if n in seen or seen.add(n)})
    if repeated:
        raise LabelsError(f"{where}: {repeated[0]!r} is listed twice; each class needs one name")
    return list(names)


def read_classnames(path) -> list[str]:
    """A class-names file (`--classnames`): one name per line, UTF-8; blank lines and `#` comments skipped.
    Any problem (unreadable, empty, a name twice) is a LabelsError naming the file and the fix."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelsError(
            f"class names file {path} cannot be read ({type(e).__name__}: {e}); give a UTF-8 text file"
        ) from None
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not names:
        raise LabelsError(f"class names file {path} holds no class name (one per line)")
    try:
        return check_classnames(names, f"class names file {path}")
    except LabelsError as e:
        raise LabelsError(f"{e} (one name per line)") from None
