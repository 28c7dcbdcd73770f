"""Error messages on one line (the CLI's promise: one `error:` line, exit code 1)."""

from __future__ import annotations


def one_line(e: BaseException) -> str:
    """The first line of an error's message; for an error re-raised from a DataLoader worker
    ("Caught DataError in DataLoader worker process 0 ... Original Traceback ..."), the original
    message, which names the file."""
    text = str(e)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and "Original Traceback" in text:
        head, sep, rest = lines[-1].partition(": ")
        return rest if sep and " " not in head else lines[-1]
    return lines[0] if lines else type(e).__name__
