"""Hostile input for pools: every bad song ends in a report line, every bad pool in one error line
naming the file; never a traceback, never a changed or lost good output."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundloom.cli import run_app
from soundloom.core.errors import PoolError
from soundloom.streams.catalog import ChunkCatalog, scan_songs
from soundloom.streams.chunking import SHORTEST_CHUNK_S, ChunkConfig

from .conftest import RATE, make_song

#: Bad song name -> a word its reason must hold.
HOSTILE = {
    "empty.wav": "empty",
    "one_sample.wav": "too short",
    "silent.wav": "silent",
    "nan.wav": "non-finite",
    "inf.wav": "non-finite",
    "random.mp3": "",
    "random.wav": "",
    "x.wav": "folder",
    "broken.wav": "broken link",
    "loop.wav": "link loop",
    "truncated.wav": "",
}
GOOD = ("good_a.wav", "good_b.flac")


def make_hostile_songs(folder: Path) -> Path:
    """Two good 4 s songs and one song of each hostile kind in :data:`HOSTILE`."""
    folder.mkdir(parents=True)
    sf.write(folder / GOOD[0], make_song(4.0, 120, (220.0, 277.2), seed=1), RATE)
    sf.write(folder / GOOD[1], make_song(4.0, 100, (196.0, 246.9), seed=2), RATE)
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "one_sample.wav", np.array([0.5], np.float32), RATE)
    sf.write(folder / "silent.wav", np.zeros(2 * RATE, np.float32), RATE)
    for name, bad in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        wav = make_song(2.0, 120, (220.0,), seed=3)
        wav[RATE // 2] = bad
        sf.write(folder / name, wav, RATE, subtype="FLOAT")
    rng = np.random.default_rng(0)
    (folder / "random.mp3").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (folder / "random.wav").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (folder / "x.wav").mkdir()
    os.symlink("nowhere.wav", folder / "broken.wav")
    os.symlink("loop.wav", folder / "loop.wav")
    (folder / "truncated.wav").write_bytes((folder / GOOD[0]).read_bytes()[:30])
    return folder


@pytest.fixture
def hostile(tmp_path) -> Path:
    return make_hostile_songs(tmp_path / "songs")


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


def test_chunk_skips_each_bad_song_with_a_reason_and_keeps_the_good(hostile, tmp_path, capsys):
    pool = tmp_path / "pool"
    assert run_app(["chunk", str(hostile), "--out", str(pool), "--seconds", "1"]) == 0
    out, err = capsys.readouterr()
    _no_traceback(out + err)
    assert f"added 2 songs (0.1 min), {len(HOSTILE)} skipped" in out
    for name, word in HOSTILE.items():
        line = next(x for x in out.splitlines() if x.startswith("skipped ") and x.split(":")[0].endswith(name))
        assert word in line, line
    listed = {Path(s["path"]).name: s["reason"] for s in json.loads((pool / "skipped.json").read_text())}
    assert set(listed) == set(HOSTILE) and all(r for r in listed.values())
    with ChunkCatalog(pool, create=False) as c:
        assert sorted(Path(s.path).name for s in c.songs()) == sorted(GOOD)
        t = c.chunks()
        # every chunk is one a renderer can use: long enough, finite features
        assert len(t) == 8 and np.all((t.end - t.start) >= SHORTEST_CHUNK_S * RATE)
        for col in (t.rms_db, t.loudness_lufs, t.centroid_hz, t.head_spec, t.tail_spec):
            assert np.all(np.isfinite(col))


def test_a_fixed_song_leaves_the_skipped_list(hostile, tmp_path, capsys):
    pool = tmp_path / "pool"
    run_app(["chunk", str(hostile), "--out", str(pool), "--seconds", "1"])
    sf.write(hostile / "nan.wav", make_song(2.0, 90, (330.0,), seed=5), RATE, subtype="FLOAT")
    capsys.readouterr()
    assert run_app(["chunk", str(hostile), "--out", str(pool), "--seconds", "1"]) == 0
    assert f"added 1 songs (0.0 min), {len(HOSTILE) - 1} skipped" in capsys.readouterr().out
    names = {Path(s["path"]).name for s in json.loads((pool / "skipped.json").read_text())}
    assert "nan.wav" not in names and len(names) == len(HOSTILE) - 1


def test_unreadable_song_is_skipped_as_permission_denied(tmp_path, monkeypatch):
    # Tests run as root (chmod does not block reads): the read itself is made to fail.
    import soundloom.streams.catalog as catalog_mod

    songs = tmp_path / "songs"
    songs.mkdir()
    sf.write(songs / "locked.wav", make_song(2.0, 120, (220.0,), seed=0), RATE)
    sf.write(songs / "open.wav", make_song(2.0, 100, (330.0,), seed=1), RATE)
    real = catalog_mod.content_hash

    def locked(path, *a, **k):
        if Path(path).name == "locked.wav":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(catalog_mod, "content_hash", locked)
    skipped = []
    with ChunkCatalog(tmp_path / "pool") as c:
        added = c.add_songs(scan_songs(songs).paths, ChunkConfig(seconds=1.0), on_skip=lambda p, r: skipped.append(r))
    assert [Path(s.path).name for s in added] == ["open.wav"] and skipped == ["permission denied"]


def test_scan_names_what_the_walk_cannot_use(hostile):
    found = scan_songs(hostile)
    reasons = {Path(s["path"]).name: s["reason"] for s in found.skipped}
    assert reasons == {
        "x.wav": "a folder, not an audio file",
        "broken.wav": "broken link (its target does not exist)",
        "loop.wav": "link loop (the link points back to itself)",
    }
    assert "x.wav" not in {p.name for p in found.paths} and len(found.paths) == len(GOOD) + len(HOSTILE) - 3


# -- bad pools --------------------------------------------------------------------------------


@pytest.fixture
def good_pool(hostile, tmp_path) -> Path:
    pool = tmp_path / "pool"
    assert run_app(["chunk", str(hostile), "--out", str(pool), "--seconds", "1"]) == 0
    return pool


def _one_line_error(capsys, argv: list[str], *words: str) -> str:
    capsys.readouterr()
    assert run_app(argv) == 2
    out, err = capsys.readouterr()
    _no_traceback(out + err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("content", [b"this is not a database" * 10, b"\x00" * 4096], ids=["text", "zeros"])
def test_corrupt_catalog_is_a_pool_error_for_chunk_stream_and_serve(good_pool, hostile, tmp_path, capsys, content):
    db = good_pool / "catalog.sqlite"
    db.write_bytes(content)
    for argv in (
        ["chunk", str(hostile), "--out", str(good_pool)],
        ["stream", str(good_pool), "--model", "features", "--minutes", "0.1", "--out", str(tmp_path / "x.wav")],
        ["serve", str(good_pool), "--port", "1"],
    ):
        _one_line_error(capsys, argv, str(db), "not a soundloom pool")
        assert db.read_bytes() == content  # never "repaired" into a new pool
    assert not (tmp_path / "x.wav").exists()


def test_foreign_and_empty_catalogs_are_refused_unchanged(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    con = sqlite3.connect(foreign / "catalog.sqlite")
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()
    before = (foreign / "catalog.sqlite").read_bytes()
    with pytest.raises(PoolError, match="not a soundloom pool"):
        ChunkCatalog(foreign)  # not even with create=True: it is someone else's database
    assert (foreign / "catalog.sqlite").read_bytes() == before
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "catalog.sqlite").write_bytes(b"")
    _one_line_error(
        capsys,
        ["stream", str(empty), "--model", "features", "--out", str(tmp_path / "x.wav")],
        "catalog.sqlite",
        "empty catalog",
    )


def test_a_pool_without_songs_is_refused_by_serve(tmp_path, capsys):
    with ChunkCatalog(tmp_path / "pool"):
        pass
    _one_line_error(capsys, ["serve", str(tmp_path / "pool"), "--port", "1"], "no chunks")


def test_deleted_or_changed_songs_are_named_and_chunk_repairs_the_pool(good_pool, hostile, capsys):
    from soundloom.studio.app import create_app

    with ChunkCatalog(good_pool, create=False) as c:
        rows_before = c.db.execute("SELECT path, content_hash FROM songs ORDER BY id").fetchall()
    sf.write(hostile / GOOD[1], make_song(3.0, 100, (196.0,), seed=9), RATE)  # changed: 3 s now
    with pytest.raises(PoolError, match="changed since chunking"):
        create_app(good_pool, "features")
    os.unlink(hostile / GOOD[0])
    with pytest.raises(PoolError, match=GOOD[0]):
        create_app(good_pool, "features")
    capsys.readouterr()
    assert run_app(["chunk", str(hostile), "--out", str(good_pool), "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert f"removed {hostile / GOOD[0]}" in out and "added 1 songs" in out
    with ChunkCatalog(good_pool, create=False) as c:
        rows = c.db.execute("SELECT path, content_hash FROM songs ORDER BY id").fetchall()
    assert [Path(p).name for p, _ in rows] == [GOOD[1]] and rows[0][1] != rows_before[1][1]
    create_app(good_pool, "features")  # serves again


def test_missing_embeddings_are_recomputed(good_pool, tmp_path, capsys):
    out = tmp_path / "a.wav"
    argv = ["stream", str(good_pool), "--model", "features", "--minutes", "0.1", "--out", str(out), "--no-plot"]
    assert run_app(argv) == 0
    first = out.read_bytes()
    shutil.rmtree(good_pool / "embeddings")
    out.unlink()
    assert run_app(argv) == 0 and out.read_bytes() == first


def test_out_naming_a_file_is_one_line(hostile, capsys):
    target = hostile / GOOD[0]
    before = target.read_bytes()
    _one_line_error(capsys, ["chunk", str(hostile), "--out", str(target)], str(target), "not a folder")
    assert target.read_bytes() == before


def test_serve_port_out_of_range_is_a_usage_error(good_pool, capsys):
    capsys.readouterr()
    assert run_app(["serve", str(good_pool), "--port", "99999"]) == 2
    out, err = capsys.readouterr()
    _no_traceback(out + err)
    assert "--port" in err and "65535" in err and "soundloom:" not in out
