"""The `dra` command line (Typer). Commands are thin: they build settings and call the library.

    app.py        the app, the `dra data` / `dra pocket` sub-apps, the one error handler (`errors`)
    options.py    the shared options, defined once (`RunOptions`, `with_options`), `--seeds 1 2 3` expansion
    protocols.py  base2new, cross-dataset, domain-gen, compare, ablate, demo, settings
    models.py     train, eval, predict, info, import-checkpoint
    reports.py    plot, report, visualize
    data.py       dra data list / check / fewshot / make-shapes
    pocket.py     dra pocket pretrain
    efficiency.py dra efficiency (= benchmarks/efficiency.py)

Options that take several values accept both `--seeds 1 2 3` and `--seeds 1 --seeds 2 --seeds 3`.
Trailing `key=value` arguments override any setting of the YAML (e.g. `train.epochs=1 dra.rank=16`).
"""

from __future__ import annotations

import sys

import typer

from dra.cli import data, efficiency, models, pocket, protocols, reports  # noqa: F401 - they register the commands
from dra.cli.app import app
from dra.cli.options import expand_variadic
from dra.errors import one_line

__all__ = ["app", "expand_variadic", "main"]


def main(argv: list[str] | None = None) -> None:  # console-script entry point
    """Run the CLI. A command-line mistake (a value of the wrong type, an unknown option, a missing
    argument) is one `error:` line naming the option and exit code 1, like every other user error."""
    from dra import command

    # Typer may vendor Click: its UsageError is found from the public BadParameter.
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    raw = list(sys.argv[1:] if argv is None else argv)
    command.record(raw)
    try:
        code = app(args=expand_variadic(raw), prog_name="dra", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError" and e.ctx is not None:  # `dra` alone: the help
            typer.echo(e.ctx.get_help())
            sys.exit(0)
        where = f"`{e.ctx.command_path} --help`" if e.ctx else "`dra --help`"
        typer.echo(f"error: {one_line(e.format_message())} (see {where})", err=True)
        code = 1
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
