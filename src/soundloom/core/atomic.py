"""Atomic file writes: write to a temporary name beside the target, then rename over it.

A crash or kill mid-write leaves the old file (or none), never half a new one. Every writer of
run directories, stores, audio and plots goes through :func:`atomic_path`.

``tempfile`` creates its files 0600 and folders 0700, private to the writer; what is renamed
into place gets the modes an ordinary ``open`` / ``mkdir`` would give under the process's
umask (0644 / 0755 under umask 022), so a shared store or run stays readable by the group.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    without an error, removed when it raises.

    Args:
        suffix: the temporary name's ending, for writers that pick the format from it
            (".png", ".npz", ".wav").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # After the write: some writers (safetensors) set 0600 themselves.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temp files that a killed writer of ``path`` left beside it; returns what was removed.

    Temp names carry the writer's pid (``.<name>.tmp-<pid>-<random>``): one whose process is gone
    can never be renamed into place, so the next write of the same file clears it.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.tmp-*"):
        pid = tmp.name[len(path.name) + 6 :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass
    return removed


def sweep_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """:func:`remove_stale_temps` for every temp file under ``folder`` (a run or store being resumed)."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp-*"):
        name = tmp.name[1:].rsplit(".tmp-", 1)[0]
        removed += remove_stale_temps(tmp.parent / name)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters escaped."""
    import glob

    return glob.escape(name)


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new folder ``<parent>/<prefix><random>``, mode ``0o777 & ~umask`` (as ``mkdir``)."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(tmp, 0o777 & ~current_umask())
    return Path(tmp)


def current_umask() -> int:
    """This process's umask, read without changing it where Linux tells it (``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON atomically; returns ``path``."""
    return write_text(path, json.dumps(obj, indent=indent))
