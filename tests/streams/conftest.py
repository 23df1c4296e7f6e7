"""Fixtures: small synthetic songs (tones + clicks at a tempo), written once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 22050


def make_song(seconds: float, bpm: float, freqs: tuple[float, ...], seed: int, rate: int = RATE) -> np.ndarray:
    """Chord tones changing every beat among ``freqs`` plus a click on every beat: ``(samples,)`` float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    beat = 60.0 / bpm
    wav = np.zeros(n, np.float64)
    n_beats = int(seconds / beat) + 1
    for b in range(n_beats):
        s, e = int(b * beat * rate), min(n, int((b + 1) * beat * rate))
        f = freqs[(b // 2) % len(freqs)]
        wav[s:e] += 0.2 * np.sin(2 * np.pi * f * t[s:e]) + 0.1 * np.sin(2 * np.pi * 1.5 * f * t[s:e])
        k = min(n - s, int(0.01 * rate))
        wav[s : s + k] += 0.5 * np.exp(-np.arange(k) / (0.002 * rate)) * rng.choice([-1, 1])
    wav += 0.003 * rng.standard_normal(n)
    return wav.astype(np.float32)


def click_track(seconds: float, bpm: float, rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    """Clicks (decaying 1 kHz bursts) on every beat; returns audio and click times in samples."""
    n = int(seconds * rate)
    wav = 0.001 * np.random.default_rng(0).standard_normal(n)
    times = np.arange(0, seconds - 0.05, 60.0 / bpm)
    pos = (times * rate).astype(int)
    burst = np.sin(2 * np.pi * 1000 * np.arange(int(0.03 * rate)) / rate) * np.exp(
        -np.arange(int(0.03 * rate)) / (0.005 * rate)
    )
    for p in pos:
        k = min(len(burst), n - p)
        wav[p : p + k] += 0.8 * burst[:k]
    return wav.astype(np.float32), pos


@pytest.fixture(scope="session")
def songs_dir(tmp_path_factory) -> Path:
    """Four 6 s songs at different tempi and keys (wav and flac)."""
    d = tmp_path_factory.mktemp("songs")
    specs = [
        (120, (220.0, 277.2, 329.6)),
        (100, (196.0, 246.9, 293.7)),
        (132, (261.6, 329.6, 392.0)),
        (90, (174.6, 220.0, 261.6)),
    ]
    for i, (bpm, freqs) in enumerate(specs):
        ext = "flac" if i == 3 else "wav"
        sf.write(d / f"song{i}.{ext}", make_song(6.0, bpm, freqs, seed=i), RATE)
    return d


@pytest.fixture(scope="session")
def pool(songs_dir, tmp_path_factory) -> Path:
    """A pool of the four songs in 1 s chunks."""
    from soundloom.streams.catalog import ChunkCatalog, find_songs
    from soundloom.streams.chunking import ChunkConfig

    p = tmp_path_factory.mktemp("pool")
    with ChunkCatalog(p) as c:
        c.add_songs(find_songs(songs_dir), ChunkConfig(method="fixed", seconds=1.0))
    return p


@pytest.fixture(scope="session")
def features_run(pool, tmp_path_factory) -> Path:
    from soundloom.streams.transitions.training import train_transitions

    out = tmp_path_factory.mktemp("runs") / "features"
    train_transitions(pool, "features", out)
    return out
