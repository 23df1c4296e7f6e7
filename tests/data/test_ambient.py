"""Built-in ambient material: deterministic, in the class-folder layout, and the song kinds differ as promised."""

from __future__ import annotations

import csv

import librosa
import numpy as np
import pytest
import soundfile as sf

from soundloom.core.errors import ParameterError
from soundloom.core.levels import loudness_lufs
from soundloom.data.ambient import (
    AMBIENT_ONESHOT_CLASSES,
    make_ambient_oneshot,
    make_ambient_song,
    write_ambient_oneshots,
    write_ambient_songs,
)
from soundloom.data.layouts import discover

SR = 16000


def centroid_hz(wav: np.ndarray) -> float:
    """Power-weighted mean frequency of the whole clip (Hz)."""
    power = np.abs(np.fft.rfft(wav)) ** 2
    return float((np.fft.rfftfreq(wav.size, 1.0 / SR) * power).sum() / power.sum())


def test_oneshots_are_deterministic_and_independent_of_the_count(tmp_path):
    a = write_ambient_oneshots(tmp_path / "a", n_per_class=2, sample_rate=SR)
    b = write_ambient_oneshots(tmp_path / "b", n_per_class=3, sample_rate=SR)
    assert len(a) == 6 and len(b) == 9
    for path in a:
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        np.testing.assert_array_equal(sf.read(path)[0], sf.read(twin)[0])
    assert not np.array_equal(make_ambient_oneshot("bird", 0, 0, SR), make_ambient_oneshot("bird", 0, 1, SR))


def test_oneshots_are_a_labelled_class_folder_data_set(tmp_path):
    write_ambient_oneshots(tmp_path, n_per_class=2, sample_rate=SR)
    data = discover(tmp_path)
    assert data.layout == "classes"
    assert sorted({item.labels["label"] for item in data.items}) == sorted(AMBIENT_ONESHOT_CLASSES)


@pytest.mark.parametrize("kind", AMBIENT_ONESHOT_CLASSES)
def test_oneshots_are_one_second_finite_and_unclipped(kind):
    wav = make_ambient_oneshot(kind, seed=3, index=4, sample_rate=SR)
    assert wav.shape == (SR,) and wav.dtype == np.float32
    assert np.all(np.isfinite(wav)) and 0.5 <= np.abs(wav).max() <= 0.9
    assert abs(wav[-1]) < 1e-3  # faded: no click when the clip ends


def test_birds_are_high_and_drops_are_short():
    bird = make_ambient_oneshot("bird", 0, 0, SR)
    drop = make_ambient_oneshot("drop", 0, 0, SR)
    assert centroid_hz(bird) > 1500.0
    assert np.flatnonzero(np.abs(drop) > 1e-3).max() < 0.4 * SR


def song_figures(kind: str) -> tuple[float, float, float]:
    """Loudness (LUFS), onsets per minute (absolute threshold), spectral centroid (Hz) of a 10 s song."""
    wav, _ = make_ambient_song(kind, seed=1, seconds=10.0, sample_rate=SR)
    env = librosa.onset.onset_strength(y=wav, sr=SR)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=SR, normalize=False, delta=1.0, wait=4)
    return loudness_lufs(wav, SR), len(onsets) * 6.0, centroid_hz(wav)


def test_song_kinds_span_calm_to_busy():
    drone, pad, water, pulse = (song_figures(k) for k in ("drone", "pad", "water", "pulse"))
    assert drone[0] < water[0] - 3 and pad[0] < pulse[0]  # the calm kinds are quieter
    assert max(drone[1], pad[1]) * 3 < min(water[1], pulse[1])  # and have far fewer onsets
    assert drone[2] < 1000.0 < water[2]  # and are darker


def test_songs_are_written_with_an_index(tmp_path):
    paths = write_ambient_songs(tmp_path, n_songs=2, seconds=4.0, sample_rate=SR, kinds=("texture", "pulse"))
    assert [p.name for p in paths] == ["ambient_000_texture.wav", "ambient_001_pulse.wav"]
    rows = list(csv.DictReader(open(tmp_path / "index.csv")))
    assert [r["kind"] for r in rows] == ["texture", "pulse"]
    assert rows[0]["tempo_bpm"] == "" and 90.0 <= float(rows[1]["tempo_bpm"]) <= 120.0
    info = sf.info(paths[0])
    assert (info.samplerate, info.frames) == (SR, 4 * SR)


def test_unknown_kinds_are_parameter_errors():
    with pytest.raises(ParameterError):
        make_ambient_song("thunder")
    with pytest.raises(ParameterError):
        make_ambient_oneshot("whale")
