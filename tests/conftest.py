"""Session-wide settings for the test processes.

librosa compiles its numba functions with ``cache=True`` into its own ``__pycache__``; pytest-xdist
workers compiling the same function at once can read each other's half-written cache files and
crash with SIGSEGV (seen in ``librosa.util.peak_pick`` on a fresh install). Each worker (and the
processes its tests start, which inherit the environment) gets a numba cache folder that no other
running process writes: one kept between sessions under ``~/.cache/soundloom-tests`` and held by a
lock for this session (so later sessions skip the 20-80 s of compiling), or a fresh temporary one
when every kept folder is in use by another session. Thread pools: one thread each (below).
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import os
import shutil
import tempfile
from pathlib import Path


def _numba_cache() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "soundloom-tests"
    for i in range(8):
        folder = base / f"numba-{worker}-{i}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / ".lock", "w")  # noqa: SIM115 (held open, and locked, for the whole session)
        except OSError:
            break
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        _held.append(lock)
        return str(folder)
    folder = tempfile.mkdtemp(prefix=f"numba-{worker}-")
    atexit.register(functools.partial(shutil.rmtree, folder, ignore_errors=True))
    return folder


_held: list = []
os.environ["NUMBA_CACHE_DIR"] = _numba_cache()
# pytest-xdist runs one worker per core: the processes tests start (CLI runs, the demo) get one thread per
# library pool, as the in-process tests set for torch; pools sized for the whole machine spin while they wait
# for each other (see soundloom.cli.demo_cmds.lane_threads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


# The longest tests, started first: pytest-xdist hands tests out in collection order, and these (the quick
# demo about 3 minutes on 2 cores, the kill-and-resume runs about a minute) at the end of it ran while the
# other worker sat idle with nothing left to take.
_FIRST = (
    "tests/test_demo.py::test_quick_demo_makes_report_with_players",
    "tests/sounds/train/test_kills.py::test_killed_training_resumes_to_a_complete_run",
    "tests/streams/test_kills.py::test_killed_stream_leaves_no_file_or_the_whole_one",
)


def pytest_collection_modifyitems(items) -> None:
    items.sort(key=lambda item: _FIRST.index(item.nodeid) if item.nodeid in _FIRST else len(_FIRST))
