"""Command line: a thin face over the Python API. Each engine owns one command module."""

from __future__ import annotations

import sys

from . import data_cmds, model_cmds, server_cmds, stream_cmds  # noqa: E402,F401  (register commands)
from .app import app


def main() -> None:
    """Entry point of the ``soundloom`` console script; errors print one clear line."""
    from ..core.io import AudioError
    from ..data.store import StoreError

    try:
        app()
    except (AudioError, StoreError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
