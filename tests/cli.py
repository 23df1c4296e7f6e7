"""Run the ``soundloom`` CLI in-process the way the console script does (errors printed by ``run_app``)."""

from __future__ import annotations

from typer.testing import CliRunner

from soundloom.cli import run_app


def run_cli(*args) -> tuple[int, str]:
    """Exit status and stdout + stderr of ``soundloom ARGS...``."""
    with CliRunner().isolation() as streams:
        code = run_app([str(a) for a in args])
        return code, streams[0].getvalue().decode() + streams[1].getvalue().decode()
