"""`dra data ...` sub-commands (filled in by the datasets work)."""
import typer

app = typer.Typer(no_args_is_help=True)
