"""The Typer application object; command modules register themselves on it."""

import typer

app = typer.Typer(
    name="soundloom",
    help="AI sound generation and endless music streams. Run `soundloom COMMAND --help` for details.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
