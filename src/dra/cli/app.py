"""The `dra` Typer app, its sub-apps (`dra data`, `dra pocket`) and the one error handler of every command."""

from __future__ import annotations

import contextlib

import typer

app = typer.Typer(
    name="dra",
    help="Dynamic Rank Adaptation for CLIP: train, evaluate and benchmark adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(data_app, name="data", help="Check dataset layouts and print few-shot draws.")
pocket_app = typer.Typer(
    no_args_is_help=True, help="The pocket world (a simulation): a tiny CLIP dra pretrains itself."
)
app.add_typer(pocket_app, name="pocket")


def echo(text: str = "", err: bool = False) -> None:
    """`typer.echo` of text that may hold file names with undecodable bytes (printed as `\\xff`)."""
    from dra.data.core import safe_text

    typer.echo(safe_text(text), err=err)


@contextlib.contextmanager
def errors():
    """The one error handler of every command: a user-facing error ends as one `error:` line on stderr
    and exit code 1. User-facing errors are `DraError`s (settings, data, weights, checkpoints, run folders,
    a diverged run, an unwritable output: `dra.errors`), plus the file system's own `OSError`s, whose
    messages name the path. Anything else is a bug and keeps its traceback."""
    from dra.errors import DraError, one_line

    try:
        yield
    except (DraError, OSError) as e:
        echo(f"error: {one_line(e)}", err=True)
        raise typer.Exit(code=1) from None


def handles_errors(fn):
    """`fn` run inside `errors()` (a decorator for commands whose whole body is user-facing)."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args, **kwargs):
        with errors():
            return fn(*args, **kwargs)

    return wrapper
