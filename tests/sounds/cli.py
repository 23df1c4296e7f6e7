"""Kept for imports of the old name; the helper lives in :mod:`tests.cli`."""

from tests.cli import run_cli

__all__ = ["run_cli"]
