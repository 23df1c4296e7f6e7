"""True-peak limiter: the ceiling holds on hot signals, quiet ones pass untouched, blocks do not matter."""

import numpy as np
import pytest
from scipy import signal

from soundloom.core.levels import true_peak_db
from soundloom.scapes.limiter import TruePeakLimiter

SR = 48000


def run(limiter: TruePeakLimiter, x: np.ndarray, block: int) -> np.ndarray:
    parts = [limiter.process(x[:, i : i + block]) for i in range(0, x.shape[1], block)]
    parts.append(limiter.flush())
    return np.concatenate(parts, axis=1)


def hot_signal(seconds: float = 2.0) -> np.ndarray:
    """fs/4 sine at 45 degrees (sample peaks 3 dB under the true peak) plus swelling bursts of noise.

    The noise is low-passed at 16 kHz, as every bed and event is band-limited in a soundscape.
    """
    t = np.arange(int(SR * seconds))
    x = np.stack([1.6 * np.sin(np.pi / 2 * t + np.pi / 4), 0.9 * np.sin(2 * np.pi * 997 * t / SR)])
    noise = signal.sosfilt(
        signal.butter(8, 16000, fs=SR, output="sos"), np.random.default_rng(0).standard_normal(t.size)
    )
    swell = np.clip(np.sin(2 * np.pi * 1.5 * t / SR), 0.0, None) ** 2
    return (x + 1.5 * noise * swell).astype(np.float32)


@pytest.mark.parametrize("block", [4096, 1000, 300])
def test_true_peak_stays_under_the_ceiling(block):
    x = hot_signal()
    assert true_peak_db(x, SR) > 6.0
    y = run(TruePeakLimiter(2, SR, ceiling_dbtp=-1.0), x, block)
    assert y.shape == x.shape
    assert true_peak_db(y, SR) <= -1.0


def test_block_size_does_not_change_the_output():
    x = hot_signal(1.0)
    a = run(TruePeakLimiter(2, SR), x, 4096)
    b = run(TruePeakLimiter(2, SR), x, 333)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_quiet_audio_passes_unchanged_and_aligned():
    x = (0.1 * np.random.default_rng(1).standard_normal((2, SR))).astype(np.float32)
    limiter = TruePeakLimiter(2, SR)
    np.testing.assert_array_equal(run(limiter, x, 1024), x)
    assert limiter.reduced_samples == 0 and limiter.min_gain == 1.0


def test_gain_changes_smoothly():
    x = hot_signal(1.0)
    limiter = TruePeakLimiter(2, SR, lookahead_s=0.01)
    y = run(limiter, x, 4096)
    gain = y[1] / np.where(np.abs(x[1]) > 1e-3, x[1], np.nan)
    steps = np.abs(np.diff(gain[np.isfinite(gain)]))
    assert np.nanmax(steps) < 0.05  # no jumps: gain moves over >= 10 ms
    assert limiter.min_gain < 0.5
