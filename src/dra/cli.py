"""The `dra` command line (Typer). Each sub-command lives next to the code it drives."""
from __future__ import annotations

import typer

from dra.data.cli import app as data_app

app = typer.Typer(
    name="dra",
    help="Dynamic Rank Adaptation for CLIP: train, evaluate and benchmark adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data", help="Check dataset layouts and print few-shot draws.")


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
