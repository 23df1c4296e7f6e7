"""Synthesised signals for the audio-core tests."""

import numpy as np
import pytest


def harmonic_tone(sr: int = 16000, seconds: float = 1.0, f0: float = 220.0, partials: int = 7) -> np.ndarray:
    """A decaying harmonic tone with a 5 ms attack and 50 ms release, float32 ``(samples,)``."""
    t = np.arange(int(sr * seconds)) / sr
    x = sum((0.3 / k) * np.sin(2 * np.pi * f0 * k * t) for k in range(1, partials + 1)) * np.exp(-2 * t)
    env = np.minimum(1.0, t / 0.005) * np.minimum(1.0, (seconds - t) / 0.05)
    return (x * env).astype(np.float32)


def noise_burst(sr: int = 16000, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.random.default_rng(seed).standard_normal(t.size) * np.exp(-8 * t)).astype(np.float32)


@pytest.fixture
def tone() -> np.ndarray:
    return harmonic_tone()
