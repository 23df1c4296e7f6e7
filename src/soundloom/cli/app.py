"""The Typer application object; command modules register themselves on it."""

import typer

app = typer.Typer(
    name="soundloom",
    help="AI sound generation and endless music streams. Run `soundloom COMMAND --help` for details.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> None:
    """Print one ``error:`` line and exit with status 2 (bad input, not a crash)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.callback()
def _root() -> None:
    """soundloom: AI sound generation and endless music streams."""


@app.command()
def version() -> None:
    """Print the soundloom version."""
    from .. import __version__

    typer.echo(__version__)
