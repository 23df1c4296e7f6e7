import numpy as np
import pytest

from soundloom.core import (
    loudness_lufs,
    normalize,
    normalize_loudness,
    normalize_peak,
    normalize_rms,
    peak_db,
    rms_db,
    true_peak_db,
)

from .conftest import harmonic_tone, noise_burst


@pytest.mark.parametrize("target", [-23.0, -14.0, -30.0])
def test_loudness_normalisation_hits_target(target):
    sr = 22050
    x = 0.05 * harmonic_tone(sr, 2.0)
    y = normalize_loudness(x, sr, target_lufs=target, headroom_db=None)
    assert loudness_lufs(y, sr) == pytest.approx(target, abs=0.5)


def test_loudness_agrees_with_pyloudnorm_reference():
    import pyloudnorm

    sr = 48000
    x = 0.2 * np.random.default_rng(1).standard_normal(sr * 3)
    assert loudness_lufs(x, sr) == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(x), abs=1e-6)


def test_short_clip_fallback_measures_loudness():
    sr = 16000
    long = harmonic_tone(sr, 1.0)
    short = long[: int(0.2 * sr)]  # shorter than the 400 ms block
    level = loudness_lufs(short, sr)
    assert np.isfinite(level) and -40 < level < 0
    y = normalize_loudness(short, sr, target_lufs=-23.0, headroom_db=None)
    assert loudness_lufs(y, sr) == pytest.approx(-23.0, abs=0.5)


def test_silence_is_not_amplified():
    sr = 16000
    silence = np.zeros(sr, np.float32)
    hiss = 1e-5 * noise_burst(sr, 1.0)
    for y in (normalize_loudness(silence, sr), normalize_peak(silence), normalize_rms(silence)):
        assert not y.any()
    assert np.abs(normalize_loudness(hiss, sr, target_lufs=-14)).max() == pytest.approx(np.abs(hiss).max())
    assert np.abs(normalize_peak(hiss)).max() == pytest.approx(np.abs(hiss).max())


def test_peak_and_rms_with_headroom():
    x = 0.1 * harmonic_tone()
    assert peak_db(normalize_peak(x, headroom_db=1.0)) == pytest.approx(-1.0, abs=1e-3)
    assert rms_db(normalize_rms(x, target_db=-20.0, headroom_db=0.1)) == pytest.approx(-20.0, abs=0.05)
    loud = normalize_rms(x, target_db=-3.0, headroom_db=1.0)  # peak limit wins over the target
    assert peak_db(loud) == pytest.approx(-1.0, abs=1e-3)


def test_loudness_headroom_limits_true_peak():
    sr = 22050
    x = 0.01 * harmonic_tone(sr, 2.0)
    y = normalize_loudness(x, sr, target_lufs=0.0, headroom_db=1.0, true_peak=True)
    assert true_peak_db(y, sr) <= -0.99
    assert normalize(x, sr, "none") is not None
    with pytest.raises(ValueError):
        normalize(x, sr, "bogus")
