"""A hostile-input corpus for scan and prepare: every bad thing ends in a report line naming it,
never a traceback, and never changes the features of the good files."""

from __future__ import annotations

import builtins
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundloom.core.errors import AudioError
from soundloom.core.io import check_audio_file, load_audio
from soundloom.data import layouts
from soundloom.data.layouts import discover
from soundloom.data.prepare import PrepareConfig, prepare
from soundloom.data.scan import scan

from .conftest import tone, write

SR = 8000
GOOD = {"a": ["a0.wav", "a1.wav", "a2.flac"], "b": ["b0.wav", "b1.wav"]}
#: relative path -> the words its reason must hold.
HOSTILE = {
    "a/empty.wav": "empty",
    "a/headeronly.wav": "empty",
    "a/nan.wav": "non-finite",
    "a/inf.wav": "non-finite",
    "a/silent.wav": "silent",
    "a/truncated.wav": "not a decodable audio file",
    "a/random.mp3": "not a decodable audio file (format not recognised)",
    "a/random.flac": "not a decodable audio file (format not recognised)",
    "a/random.ogg": "not a decodable audio file (format not recognised)",
    "a/random.wav": "not a decodable audio file (format not recognised)",
    "a/dir.wav": None,  # a folder named like audio: listed as a folder, never read (nothing in it)
    "a/nowhere.wav": "broken link",
    "a/self.wav": "link loop",
    "b/up": "loop",  # b/up -> .. : a folder link back into the data set
    "b/pipe.wav": "not a regular file (a named pipe)",
}


def _clean(root: Path) -> Path:
    for label, names in GOOD.items():
        for i, name in enumerate(names):
            write(root / label / name, tone(SR, 0.3 + 0.05 * i, 200.0 + 40 * i, seed=i), SR)
    return root


def _hostile(root: Path) -> Path:
    _clean(root)
    a, b = root / "a", root / "b"
    (a / "empty.wav").write_bytes(b"")
    write(a / "headeronly.wav", np.zeros(0, np.float32), SR)
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        x = tone(SR, 0.3, 300.0)
        x[500:510] = value
        write(a / name, x, SR, subtype="FLOAT")
    write(a / "silent.wav", np.zeros(int(0.3 * SR), np.float32), SR)
    (a / "truncated.wav").write_bytes((a / "a0.wav").read_bytes()[:30])
    rng = np.random.default_rng(3)
    for ext in ("mp3", "flac", "ogg", "wav"):
        (a / f"random.{ext}").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (a / "dir.wav").mkdir()
    (a / "nowhere.wav").symlink_to(root / "missing" / "x.wav")
    (a / "self.wav").symlink_to(a / "self.wav")
    (b / "up").symlink_to("..")
    os.mkfifo(b / "pipe.wav")
    return root


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    return _hostile(tmp_path / "hostile")


def _reasons(entries: list[dict], root: Path) -> dict[str, str]:
    return {os.path.relpath(e["path"], root): e["reason"] for e in entries}


def test_scan_names_every_hostile_entry_and_keeps_the_good(hostile_dir):
    report = scan(hostile_dir, workers=1)
    reasons = _reasons(report.bad, hostile_dir)
    for rel, words in HOSTILE.items():
        if words is None:
            assert not any(r.startswith(rel) for r in reasons), rel
        else:
            assert words in reasons[rel], (rel, reasons.get(rel))
    assert report.n_ok == sum(map(len, GOOD.values())) and report.layout == "classes"
    assert report.labels["label"] == {"a": 3, "b": 2}  # the loop link pulled no file into b
    assert set(report.bad_kinds) <= {"empty", "non-finite", "silent", "unreadable", "link", "not-audio"}


def test_scan_with_a_worker_pool_gives_the_same_report(hostile_dir):
    one = scan(hostile_dir, workers=1, batch_size=4)
    two = scan(hostile_dir, workers=2, batch_size=4)
    assert one.bad == two.bad and one.n_ok == two.n_ok


def test_prepare_skips_every_hostile_entry_and_good_features_do_not_change(hostile_dir, tmp_path):
    cfg = PrepareConfig(sample_rate=SR, seconds=0.5, normalization="range", max_db=50.0)
    ref = prepare(_clean(tmp_path / "clean"), tmp_path / "ref", cfg, workers=1)
    res = prepare(hostile_dir, tmp_path / "out", cfg, workers=2, batch_size=4)
    skipped = _reasons(json.loads((res.store / "skipped.json").read_text()), hostile_dir)
    for rel, words in HOSTILE.items():
        if words is not None:
            assert words in skipped[rel], (rel, skipped.get(rel))
    ref_feats = np.load(ref.store / "features.npy")
    feats = np.load(res.store / "features.npy")
    ref_ids = [it["id"] for it in json.loads((ref.store / "index.json").read_text())]
    ids = [it["id"] for it in json.loads((res.store / "index.json").read_text())]
    assert ids == ref_ids
    np.testing.assert_array_equal(feats, ref_feats)
    # A second run is up to date: the walk's finds (links, pipe) are no items to recompute.
    again = prepare(hostile_dir, tmp_path / "out", cfg, workers=1)
    assert again.n_computed == 0


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def test_unreadable_file_reads_permission_denied(tmp_path, monkeypatch):
    path = write(tmp_path / "locked.wav", tone(SR, 0.3, 300.0), SR)
    os.chmod(path, 0)
    if _is_root():
        # root reads a 000 file anyway: make the OS refuse as it does for other users, both to
        # libsndfile (which says only "System error.") and to the check that explains it.
        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if os.fspath(file) == str(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)

        def refusing_soundfile(*args, **kwargs):
            raise sf.LibsndfileError(2, f"Error opening {str(path)!r}: ")

        monkeypatch.setattr(builtins, "open", refusing_open)
        monkeypatch.setattr(sf, "SoundFile", refusing_soundfile)
        monkeypatch.setattr(sf, "read", refusing_soundfile)
    for check in (load_audio, check_audio_file):
        with pytest.raises(AudioError) as err:
            check(path)
        assert str(err.value) == f"{path}: permission denied"


def test_unreadable_folder_is_reported_not_raised(tmp_path, monkeypatch):
    root = _clean(tmp_path / "data")
    locked = root / "b" / "locked"
    write(locked / "hidden_inside.wav", tone(SR, 0.3, 300.0), SR)
    os.chmod(locked, 0)
    if _is_root():  # root lists a 000 folder anyway: refuse as the OS does for other users
        real_scandir = os.scandir

        def refusing_scandir(path="."):
            if os.fspath(path) == str(locked):
                raise PermissionError(errno.EACCES, "Permission denied", str(locked))
            return real_scandir(path)

        monkeypatch.setattr(layouts.os, "scandir", refusing_scandir)
    try:
        ds = discover(root, with_info=False)
        report = scan(ds, workers=1)
    finally:
        os.chmod(locked, 0o755)
    reasons = _reasons(report.bad, root)
    assert reasons["b/locked"] == "unreadable folder (permission denied)"
    assert report.n_ok == 5 and "b/locked/hidden_inside.wav" not in reasons


def test_long_file_is_checked_in_bounded_memory(tmp_path):
    """A 40 s stereo file (2.6 MB of float32) is judged block by block: peak well under it."""
    import tracemalloc

    rate, seconds = 16000, 40.0
    x = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(int(rate * seconds)) / rate).astype(np.float32)
    stereo = np.stack([x, x], axis=1)
    good = write(tmp_path / "long.wav", stereo, rate)
    stereo[-100, 1] = np.nan  # at the very end: every block must be looked at
    bad = write(tmp_path / "long_nan.wav", stereo, rate, subtype="FLOAT")
    silent = write(tmp_path / "long_silent.wav", np.zeros_like(stereo), rate)
    tracemalloc.start()
    try:
        info = check_audio_file(good, block_frames=1 << 14)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.frames == len(x) and info.channels == 2 and abs(info.duration_s - seconds) < 1e-6
    assert peak < 1 << 20, peak  # one block is 128 kB; the whole file would be 5 MB as float32
    with pytest.raises(AudioError, match="non-finite"):
        check_audio_file(bad, block_frames=1 << 14)
    with pytest.raises(AudioError, match="silent"):
        check_audio_file(silent, block_frames=1 << 14)
