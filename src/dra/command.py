"""The command line this process runs, as the `dra` console script saw it (recorded by `dra.cli.main`),
for the files that say what produced them (settings.yaml of a table, a launched job's unit.json)."""

from __future__ import annotations

import shlex

ARGV: list[str] | None = None


def record(argv: list[str]) -> None:
    global ARGV
    ARGV = ["dra", *argv]


def text() -> str | None:
    """`dra compare --methods ...`, or None when dra runs as a library (no command line)."""
    return shlex.join(ARGV) if ARGV else None
