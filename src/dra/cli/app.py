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
    and exit code 1 (settings, data, weights, checkpoints, run folders, a diverged run, an unwritable
    output). Anything else is a bug and keeps its traceback.

    `DraError` is the base of every domain error. The classes listed beside it are the ones this handler
    caught before every error derived from `DraError`; they are kept so that nothing regresses until
    then (ValueError and OSError included): narrow the tuple to `DraError` once they all derive from it."""
    from dra.backbones import BackboneError
    from dra.data import DataError
    from dra.engine.checkpoint import CheckpointError
    from dra.engine.trainer import RunBusyError, RunMismatchError, TrainingDivergedError
    from dra.errors import DraError, one_line
    from dra.protocols.experiment import RunMissingError

    try:
        yield
    except (
        DraError,
        DataError,
        BackboneError,
        CheckpointError,
        RunMismatchError,
        RunBusyError,
        TrainingDivergedError,
        RunMissingError,
        ValueError,
        OSError,
    ) as e:
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
