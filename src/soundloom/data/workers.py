"""Worker processes that die with their parent: the pools of ``scan`` and ``prepare``.

A ``kill -9`` of the parent gives it no chance to stop its pool; forked workers would be
reparented to PID 1 and go on holding memory and appending to the journal. Each worker therefore
asks Linux to kill it when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and checks the
parent once more right after (it may have died before the request); where ``prctl`` is missing
a daemon thread watches the parent pid instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Seconds between looks at the parent pid where prctl is not available.
WATCH_INTERVAL_S = 0.5


def worker_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()
) -> ProcessPoolExecutor:
    """A process pool (fork on Linux: workers start in milliseconds and import nothing) whose
    workers end when this process ends, however it ends; ``initializer(*initargs)`` runs after."""
    ctx = mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context()
    return ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init, initargs=(os.getpid(), initializer, initargs)
    )


def _init(parent: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def die_with_parent(parent: int) -> None:
    """End this process when process ``parent`` ends (see the module docstring)."""
    if not _request_death_signal():
        threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _request_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)``; False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """Exit as soon as ``parent`` is no longer this process's parent (it died)."""
    stop = threading.Event()
    while not stop.wait(WATCH_INTERVAL_S):
        if os.getppid() != parent:
            os._exit(1)
