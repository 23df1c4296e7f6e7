"""Built-in synthetic data: classes, determinism, formats."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from soundloom.data.layouts import discover
from soundloom.data.synth import ONESHOT_CLASSES, make_oneshot, make_song, write_oneshots, write_songs


def test_oneshots_are_labeled_classes(tmp_path):
    paths = write_oneshots(tmp_path / "shots", n_per_class=2, seed=3)
    assert len(ONESHOT_CLASSES) >= 8 and len(paths) == 2 * len(ONESHOT_CLASSES)
    ds = discover(tmp_path / "shots")
    assert ds.layout == "classes"
    assert sorted({it.labels["label"] for it in ds.items}) == sorted(ONESHOT_CLASSES)
    for p in paths:
        wav, sr = sf.read(p, dtype="float32")
        assert sr == 16000 and wav.shape == (16000,)
        assert np.isfinite(wav).all() and 0.4 < np.abs(wav).max() <= 0.91


def test_oneshots_are_deterministic_and_vary(tmp_path):
    a = write_oneshots(tmp_path / "a", n_per_class=2, seed=1)
    b = write_oneshots(tmp_path / "b", n_per_class=3, seed=1)  # a larger set extends a smaller one
    c = write_oneshots(tmp_path / "c", n_per_class=2, seed=2)
    by_name = {p.name: p for p in b}
    assert all(p.read_bytes() == by_name[p.name].read_bytes() for p in a)
    assert all(pa.read_bytes() != pc.read_bytes() for pa, pc in zip(a, c))
    for kind in ONESHOT_CLASSES:  # items of one class differ in pitch / decay / timbre
        x, y = make_oneshot(kind, 0, 0), make_oneshot(kind, 0, 1)
        assert not np.allclose(x, y)


def test_songs_are_deterministic_and_steady(tmp_path):
    paths = write_songs(tmp_path / "songs", n_songs=2, seconds=6.0, seed=0)
    again = write_songs(tmp_path / "again", n_songs=2, seconds=6.0, seed=0)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    assert paths[0].read_bytes() != paths[1].read_bytes()
    info = sf.info(paths[0])
    assert info.samplerate == 22050 and info.frames == 6 * 22050
    wav, facts = make_song(0, 6.0)
    assert 80 <= facts["tempo_bpm"] <= 140 and np.abs(wav).max() <= 0.9 + 1e-6
    # Beats: the onset envelope repeats at the beat period (autocorrelation peak at one beat).
    env = np.abs(wav).reshape(-1, 441).max(axis=1)  # 20 ms frames
    flux = np.maximum(np.diff(env), 0)
    ac = np.correlate(flux, flux, "full")[len(flux) - 1 :]
    beat_frames = 60.0 / facts["tempo_bpm"] * 50
    lag = int(np.argmax(ac[10:60])) + 10
    assert min(abs(lag - beat_frames * m) for m in (0.5, 1, 2)) <= 1.5
    assert (tmp_path / "songs/index.csv").read_text().startswith("file,tempo_bpm,key")
