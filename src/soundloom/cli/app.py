"""The Typer application object, shared options, and the one place errors become one line.

Command modules register themselves on :data:`app` and import heavy modules inside the commands
that need them, so ``soundloom --help`` loads no torch.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import typer

from ..core.errors import SoundloomError

app = typer.Typer(
    name="soundloom",
    help="AI sound generation and endless music streams. Run `soundloom COMMAND --help` for details.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: Rich's help renderer alone costs ~0.3 s of start-up (rich.markdown, rich.traceback)
    rich_markup_mode=None,
)

THREADS_HELP = "torch CPU threads; 1 is fastest (and steadiest) on shared cores, 0 = torch's default."


def set_threads(threads: int) -> None:
    """Set torch's CPU threads (``threads <= 0`` keeps torch's default)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def fail(message: str) -> None:
    """Print one ``error:`` line and exit with status 2 (bad input, not a crash)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def crash_log(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error to a log file; returns its path.

    The folder is ``$SOUNDLOOM_LOG_DIR`` or ``<tmp>/soundloom-logs``.
    """
    folder = Path(os.environ.get("SOUNDLOOM_LOG_DIR") or Path(tempfile.gettempdir()) / "soundloom-logs")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text(f"soundloom {' '.join(sys.argv[1:])}\n\n" + "".join(traceback.format_exception(exc)))
    return path


def run_app(argv: list[str] | None = None) -> int:
    """Run the CLI; every error ends in one line on stderr. Returns the exit status.

    - :class:`SoundloomError` (bad input, a bad file): ``error: <file>: <reason>``, status 2.
    - ``OSError`` (a missing file, no permission, a full disk): ``error: <file>: <reason>``, status 2.
    - anything else (a bug): ``error: internal error ...`` with the path of a log holding the
      traceback, status 1. Usage errors and ``--help`` are Click's own (status 2 and 0).
    """
    try:
        app(args=argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SoundloomError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return 2
    except Exception as exc:  # a bug: one line here, the traceback in a log
        log = crash_log(exc)
        typer.echo(f"error: internal error ({type(exc).__name__}: {exc}); traceback in {log}", err=True)
        return 1
    return 0


@app.callback()
def _root() -> None:
    """soundloom: AI sound generation and endless music streams."""


@app.command()
def version() -> None:
    """Print the soundloom version."""
    from .. import __version__

    typer.echo(__version__)
