"""CLI commands of the data side (registered on :data:`soundloom.cli.app.app`)."""

from __future__ import annotations

from .app import app  # noqa: F401
