"""Built-in ambient material, made procedurally (no downloads): songs for a soundscape bed, one-shots for its events.

- :func:`write_ambient_songs`: ``<out>/ambient_<i>_<kind>.wav`` at 22.05 kHz plus ``index.csv``
  (file, kind, tempo_bpm, seconds), kinds cycling through :data:`AMBIENT_SONG_KINDS`:

  * ``pad``: slow swelling chords (soft harmonic tones, a few detuned voices), dark and even;
  * ``drone``: root, fifth and octave beating slowly over breathy low noise, the calmest;
  * ``texture``: a slow cloud of short high grains whose density drifts;
  * ``water``: babbling band-passed noise with droplets, bright and busy (many onsets);
  * ``pulse``: soft mallet notes and bright shaker ticks on a steady beat over a pad, the most energetic.

  Each song drifts between calmer and busier stretches, so a mood-steered bed has a choice inside
  every song, not only between them.
- :func:`write_ambient_oneshots`: ``<out>/<class>/<class>_<i>.wav`` (the class-folder layout),
  1 s at 16 kHz, classes :data:`AMBIENT_ONESHOT_CLASSES` (``bird``: a short phrase of chirps;
  ``chime``: an inharmonic struck bar; ``drop``: a water drop).
- :func:`write_ambient`: both, as ``<out>/songs`` and ``<out>/oneshots``.

Deterministic in ``seed``; item ``i`` does not depend on how many are written (as in
:mod:`soundloom.data.synth`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal

from ..core.errors import ParameterError
from ..core.io import write_audio
from ..core.levels import normalize_loudness

AMBIENT_SONG_KINDS = ("pad", "drone", "texture", "water", "pulse")
AMBIENT_ONESHOT_CLASSES = ("bird", "chime", "drop")
#: Loudness (LUFS) each song kind is written at: the quiet kinds quieter, as a listener expects.
_SONG_LUFS = {"pad": -24.0, "drone": -27.0, "texture": -25.0, "water": -21.0, "pulse": -20.0}
#: A major pentatonic scale (semitones): nothing in it clashes, whatever plays at once.
_PENTATONIC = (0, 2, 4, 7, 9)


def _midi_hz(note) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0)


def _slow_curve(rng: np.random.Generator, n: int, sr: int, period_s: float, lo: float, hi: float) -> np.ndarray:
    """A smooth random curve ``(n,)`` in [lo, hi] varying over about ``period_s`` seconds."""
    k = max(2, int(n / (period_s * sr)) + 2)
    knots = rng.uniform(0.0, 1.0, k)
    x = np.interp(np.linspace(0, k - 1, n), np.arange(k), knots)
    x = 0.5 - 0.5 * np.cos(np.pi * x)  # ease between knots
    return lo + (hi - lo) * x


def _noise(rng: np.random.Generator, n: int, sr: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    sos = signal.butter(2, [lo_hz, min(hi_hz, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def _soft_tone(freq: float, n: int, sr: int, rng: np.random.Generator, harmonics: int = 5) -> np.ndarray:
    """A soft harmonic tone (amplitudes 1/k^2) from three slightly detuned voices."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for detune in (-0.004, 0.0, 0.004):
        f = freq * (1.0 + detune)
        for k in range(1, harmonics + 1):
            if f * k < 0.45 * sr:
                out += np.sin(2 * np.pi * f * k * t + rng.uniform(0, 2 * np.pi)) / k**2
    return out / 3.0


def _pad(rng: np.random.Generator, n: int, sr: int, root: int) -> tuple[np.ndarray, float | None]:
    chord_s = rng.uniform(7.0, 10.0)
    length = int(chord_s * sr)
    degrees = ((0, 4, 7), (-3, 0, 4), (5, 9, 12), (-5, 2, 7))
    out = np.zeros(n + 3 * length)  # out[length + k] is sample k
    env = np.sin(np.pi * np.arange(2 * length) / (2 * length)) ** 2  # swells over two chord lengths
    for i, start in enumerate(range(-length, n, length)):
        chord = degrees[(i + int(rng.integers(2))) % len(degrees)]
        tone = sum(_soft_tone(float(_midi_hz(root + d)), 2 * length, sr, rng) for d in chord)
        out[length + start : length + start + 2 * length] += tone * env
    out = out[length : length + n] + 0.03 * _noise(rng, n, sr, 80.0, 800.0)
    return out * _slow_curve(rng, n, sr, 20.0, 0.5, 1.0), None


def _drone(rng: np.random.Generator, n: int, sr: int, root: int) -> tuple[np.ndarray, float | None]:
    t = np.arange(n) / sr
    f0 = float(_midi_hz(root - 12))
    out = np.zeros(n)
    for ratio, amp in ((1.0, 1.0), (1.5, 0.6), (2.0, 0.4), (3.0, 0.15)):
        beat = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 2 * np.pi))
        out += amp * beat * np.sin(2 * np.pi * f0 * ratio * (1 + rng.uniform(-0.002, 0.002)) * t)
    breath = _noise(rng, n, sr, 60.0, 500.0) * _slow_curve(rng, n, sr, 12.0, 0.02, 0.12)
    return out + breath, None


def _grains(
    rng: np.random.Generator,
    n: int,
    sr: int,
    density: np.ndarray,
    make: Callable[[np.random.Generator, int], np.ndarray],
) -> np.ndarray:
    """Grains placed by a Poisson process whose rate (per second) follows ``density`` ``(n,)``."""
    out = np.zeros(n + sr)
    t = 0.0
    while True:
        rate = float(density[min(int(t * sr), n - 1)])
        t += float(rng.exponential(1.0 / max(rate, 1e-3)))
        if t * sr >= n:
            return out[:n]
        g = make(rng, sr)
        s = int(t * sr)
        out[s : s + g.size] += g


def _texture(rng: np.random.Generator, n: int, sr: int, root: int) -> tuple[np.ndarray, float | None]:
    def grain(rng: np.random.Generator, sr: int) -> np.ndarray:
        m = int(rng.uniform(0.08, 0.4) * sr)
        note = root + 12 + _PENTATONIC[int(rng.integers(5))] + 12 * int(rng.integers(2))
        t = np.arange(m) / sr
        return rng.uniform(0.2, 0.6) * np.hanning(m) * np.sin(2 * np.pi * float(_midi_hz(note)) * t)

    density = _slow_curve(rng, n, sr, 15.0, 1.0, 8.0)
    air = 0.05 * _noise(rng, n, sr, 1000.0, 6000.0) * _slow_curve(rng, n, sr, 10.0, 0.3, 1.0)
    return _grains(rng, n, sr, density, grain) + air, None


def _droplet(rng: np.random.Generator, sr: int) -> np.ndarray:
    m = int(rng.uniform(0.02, 0.07) * sr)
    t = np.arange(m) / sr
    f = rng.uniform(900.0, 3000.0) * (1.0 + 1.2 * t / t[-1])
    return rng.uniform(0.2, 0.7) * np.exp(-6.0 * t / t[-1]) * np.sin(2 * np.pi * np.cumsum(f) / sr)


def _water(rng: np.random.Generator, n: int, sr: int, root: int) -> tuple[np.ndarray, float | None]:
    # babble: band-passed noise under a fast random level (the surface), plus droplets
    babble = _noise(rng, n, sr, 400.0, 5000.0)
    flutter = np.abs(signal.sosfilt(signal.butter(2, 12.0, fs=sr, output="sos"), rng.standard_normal(n)))
    babble *= 0.3 + 3.0 * flutter / (flutter.std() + 1e-9) * 0.2
    density = _slow_curve(rng, n, sr, 15.0, 3.0, 12.0)
    return 0.3 * babble + _grains(rng, n, sr, density, _droplet), None


def _pulse(rng: np.random.Generator, n: int, sr: int, root: int) -> tuple[np.ndarray, float | None]:
    tempo = float(rng.uniform(90.0, 120.0))
    beat = int(round(60.0 / tempo * sr))
    out = np.zeros(n + sr)
    m = int(0.6 * sr)
    t = np.arange(m) / sr
    shaker = _noise(rng, int(0.05 * sr), sr, 4000.0, 10000.0) * np.exp(-60.0 * t[: int(0.05 * sr)])
    busy = _slow_curve(rng, n, sr, 20.0, 0.3, 1.0)  # chance that a beat (or off-beat) plays
    for s in range(0, n, beat // 2):
        on_beat = (s // (beat // 2)) % 2 == 0
        if rng.uniform() < busy[s]:  # a bright shaker tick on the eighths: the busiest, brightest kind
            out[s : s + shaker.size] += rng.uniform(0.5, 1.0) * shaker / (np.abs(shaker).max() + 1e-9) * 0.3
        if rng.uniform() > busy[s] * (1.0 if on_beat else 0.6):
            continue
        note = root + 12 + _PENTATONIC[int(rng.integers(5))] + 12 * int(rng.integers(2))
        f = float(_midi_hz(note))
        mallet = np.exp(-7.0 * t) * (
            np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 4.0 * f * t) * np.exp(-20 * t)
        )
        out[s : s + m] += rng.uniform(0.4, 0.8) * mallet * np.minimum(1.0, t / 0.002)
    pad, _ = _pad(rng, n, sr, root - 12)
    return out[:n] + 0.15 * pad / (np.abs(pad).max() + 1e-9), tempo


_SONGS = {"pad": _pad, "drone": _drone, "texture": _texture, "water": _water, "pulse": _pulse}


def make_ambient_song(
    kind: str, seed: int = 0, seconds: float = 90.0, sample_rate: int = 22050
) -> tuple[np.ndarray, dict]:
    """One ambient song of ``kind``: float32 ``(samples,)`` at the kind's loudness, and its info
    (kind, tempo_bpm or empty, seconds)."""
    if kind not in _SONGS:
        raise ParameterError(f"unknown ambient song kind {kind!r}; choose from {AMBIENT_SONG_KINDS}")
    rng = np.random.default_rng([seed, AMBIENT_SONG_KINDS.index(kind)])
    n = int(round(seconds * sample_rate))
    root = 48 + int(rng.integers(0, 12))
    wav, tempo = _SONGS[kind](rng, n, sample_rate, root)
    fade = min(n // 4, int(2.0 * sample_rate))
    wav[:fade] *= np.linspace(0.0, 1.0, fade)
    wav[n - fade :] *= np.linspace(1.0, 0.0, fade)
    wav = normalize_loudness(wav.astype(np.float32), sample_rate, target_lufs=_SONG_LUFS[kind], headroom_db=3.0)
    return wav.astype(np.float32), {"kind": kind, "tempo_bpm": "" if tempo is None else round(tempo, 2)}


# ------------------------------------------------------------------------------- one-shots


def _bird(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    out = np.zeros(n)
    t0 = rng.uniform(0.0, 0.1)
    base = rng.uniform(2500.0, 4500.0)
    for _ in range(int(rng.integers(2, 6))):
        m = int(rng.uniform(0.04, 0.12) * sr)
        s = int(t0 * sr)
        if s + m >= n:
            break
        t = np.arange(m) / sr
        sweep = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.5)
        f = base * (1.0 + sweep * t / t[-1]) * (1.0 + 0.03 * np.sin(2 * np.pi * rng.uniform(30, 80) * t))
        out[s : s + m] += np.hanning(m) * np.sin(2 * np.pi * np.cumsum(f) / sr)
        t0 += m / sr + rng.uniform(0.03, 0.12)
    return out


def _chime(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = float(_midi_hz(72 + _PENTATONIC[int(rng.integers(5))] + 12 * int(rng.integers(2))))
    out = np.zeros(n)
    for ratio, amp, decay in ((1.0, 1.0, 3.0), (2.76, 0.5, 5.0), (5.4, 0.25, 8.0), (8.93, 0.12, 12.0)):
        if f0 * ratio < 0.45 * sr:
            out += amp * np.exp(-decay * t) * np.sin(2 * np.pi * f0 * ratio * t + rng.uniform(0, 2 * np.pi))
    return out * np.minimum(1.0, t / 0.002)


def _drop(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    m = min(n, int(rng.uniform(0.12, 0.3) * sr))
    t = np.arange(m) / sr
    f = rng.uniform(600.0, 1600.0) * (1.0 + 1.5 * t / t[-1])
    out = np.zeros(n)
    out[:m] = np.exp(-10.0 * t / t[-1]) * np.minimum(1.0, t / 0.001) * np.sin(2 * np.pi * np.cumsum(f) / sr)
    return out


_ONESHOTS = {"bird": _bird, "chime": _chime, "drop": _drop}


def make_ambient_oneshot(
    kind: str, seed: int = 0, index: int = 0, sample_rate: int = 16000, seconds: float = 1.0
) -> np.ndarray:
    """One ambient one-shot of class ``kind``: float32 ``(samples,)`` peaking at 0.5-0.9."""
    if kind not in _ONESHOTS:
        raise ParameterError(f"unknown ambient one-shot class {kind!r}; choose from {AMBIENT_ONESHOT_CLASSES}")
    rng = np.random.default_rng([seed, 1000 + AMBIENT_ONESHOT_CLASSES.index(kind), index])
    n = int(round(seconds * sample_rate))
    wav = _ONESHOTS[kind](rng, sample_rate, n)
    tail = min(n, int(0.005 * sample_rate))
    wav[n - tail :] *= np.linspace(1.0, 0.0, tail)
    wav *= rng.uniform(0.5, 0.9) / max(float(np.abs(wav).max()), 1e-9)
    return wav.astype(np.float32)


def write_ambient_oneshots(
    out_dir: str | os.PathLike,
    n_per_class: int = 20,
    sample_rate: int = 16000,
    seed: int = 0,
    seconds: float = 1.0,
    classes: tuple[str, ...] = AMBIENT_ONESHOT_CLASSES,
) -> list[Path]:
    """Write ``<out_dir>/<class>/<class>_<i>.wav``; returns the paths, class by class."""
    out = Path(out_dir)
    return [
        write_audio(
            out / kind / f"{kind}_{i:04d}.wav", make_ambient_oneshot(kind, seed, i, sample_rate, seconds), sample_rate
        )
        for kind in classes
        for i in range(n_per_class)
    ]


def write_ambient_songs(
    out_dir: str | os.PathLike,
    n_songs: int = 5,
    seconds: float = 90.0,
    sample_rate: int = 22050,
    seed: int = 0,
    kinds: tuple[str, ...] = AMBIENT_SONG_KINDS,
) -> list[Path]:
    """Write ``n_songs`` songs (kinds cycling through ``kinds``) and ``index.csv``; returns the paths."""
    if not kinds:
        raise ParameterError("no ambient song kinds given")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, rows = [], []
    for i in range(n_songs):
        kind = kinds[i % len(kinds)]
        wav, info = make_ambient_song(kind, seed * 100_003 + i, seconds, sample_rate)
        path = write_audio(out / f"ambient_{i:03d}_{kind}.wav", wav, sample_rate)
        paths.append(path)
        rows.append({"file": path.name, **info, "seconds": round(seconds, 3)})
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "kind", "tempo_bpm", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    return paths


def write_ambient(
    out_dir: str | os.PathLike,
    n_songs: int = 5,
    song_seconds: float = 90.0,
    n_per_class: int = 20,
    seed: int = 0,
) -> dict[str, Path]:
    """Songs in ``<out_dir>/songs`` (a bed pool's source) and one-shots in ``<out_dir>/oneshots``."""
    out = Path(out_dir)
    write_ambient_songs(out / "songs", n_songs, song_seconds, seed=seed)
    write_ambient_oneshots(out / "oneshots", n_per_class, seed=seed)
    return {"songs": out / "songs", "oneshots": out / "oneshots"}
