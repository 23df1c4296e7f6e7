"""Session-wide settings for the test processes.

librosa compiles its numba functions with ``cache=True`` into its own ``__pycache__``; pytest-xdist
workers compiling the same function at once can read each other's half-written cache files and
crash with SIGSEGV (seen in ``librosa.util.peak_pick`` on a fresh install). Each worker (and the
processes its tests start, which inherit the environment) gets its own numba cache folder.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

_cache = tempfile.mkdtemp(prefix=f"numba-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
os.environ["NUMBA_CACHE_DIR"] = _cache
atexit.register(functools.partial(shutil.rmtree, _cache, ignore_errors=True))
