"""What the studio's routes share: the root, the job manager, loaded generators and mounted streams.

A leaf of the studio (the app factory in :mod:`.studio` and every ``routes_*`` module import it), so
the routes and the factory do not import each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ParameterError
from .jobs import JobManager
from .paths import relative_to_root, resolve_in_root


@dataclass
class StudioState:
    """What the routes share: the root, the job manager, loaded generators and the mounted streams."""

    root: Path
    jobs: JobManager
    streams: dict[str, dict] = field(default_factory=dict)
    generators: dict = field(default_factory=dict)  # run path -> (mtime, Generator)
    latents: dict = field(default_factory=dict)  # run path -> (mtime, points)

    def path(self, user_path: str) -> Path:
        """A user's path resolved inside the root (ParameterError otherwise)."""
        return resolve_in_root(self.root, user_path)

    def existing(self, user_path: str, kind: str = "any") -> Path:
        """:meth:`path`, which must exist (and be a file or a folder when ``kind`` says so)."""
        p = self.path(user_path)
        if not p.exists() or (kind == "file" and not p.is_file()) or (kind == "dir" and not p.is_dir()):
            what = {"file": "file", "dir": "folder"}.get(kind, "path")
            raise NotFound(f"{user_path or '.'}: no such {what} under the root")
        return p

    def rel(self, path: str | os.PathLike) -> str | None:
        """``path`` as the page names it, or None when it lies outside the root."""
        return relative_to_root(self.root, path)


class NotFound(ParameterError):
    """A path (inside the root) that does not exist: answered 404."""
