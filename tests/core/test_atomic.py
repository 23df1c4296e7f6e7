"""atomic: a failed write leaves the old file and no temporary behind."""

import json

import pytest

from soundloom.core.atomic import atomic_path, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = write_json(tmp_path / "run" / "config.json", {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"a": 2, "half')  # killed mid-write
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["config.json"]
    write_json(target, {"a": 3})
    assert json.loads(target.read_text()) == {"a": 3} and len(list(target.parent.iterdir())) == 1


def test_temporary_name_keeps_the_suffix_writers_need(tmp_path):
    with atomic_path(tmp_path / "plot.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp.name.startswith(".plot.png.")
        tmp.write_bytes(b"x")
    assert (tmp_path / "plot.png").read_bytes() == b"x"


def test_a_killed_writers_temp_file_is_cleared_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    from soundloom.core.atomic import write_text

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f".run.json.tmp-{gone.pid}-x1"
    stale.write_text("half a file")
    live = tmp_path / f".run.json.tmp-{os.getpid()}-x2"  # a writer still running keeps its temp file
    live.write_text("being written")
    other = tmp_path / f".other.json.tmp-{gone.pid}-x3"  # another file's temp is not this write's business
    other.write_text("x")
    write_text(tmp_path / "run.json", "{}")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "run.json").read_text() == "{}"
