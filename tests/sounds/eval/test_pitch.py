"""Pitch judge on tones of known pitch: hits, near misses, silence and noise, contour error."""

from __future__ import annotations

import numpy as np
import pytest

from soundloom.core.errors import ParameterError
from soundloom.sounds.evaluation.pitch import contour_error_cents, pitch_accuracy

SR = 16000


def harmonic(f0_hz: np.ndarray | float, seconds: float = 0.4, sr: int = SR) -> np.ndarray:
    """Harmonic tone (5 partials) following ``f0_hz`` (a constant or one value per sample)."""
    n = int(seconds * sr)
    f0 = np.broadcast_to(np.asarray(f0_hz, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.3 * sum(np.sin(h * phase) / h for h in range(1, 6))).astype(np.float32)


def midi_hz(m: float) -> float:
    return 440.0 * 2 ** ((m - 69) / 12)


MIDI = [48, 57, 64, 72]


def test_tones_at_the_asked_pitch_all_hit_and_a_semitone_off_all_miss():
    right = pitch_accuracy([harmonic(midi_hz(m)) for m in MIDI], SR, MIDI)
    assert right["accuracy"] == 1.0 and right["unvoiced"] == 0
    assert all(abs(c["error_cents"]) < 10 for c in right["per_clip"])
    off = pitch_accuracy([harmonic(midi_hz(m + 1)) for m in MIDI], SR, MIDI)
    assert off["accuracy"] == 0.0 and off["unvoiced"] == 0
    assert all(80 < c["error_cents"] < 120 for c in off["per_clip"])


def test_other_rates_and_unvoiced_clips_are_counted_apart():
    rng = np.random.default_rng(0)
    clips = [
        harmonic(midi_hz(60), sr=8000),
        np.zeros(3200, dtype=np.float32),
        (0.3 * rng.normal(size=3200)).astype(np.float32),
    ]
    result = pitch_accuracy(clips, 8000, [60, 60, 60])
    assert result["hits"] == 1 and result["misses"] == 2 and result["unvoiced"] == 2
    assert result["per_clip"][1]["f0_hz"] is None


def test_contour_error_of_a_glide():
    glide = np.geomspace(220.0, 330.0, int(0.5 * SR))
    truth = [harmonic(glide, 0.5)]
    same = contour_error_cents([harmonic(glide, 0.5)], truth, SR, fmin_hz=100, fmax_hz=800)
    assert same["median_cents"] < 10
    sharp = contour_error_cents([harmonic(glide * 2 ** (1 / 12), 0.5)], truth, SR, fmin_hz=100, fmax_hz=800)
    assert 80 < sharp["median_cents"] < 120
    silent = contour_error_cents([np.zeros(8000, dtype=np.float32)], truth, SR, fmin_hz=100, fmax_hz=800)
    assert silent["median_cents"] is None and silent["no_overlap"] == 1


def test_counts_must_match():
    with pytest.raises(ParameterError):
        pitch_accuracy([harmonic(440.0)], SR, [69, 70])
