"""CLI commands of the model side (registered on :data:`soundloom.cli.app.app`)."""

from __future__ import annotations

from .app import app  # noqa: F401
