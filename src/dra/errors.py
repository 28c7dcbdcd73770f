"""The library's errors and their one-line messages (the CLI's promise: one `error:` line, exit code 1)."""

from __future__ import annotations


class DraError(Exception):
    """Base of every error a user can act on (bad settings, data, weights, checkpoints, run folders, a
    diverged run, an unwritable output). Its message names the file or value and the fix; the CLI prints
    it as one `error:` line. Anything else is a bug and keeps its traceback."""


class SettingsError(DraError, ValueError):
    """A setting the library cannot use (a settings file, an override, a CLI option, a config value, a
    method name, a device); the message names the key and what is allowed. It is one line even when it
    quotes a key or value that holds a line break (shown as \\n)."""

    def __str__(self) -> str:
        text = super().__str__()
        return text.replace("\r", "\\r").replace("\n", "\\n")


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


def refusal(e: BaseException) -> str:
    """Why a file was not loaded, on one line, without advice to load it unsafely.

    torch's weights-only refusal says to re-run with `weights_only=False`, which is exactly what a user
    must not do with a file that holds code; this keeps only what the file holds."""
    text = str(e)
    if "Weights only load failed" in text or "weights_only" in text:
        found = next(
            (
                line.strip()
                for line in text.splitlines()
                if "GLOBAL" in line or "Unsupported" in line or "WeightsUnpickler error" in line
            ),
            "",
        )
        found = found.replace("WeightsUnpickler error: ", "").split(". Please")[0].rstrip(".")
        detail = f": {found[:160]}" if found else ""
        return f"it holds Python objects, not only tensors{detail}; loading it could run code, so it is refused"
    return f"{type(e).__name__}: {one_line(e)[:200]}"
