"""Kills: workers die with their parent, and a run killed anywhere in the store write is resumed
by the next one without recomputing and without leaving temp folders behind.

Each case runs prepare or scan in a subprocess (about 1 s each: the kill must be real).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from soundloom.data.prepare import PrepareConfig, prepare

from .conftest import tone, write

SR = 8000
CFG = PrepareConfig(sample_rate=SR, seconds=0.3)


def _data(root: Path, n: int = 3) -> Path:
    for label in ("a", "b"):
        for i in range(n):
            write(root / label / f"{label}{i}.wav", tone(SR, 0.3, 200.0 + 40 * i, seed=i), SR)
    return root


def _poll(predicate, timeout_s: float) -> bool:
    """True as soon as ``predicate()`` holds, False after ``timeout_s`` seconds."""
    pause = threading.Event()
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        pause.wait(0.05)
    return predicate()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    """Running (a zombie holds no memory and writes nothing, so it counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


BLOCKING_RUN = """
import sys, threading
from soundloom.data import prepare as P, scan as S
def block(*args, **kwargs):  # a worker busy for ever, so the kill lands mid-run
    threading.Event().wait()
P.process_batch = block
S.check_file = block
if sys.argv[1] == "prepare":
    P.prepare(sys.argv[2], sys.argv[3], P.PrepareConfig(sample_rate=8000, seconds=0.3), workers=2, batch_size=1)
else:
    S.scan(sys.argv[2], workers=2, batch_size=1)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("command", ["prepare", "scan"])
def test_workers_die_when_the_parent_is_killed(tmp_path, command):
    src = _data(tmp_path / "data")
    proc = subprocess.Popen([sys.executable, "-c", BLOCKING_RUN, command, str(src), str(tmp_path / "out")])
    workers: list[int] = []
    try:
        assert _poll(lambda: len(_children(proc.pid)) >= 2, 60.0), "the pool never started"
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _poll(lambda: not any(_alive(p) for p in workers), 10.0), [p for p in workers if _alive(p)]
    finally:
        for pid in [proc.pid, *workers]:  # only what this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)


KILLED_RUN = """
import os, shutil, sys
from soundloom.data import prepare as P, store as S
point, calls = sys.argv[3], {"replace": 0}
real_replace = os.replace
def replace(a, b):
    calls["replace"] += 1
    if point == f"replace{calls['replace']}":
        os._exit(9)
    return real_replace(a, b)
os.replace = replace
if point == "json":  # after the features were moved into the temp store
    S._write_json = lambda *a, **k: os._exit(9)
if point == "rmtree":  # the new store is in place; the old one is not yet removed
    shutil.rmtree = lambda *a, **k: os._exit(9)
if point == "cleanup":  # the store is in place; the work folder is not yet removed
    P.remove_stale = lambda *a, **k: os._exit(9)
P.prepare(sys.argv[1], sys.argv[2], P.PrepareConfig(sample_rate=8000, seconds=0.3), workers=1)
"""


@pytest.mark.parametrize(
    "existing,point",
    [
        (False, "replace1"),  # before the features move into the temp store
        (False, "json"),  # features moved, store half written
        (False, "replace2"),  # store complete in its temp folder, not renamed
        (False, "cleanup"),  # store in place, work folder left
        (True, "replace2"),  # before the old store is moved aside
        (True, "replace3"),  # old store moved aside, new one not yet in place
        (True, "rmtree"),  # new store in place, old one left
    ],
)
def test_a_run_killed_in_the_store_write_is_resumed_without_recomputing(tmp_path, existing, point):
    src = _data(tmp_path / "data")
    out = tmp_path / "stores" / "feats"
    if existing:  # a store of the data set as it was; then one more file arrives
        prepare(src, out, CFG, workers=1)
        write(src / "b" / "b9.wav", tone(SR, 0.3, 500.0, seed=9), SR)
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(src), str(out), point])
    assert killed.returncode == 9  # the kill happened where it was meant to
    result = prepare(src, out, CFG, workers=1)
    assert result.n_computed == 0 and result.n_items == 6 + existing
    ref = prepare(src, tmp_path / "ref" / "feats", CFG, workers=1)
    np.testing.assert_array_equal(np.load(out / "features.npy"), np.load(ref.store / "features.npy"))
    index = [it["id"] for it in json.loads((out / "index.json").read_text())]
    assert index == [it["id"] for it in json.loads((ref.store / "index.json").read_text())]
    assert sorted(os.listdir(out.parent)) == ["feats"]  # no .tmp-*, .old-*, .partial left
    assert sorted(os.listdir(out)) == ["config.json", "features.npy", "index.json", "skipped.json", "stats.json"]
