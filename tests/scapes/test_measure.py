"""Soundscape measurement on signals with known answers."""

import json

import numpy as np
import pyloudnorm
import pytest

from soundloom.core.errors import DataError
from soundloom.core.io import write_audio
from soundloom.scapes.measure import collisions, loudness_range, measure, measure_file, short_term_loudness

SR = 16000


def tone(seconds: float, amplitude: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_a_steady_1khz_tone_reads_its_level_and_no_range():
    # BS.1770 calibration: a 1 kHz sine of peak A in one channel reads 20 log10(A) - 3.01 LUFS.
    m = measure(tone(20.0, 0.1)[None, :], SR)
    assert m.short_term_mean_lufs == pytest.approx(-23.01, abs=0.5)
    assert m.integrated_lufs == pytest.approx(-23.01, abs=0.5)
    assert m.short_term_max_lufs - m.short_term_min_lufs < 0.1
    assert m.loudness_range_lu < 0.1
    assert m.spectral_centroid_hz == pytest.approx(1000.0, rel=0.05)
    assert m.peak_dbfs == pytest.approx(-20.0, abs=0.05)
    assert m.true_peak_dbtp == pytest.approx(-20.0, abs=0.1)
    assert m.events is None


def test_stereo_sums_channels():
    x = tone(10.0, 0.1)
    assert measure(np.stack([x, x]), SR).short_term_mean_lufs == pytest.approx(-20.0, abs=0.5)


def alternating(levels_db=(-20.0, -30.0), segment_s=10.0, repeats=4) -> np.ndarray:
    return np.concatenate([tone(segment_s, 10 ** (db / 20)) for _ in range(repeats) for db in levels_db])


def test_two_alternating_levels_give_their_difference_as_lra():
    m = measure(alternating()[None, :], SR)
    assert m.loudness_range_lu == pytest.approx(10.0, abs=1.0)


def test_lra_agrees_with_pyloudnorm():
    x = alternating((-18.0, -25.0, -31.0), segment_s=6.0, repeats=3)
    ours = loudness_range(short_term_loudness(x[None, :], SR))
    theirs = pyloudnorm.Meter(SR).loudness_range(x.astype(np.float64))
    assert ours == pytest.approx(theirs, abs=0.5)


def test_relative_gate_ignores_quiet_passages():
    # -20 dB tone with -50 dB passages: the quiet part falls under the -20 LU relative gate.
    x = alternating((-20.0, -50.0), segment_s=10.0, repeats=3)
    st = short_term_loudness(x[None, :], SR)
    assert np.percentile(st, 95) - np.percentile(st, 10) > 25.0  # ungated
    assert loudness_range(st) < 8.0  # only the 3 s windows across a step remain above the gate


def test_silence_has_no_range_and_short_clips_have_no_short_term_values():
    assert loudness_range(short_term_loudness(np.zeros((1, 5 * SR)), SR)) == 0.0
    assert short_term_loudness(np.zeros((1, SR)), SR).size == 0


def test_onset_density_counts_plucks():
    t = np.arange(SR // 4) / SR
    pluck = 0.5 * np.exp(-20 * t) * np.sin(2 * np.pi * 440 * t)
    x = np.zeros(30 * SR, np.float32)
    for start in range(SR // 2, x.size - pluck.size, SR):  # one pluck a second
        x[start : start + pluck.size] = pluck
    assert measure(x, SR).onsets_per_min == pytest.approx(60.0, rel=0.1)


def test_events_and_collisions_come_from_the_score():
    events = [{"time_s": t, "min_spacing_s": 2.0} for t in (1.0, 4.0, 5.0, 9.0, 10.5)]
    assert collisions(events) == 2
    assert collisions(events[:2]) == 0
    m = measure(tone(30.0, 0.1), SR, {"events": events, "skipped": [{}]})
    assert (m.events, m.collisions, m.skipped) == (5, 2, 1)
    assert m.events_per_min == pytest.approx(10.0)


def test_measure_file_reads_audio_and_score(tmp_path):
    wav = write_audio(tmp_path / "s.wav", np.stack([tone(10.0, 0.1)] * 2), SR)
    score = tmp_path / "s.json"
    score.write_text(json.dumps({"events": [{"time_s": 1.0, "min_spacing_s": 1.0}]}))
    m = measure_file(wav, score)
    assert m.events == 1 and m.short_term_mean_lufs == pytest.approx(-20.0, abs=0.5)
    assert json.loads(json.dumps(m.to_dict()))["events"] == 1
    score.write_text("[1, 2]")
    with pytest.raises(DataError, match="s.json"):
        measure_file(wav, score)
    with pytest.raises(DataError, match="absent.json"):
        measure_file(wav, tmp_path / "absent.json")
