"""Command line: a thin face over the Python API. Each engine owns one command module."""

from __future__ import annotations

import sys

from . import data_cmds, demo_cmds, export_cmds, model_cmds, scape_cmds, server_cmds, stream_cmds, studio_cmds  # noqa: F401  (register commands)
from .app import app, run_app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``soundloom`` console script; errors print one clear line."""
    sys.exit(run_app())
