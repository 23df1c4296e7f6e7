"""Kill tests: `soundloom chunk` and `soundloom stream` SIGKILLed at seeded random moments, then re-run.

Each test runs the real console script several times (an uninterrupted reference, three killed
runs, a final run) on tiny songs, so each takes about a minute on two shared cores: that is the
reason they are over 10 s. What they check cannot be seen in-process: a kill is not an exception.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.killing import kill_and_rerun

from .conftest import RATE, make_song

SOUNDLOOM = [sys.executable, "-c", "from soundloom.cli import main; main()"]


@pytest.fixture(scope="module")
def kill_songs(tmp_path_factory) -> Path:
    """Six 4 s songs and two bad ones (chunk reports them on every run)."""
    d = tmp_path_factory.mktemp("kill_songs")
    for i in range(6):
        sf.write(d / f"song{i}.wav", make_song(4.0, 90 + 10 * i, (196.0 + 30 * i, 261.6), seed=i), RATE)
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "silent.wav", make_song(1.0, 90, (220.0,), seed=0) * 0, RATE)
    return d


def pool_rows(pool: Path) -> dict[str, list[tuple]]:
    """The catalog's meaning, not its bytes: meta, song, chunk and skipped rows in id order."""
    con = sqlite3.connect(pool / "catalog.sqlite")
    try:
        return {
            "meta": con.execute("SELECT key, value FROM meta ORDER BY key").fetchall(),
            "songs": con.execute(
                "SELECT id, path, content_hash, duration_s, sample_rate, tempo_bpm, loudness_lufs"
                " FROM songs ORDER BY id"
            ).fetchall(),
            "chunks": con.execute("SELECT * FROM chunks ORDER BY id").fetchall(),
            "skipped": con.execute("SELECT path, reason FROM skipped ORDER BY path").fetchall(),
        }
    finally:
        con.close()


def test_killed_chunk_reruns_to_the_same_pool(kill_songs, tmp_path):
    ref, pool = tmp_path / "ref", tmp_path / "pool"
    chunk = SOUNDLOOM + ["chunk", str(kill_songs), "--seconds", "1", "--out"]
    started = time.monotonic()
    done = subprocess.run(chunk + [str(ref)], capture_output=True, text=True, timeout=240)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    # kill points spread over the uninterrupted run's own duration, so they land on a fast or a slow machine
    result = kill_and_rerun(
        chunk + [str(pool)], pool, kills=3, seed=1, min_delay_s=0.15 * took, max_delay_s=0.85 * took
    )
    assert result.final_returncode == 0, result.final_stderr
    assert "Traceback" not in result.final_stderr and any(result.killed_running)
    assert result.children_left == [] and result.temp_files == []
    assert pool_rows(pool) == pool_rows(ref)
    assert (pool / "skipped.json").read_text() == (ref / "skipped.json").read_text()


def test_killed_stream_leaves_no_file_or_the_whole_one(kill_songs, tmp_path):
    pool = tmp_path / "pool"
    made = subprocess.run(
        SOUNDLOOM + ["chunk", str(kill_songs), "--seconds", "1", "--out", str(pool)], capture_output=True, timeout=240
    )
    assert made.returncode == 0
    ref_dir, out_dir = tmp_path / "ref", tmp_path / "out"
    ref_dir.mkdir()
    out_dir.mkdir()

    def stream(folder: Path) -> list[str]:
        return (
            SOUNDLOOM
            + ["stream", str(pool), "--model", "features", "--minutes", "1", "--no-plot"]
            + [
                "--out",
                str(folder / "x.wav"),
            ]
        )

    started = time.monotonic()
    done = subprocess.run(stream(ref_dir), capture_output=True, text=True, timeout=240)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    reference = sf.read(ref_dir / "x.wav", dtype="int16")[0]
    # after each kill: either no x.wav or a complete one equal to the reference
    states = []

    def check(_: int) -> None:
        out = out_dir / "x.wav"
        if not out.exists():
            states.append("none")
            return
        got = sf.read(out, dtype="int16")[0]
        assert got.shape == reference.shape and (got == reference).all()
        states.append("complete")
        out.unlink()  # so that the next kill is judged on its own

    result = kill_and_rerun(
        stream(out_dir), out_dir, kills=3, seed=2, min_delay_s=0.15 * took, max_delay_s=0.85 * took, after_kill=check
    )
    assert result.children_left == [] and result.temp_files == [], result
    assert result.final_returncode == 0 and "Traceback" not in result.final_stderr, result.final_stderr
    assert any(result.killed_running), "no run was killed while running: the delays are too long here"
    got = sf.read(out_dir / "x.wav", dtype="int16")[0]
    assert got.shape == reference.shape and (got == reference).all()
    assert len(states) == 3
