"""Synthetic beds and events (pads, filtered noise, chimes, drops) for demos, tests and benchmarks.

They stand in for the two engines: :func:`synthetic_bed` is an endless iterator of stereo blocks
(a seamless loop), :func:`chime` and :func:`drop` are event sources with the mixer's signature
``(label, seed, params) -> mono``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..core.levels import normalize_loudness

#: Labels the synthetic event sources understand.
CHIME_LABELS = ("low", "mid", "high")
DROP_LABELS = ("small", "large")


def bed_loop(sample_rate: int, seconds: float = 10.0, loudness_lufs: float = -30.0, seed: int = 0) -> np.ndarray:
    """A seamless stereo loop ``(2, samples)``: brown-ish noise low-passed near 1 kHz plus a soft pad.

    Built in the frequency domain over the loop's length, so the loop repeats without a seam.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    shape = 1.0 / (1.0 + (freqs / 800.0) ** 2) / np.maximum(freqs, 20.0) ** 0.5
    channels = []
    for _ in range(2):
        spec = shape * np.exp(2j * np.pi * rng.random(freqs.size))
        spec[0] = 0.0
        noise = np.fft.irfft(spec, n)
        channels.append(noise / (np.abs(noise).max() + 1e-12))
    bed = np.stack(channels) * 0.5
    t = np.arange(n) / sample_rate
    for base in (110.0, 164.8, 220.0):  # A2, E3, A3 rounded to whole cycles per loop: seamless
        f = round(base * seconds) / seconds
        swell = 0.5 + 0.5 * np.sin(2 * np.pi * t / seconds + base)
        bed += 0.15 * swell * np.sin(2 * np.pi * f * t)[None, :]
    return normalize_loudness(bed.astype(np.float32), sample_rate, target_lufs=loudness_lufs, headroom_db=3.0)


def synthetic_bed(sample_rate: int, block: int = 4096, **loop_kwargs) -> Iterator[np.ndarray]:
    """Endless stereo blocks ``(2, block)`` cycling :func:`bed_loop`."""
    loop = bed_loop(sample_rate, **loop_kwargs)
    n = loop.shape[1]
    doubled = np.concatenate([loop, loop[:, :block]], axis=1)  # every block is one slice
    pos = 0
    while True:
        yield doubled[:, pos : pos + block]
        pos = (pos + block) % n


def chime(label: str, seed: int, params: dict, sample_rate: int = 48000) -> np.ndarray:
    """A struck bell: a few inharmonic partials with exponential decays, 1.5 to 3 s."""
    rng = np.random.default_rng(seed)
    base = {"low": 330.0, "mid": 660.0, "high": 1320.0}.get(label, 660.0) * rng.uniform(0.94, 1.06)
    seconds = rng.uniform(1.5, 3.0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for ratio, amp, decay in ((1.0, 1.0, 1.2), (2.76, 0.5, 2.5), (5.4, 0.25, 4.0), (8.93, 0.12, 6.0)):
        if base * ratio < 0.45 * sample_rate:
            out += amp * np.exp(-decay * t) * np.sin(2 * np.pi * base * ratio * t + rng.uniform(0, 2 * np.pi))
    attack = np.minimum(1.0, t / 0.003)
    return (out * attack).astype(np.float32)


def drop(label: str, seed: int, params: dict, sample_rate: int = 48000) -> np.ndarray:
    """A water drop: a short sine sweeping upwards with a fast decay, 0.15 to 0.4 s."""
    rng = np.random.default_rng(seed)
    f0 = (700.0 if label == "large" else 1400.0) * rng.uniform(0.85, 1.15)
    seconds = rng.uniform(0.15, 0.4)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    freq = f0 * (1.0 + 1.5 * t / seconds)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    return (np.exp(-12.0 * t / seconds) * np.minimum(1.0, t / 0.002) * np.sin(phase)).astype(np.float32)


class CachedEvents:
    """An event source that plays pre-rendered variants: ``variants`` per label, picked by seed.

    Stands in for a model whose events were rendered ahead of time (the benchmark's case).
    """

    def __init__(self, synth, labels: tuple[str, ...], sample_rate: int, variants: int = 8):
        self._bank = {
            (label, k): synth(label, k, {}, sample_rate=sample_rate) for label in labels for k in range(variants)
        }
        self._variants = variants

    def __call__(self, label: str, seed: int, params: dict) -> np.ndarray:
        return self._bank[(label, seed % self._variants)]
