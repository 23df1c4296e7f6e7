"""Spectral floors on clips with known answers: a clean tone, the same over noise, silence, and noise in a tail too
quiet to count as sounding."""

import numpy as np
import pytest

from soundloom.core.floor import frame_floor_db, spectral_floor_db

SR = 8000


def tone(noise_db: float | None = None, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    wav = 0.5 * np.sin(2 * np.pi * 440 * t) * np.hanning(len(t))
    if noise_db is not None:
        wav = wav + 0.5 * 10 ** (noise_db / 20) * np.random.default_rng(seed).normal(size=len(t))
    return wav.astype(np.float32)


def test_noise_lifts_both_floors_toward_its_level():
    clean, noisy = tone(), tone(-40.0)
    avg = spectral_floor_db([clean, noisy], SR)
    frame = frame_floor_db([clean, noisy], SR)
    assert avg[0] < -80 and frame[0] < -70  # a Hann-windowed tone: its leakage only
    assert avg[1] > avg[0] + 20 and frame[1] > frame[0] + 20
    assert -60 < avg[1] < -20 and -60 < frame[1] < -20
    several = spectral_floor_db([clean, noisy], SR, (0.05, 0.5))
    assert several.shape == (2, 2) and (several[:, 0] <= several[:, 1]).all()  # the quieter share, the lower
    assert several[1, 0] == pytest.approx(spectral_floor_db([noisy], SR, 0.05)[0])


def test_silence_and_quiet_frames():
    assert frame_floor_db([np.zeros(SR // 2, np.float32)], SR)[0] == 0.0
    # noise only in the faded tail, more than active_db below the loudest frame: the frames that sound stay clean,
    # while the clip average takes the tail's noise in
    wav = tone(seconds=1.0)
    tail = slice(int(0.95 * SR), SR)
    wav[tail] += 0.5 * 10 ** (-60 / 20) * np.random.default_rng(1).normal(size=tail.stop - tail.start)
    assert frame_floor_db([wav], SR, active_db=20.0)[0] < spectral_floor_db([wav], SR)[0] - 10
