"""Kill tests: run a command, SIGKILL it at seeded random moments, re-run it, and check the output.

A kill must never leave a half-written or lost output, temp files or live child processes::

    result = kill_and_rerun(cmd, out=tmp_path / "pool", kills=3, seed=0, max_delay_s=2.0)
    assert result.children_left == [] and result.temp_files == []

The reference (an uninterrupted run into another folder) is compared by the caller with
:func:`tree_digest`, which hashes every file's relative path and bytes (or a caller's projection).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Names that only a writer in progress leaves behind (atomic temp files, partial folders).
TEMP_MARKERS = (".tmp", ".partial", ".old-", "tmp", ".~")
#: Endings of SQLite's side files: present after a clean close only if a writer died mid-transaction.
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


def descendants(pid: int) -> list[int]:
    """PIDs of all live processes whose ancestry includes ``pid`` (from /proc), excluding zombies."""
    parents: dict[int, int] = {}
    states: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        states[int(entry)], parents[int(entry)] = rest[0], int(rest[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and states.get(child) != "Z":
                out.append(child)
                frontier.append(child)
    return out


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of live processes whose command line or environment mentions ``marker``.

    Orphans are reparented to PID 1 when their parent dies, so after a kill they are found by a
    marker passed in the environment (``SOUNDLOOM_KILLTEST``) rather than by ancestry.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and f"SOUNDLOOM_KILLTEST={marker}".encode() in env:
            found.append(int(entry))
    return found


def temp_leftovers(folder: Path) -> list[str]:
    """Relative paths under ``folder`` whose names look like a writer's temp files.

    That is: names holding a :data:`TEMP_MARKERS` entry, hidden names (``core.atomic`` writes
    ``.<name>.<random><suffix>`` beside its target), and SQLite journals (:data:`SQLITE_SIDE_FILES`).
    """
    if not folder.exists():
        return []
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if (any(m in p.name for m in TEMP_MARKERS) and not p.name.endswith(".py"))
        or p.name.startswith(".")
        or p.name.endswith(SQLITE_SIDE_FILES)
    )


def tree_digest(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (names in ``skip`` left out)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


@dataclass
class KillResult:
    """What the kills left: per kill, whether the process was still running when killed."""

    killed_running: list[bool] = field(default_factory=list)
    children_left: list[int] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    final_returncode: int | None = None
    final_stderr: str = ""


def kill_and_rerun(
    cmd: list[str],
    out: Path,
    *,
    kills: int = 3,
    seed: int = 0,
    min_delay_s: float = 0.2,
    max_delay_s: float = 2.0,
    env: dict[str, str] | None = None,
    settle_s: float = 5.0,
    final_timeout_s: float = 240.0,
    after_kill: Callable[[int], None] | None = None,
) -> KillResult:
    """Run ``cmd`` ``kills`` times, each SIGKILLed after a seeded random delay (halved for the rest each time a
    run finishes before its kill), then once to the end.

    After each kill, waits (bounded by ``settle_s``) for every process carrying this run's marker
    to exit; any still alive are recorded in ``children_left`` (and then killed, so a failing test
    leaves no debris). ``after_kill(i)``, when given, is called then (to inspect what kill ``i``
    left). ``temp_files`` lists temp names under ``out`` after the final run.
    """
    rng = random.Random(seed)
    marker = f"{os.getpid()}-{seed}-{rng.random():.12f}"
    run_env = {**os.environ, **(env or {}), "SOUNDLOOM_KILLTEST": marker}
    result = KillResult()
    scale = 1.0
    for i in range(kills):
        proc = subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=scale * rng.uniform(min_delay_s, max_delay_s))
            result.killed_running.append(False)
            # It finished before its kill: the delays (scaled from a timed run under other load) are too long
            # now, so the next ones are halved rather than all missing.
            scale *= 0.5
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            result.killed_running.append(True)
        deadline = time.monotonic() + settle_s
        while processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = processes_with_marker(marker)
        result.children_left.extend(left)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if after_kill is not None:
            after_kill(i)
    final = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=final_timeout_s)
    result.final_returncode, result.final_stderr = final.returncode, final.stderr
    result.temp_files = temp_leftovers(out)
    return result
