"""Built-in synthetic data: labeled one-shots and simple songs, made procedurally (no downloads).

- :func:`write_oneshots`: ``<out>/<class>/<class>_<i>.wav``, about 1 s at 16 kHz, in the
  classes of :data:`ONESHOT_CLASSES` (plucked string by Karplus-Strong, FM bell, kick, snare,
  hi-hat, rising and falling sweeps, vowel-like formant tone, noise burst), each item with its
  own random pitch, decay and timbre.
- :func:`write_songs`: ``<out>/song_<i>.wav`` at 22.05 kHz: sections of chords, bass and drums
  at one steady tempo per song, plus ``index.csv`` (file, tempo_bpm, key, seconds, sections).

Everything is deterministic in ``seed``; item ``i`` of a class does not depend on how many
items are written, so a larger set extends a smaller one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from ..core.errors import ParameterError
from ..core.io import write_audio

ONESHOT_CLASSES = ("pluck", "bell", "kick", "snare", "hihat", "sweep_up", "sweep_down", "vowel", "noise_burst")
#: Formants (Hz) of five vowels: a, e, i, o, u.
VOWELS = ((800, 1150, 2900), (400, 1600, 2700), (270, 2300, 3000), (450, 800, 2830), (325, 700, 2530))


# ------------------------------------------------------------------------------- one-shots


def _env(n: int, sr: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Linear attack then exponential decay (time constant ``decay_s``), ``(n,)``."""
    t = np.arange(n) / sr
    att = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    return (att * np.exp(-np.maximum(t - attack_s, 0.0) / decay_s)).astype(np.float32)


def _pluck(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Karplus-Strong: a noise burst through a comb with a two-tap averaging loss filter."""
    f0 = rng.uniform(80.0, 800.0)
    period = max(2, int(round(sr / f0)))
    gain = rng.uniform(0.985, 0.999)
    burst = rng.uniform(-1, 1, period)
    brightness = rng.uniform(0.0, 0.8)  # one-pole low-pass on the excitation: darker strings
    burst = lfilter([1 - brightness], [1, -brightness], burst)
    x = np.zeros(n)
    x[:period] = burst
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -gain / 2, -gain / 2
    return lfilter([1.0], a, x)


def _bell(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Two-operator FM with an inharmonic ratio and a decaying modulation index."""
    t = np.arange(n) / sr
    fc = rng.uniform(200.0, 1200.0)
    ratio = rng.choice([1.4, 2.76, 3.5, 1.21]) * rng.uniform(0.98, 1.02)
    decay = rng.uniform(0.2, 0.8)
    index = rng.uniform(2.0, 8.0) * np.exp(-t / (decay * 0.5))
    return np.sin(2 * np.pi * fc * t + index * np.sin(2 * np.pi * fc * ratio * t)) * _env(n, sr, 0.002, decay)


def _kick(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A sine whose pitch falls exponentially, plus a short click."""
    t = np.arange(n) / sr
    f_hi, f_lo = rng.uniform(100, 200), rng.uniform(35, 60)
    sweep = rng.uniform(0.02, 0.08)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / sweep)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    body = np.sin(phase) * _env(n, sr, 0.001, rng.uniform(0.1, 0.4))
    click = rng.uniform(-1, 1, n) * _env(n, sr, 0.0005, 0.004) * rng.uniform(0.1, 0.5)
    return body + click


def _snare(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Band-limited noise and a tone body, both decaying fast."""
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 1))  # first difference: tilts the noise up
    noise = lfilter([1 - 0.3], [1, -0.3], noise)
    tone = np.sin(2 * np.pi * rng.uniform(150, 250) * t)
    mix = rng.uniform(0.3, 0.7)
    return mix * noise * _env(n, sr, 0.001, rng.uniform(0.05, 0.2)) * 0.5 + (1 - mix) * tone * _env(
        n, sr, 0.001, rng.uniform(0.03, 0.08)
    )


def _hihat(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """High-passed noise (second difference) with a very short decay."""
    noise = np.diff(rng.standard_normal(n + 2), n=2)
    return noise * _env(n, sr, 0.0005, rng.uniform(0.015, 0.15))


def _sweep(rng: np.random.Generator, sr: int, n: int, rising: bool) -> np.ndarray:
    """Exponential chirp with a few harmonics; up or down by 1-4 octaves."""
    t = np.arange(n) / sr
    lo = rng.uniform(100, 600)
    hi = lo * 2 ** rng.uniform(1, 4)
    f0, f1 = (lo, hi) if rising else (hi, lo)
    freq = f0 * (f1 / f0) ** (t / t[-1])
    phase = 2 * np.pi * np.cumsum(freq) / sr
    weights = np.concatenate([[1.0], rng.uniform(0, 1, 3) * np.array([1.0, 0.5, 0.25])])
    # Each harmonic fades out as it nears Nyquist, so the sweep never folds back (aliases).
    nyquist = sr / 2
    wav = sum(
        w * np.sin((k + 1) * phase) * np.clip((0.9 * nyquist - (k + 1) * freq) / (0.1 * nyquist), 0, 1)
        for k, w in enumerate(weights)
    )
    fade = np.sin(0.5 * np.pi * np.clip(np.minimum(t / 0.02, (t[-1] - t) / 0.05), 0, 1)) ** 2  # no kink, no click
    return wav * fade


def _vowel(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A glottal pulse train (with vibrato) through three formant resonators."""
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 300) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 6) * t))
    phase = np.cumsum(f0) / sr
    source = np.diff(np.floor(phase), prepend=0.0) - f0 / sr  # impulse train, zero mean
    formants = np.array(VOWELS[rng.integers(len(VOWELS))]) * rng.uniform(0.9, 1.1)
    out = np.zeros(n)
    for k, fc in enumerate(formants):
        bw = 60.0 + 40.0 * k
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2 * r * np.cos(2 * np.pi * fc / sr), r * r]
        out += lfilter([1 - r], a, source) * (0.8**k)
    return out * _env(n, sr, rng.uniform(0.02, 0.1), rng.uniform(0.3, 1.0))


def _noise_burst(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Coloured noise (one-pole low-pass) under an attack-decay envelope."""
    pole = rng.uniform(0.0, 0.97)
    noise = lfilter([1 - pole], [1, -pole], rng.standard_normal(n))
    return noise * _env(n, sr, rng.uniform(0.001, 0.1), rng.uniform(0.05, 0.5))


_GENERATORS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "pluck": _pluck,
    "bell": _bell,
    "kick": _kick,
    "snare": _snare,
    "hihat": _hihat,
    "sweep_up": lambda rng, sr, n: _sweep(rng, sr, n, True),
    "sweep_down": lambda rng, sr, n: _sweep(rng, sr, n, False),
    "vowel": _vowel,
    "noise_burst": _noise_burst,
}


def make_oneshot(
    kind: str, seed: int = 0, index: int = 0, sample_rate: int = 16000, seconds: float = 1.0
) -> np.ndarray:
    """One sound of class ``kind``: float32 ``(samples,)`` peaking at 0.5-0.9 (random)."""
    if kind not in _GENERATORS:
        raise ParameterError(f"unknown one-shot class {kind!r}; choose from {ONESHOT_CLASSES}")
    rng = np.random.default_rng([seed, ONESHOT_CLASSES.index(kind), index])
    n = int(round(seconds * sample_rate))
    wav = np.asarray(_GENERATORS[kind](rng, sample_rate, n), dtype=np.float64)
    wav -= wav.mean()
    tail = min(n, int(0.005 * sample_rate))  # the clip ends at `seconds`: fade so it does not click
    wav[n - tail :] *= np.linspace(1.0, 0.0, tail)
    wav *= rng.uniform(0.5, 0.9) / max(np.abs(wav).max(), 1e-9)
    return wav.astype(np.float32)


def write_oneshots(
    out_dir: str | os.PathLike,
    n_per_class: int = 20,
    sample_rate: int = 16000,
    seed: int = 0,
    seconds: float = 1.0,
    classes: tuple[str, ...] = ONESHOT_CLASSES,
) -> list[Path]:
    """Write ``n_per_class`` one-shots of each class as ``<out_dir>/<class>/<class>_<i>.wav``.

    Returns:
        The written paths, class by class.
    """
    out = Path(out_dir)
    paths = []
    for kind in classes:
        for i in range(n_per_class):
            wav = make_oneshot(kind, seed, i, sample_rate, seconds)
            paths.append(write_audio(out / kind / f"{kind}_{i:04d}.wav", wav, sample_rate))
    return paths


# ------------------------------------------------------------------------------- songs

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: Chord progressions as scale degrees (0-based) of a major key; a section uses one.
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (1, 4, 0, 0), (3, 4, 2, 5))
MAJOR = (0, 2, 4, 5, 7, 9, 11)


def _midi_hz(note: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2 ** ((np.asarray(note, dtype=np.float64) - 69) / 12)


def _tone(freqs: np.ndarray, n: int, sr: int, harmonics: np.ndarray, attack_s: float, decay_s: float) -> np.ndarray:
    """A sum of notes ``freqs`` (Hz) with harmonic weights, ``n`` samples, one envelope."""
    t = np.arange(n) / sr
    k = np.arange(1, len(harmonics) + 1)
    # (notes, harmonics, samples) would be large for long chords; loop over the few harmonics.
    out = np.zeros(n)
    for h, w in zip(k, harmonics):
        f = freqs * h
        f = f[f < sr / 2]
        if len(f):
            out += w * np.sin(2 * np.pi * np.outer(f, t)).sum(axis=0)
    env = _env(n, sr, attack_s, decay_s)
    release = np.minimum(1.0, (n - np.arange(n)) / max(1, int(0.01 * sr)))
    return out * env * release


def make_song(seed: int = 0, seconds: float = 180.0, sample_rate: int = 22050) -> tuple[np.ndarray, dict]:
    """One synthetic song: float32 ``(samples,)`` and its facts (tempo_bpm, key, sections).

    Sections of 8 bars (4/4) take a chord progression and a drum variant; one tempo for the song.
    """
    rng = np.random.default_rng([seed, 1_000_003])
    sr = sample_rate
    bpm = float(rng.integers(80, 141))
    key = int(rng.integers(0, 12))
    beat = int(round(60.0 / bpm * sr))
    n = int(round(seconds * sr))
    out = np.zeros(n + 4 * sr)
    pad_harm = rng.uniform(0, 1, 6) / np.arange(1, 7)
    bass_harm = rng.uniform(0, 1, 4) / np.arange(1, 5) ** 1.5
    kick = make_oneshot("kick", seed, 0, sr, 0.5) * 0.9
    snare = make_oneshot("snare", seed, 0, sr, 0.4) * 0.6
    hat = make_oneshot("hihat", seed, 0, sr, 0.2) * 0.35
    n_sections = max(1, int(np.ceil(n / (32 * beat))))
    kinds = ["A", "B", "A", "C"]
    sections, pos = [], 0
    cache: dict[tuple, np.ndarray] = {}  # a song repeats few chords and bass notes: render each once

    def tone(notes: tuple, length: int, harm: np.ndarray, attack_s: float, decay_s: float) -> np.ndarray:
        key_ = (notes, length, attack_s)
        if key_ not in cache:
            cache[key_] = _tone(_midi_hz(np.array(notes)), length, sr, harm, attack_s, decay_s)
        return cache[key_]

    progressions = {s: PROGRESSIONS[rng.integers(len(PROGRESSIONS))] for s in kinds}
    for s in range(n_sections):
        name = kinds[s % len(kinds)]
        sections.append({"name": name, "start_s": pos / sr})
        prog = progressions[name]
        for bar in range(8):
            start = pos + bar * 4 * beat
            if start >= n:
                break
            degree = prog[(bar // 2) % len(prog)]
            root = 48 + key + MAJOR[degree]
            triad = tuple(MAJOR[(degree + d) % 7] + 12 * ((degree + d) // 7) + 60 + key for d in (0, 2, 4))
            out[start : start + 4 * beat] += 0.12 * tone(triad, 4 * beat, pad_harm, 0.05, 2.0)
            for b in range(4):
                at = start + b * beat
                note = root - 12 + (7 if (name == "B" and b == 3) else 0)
                out[at : at + beat] += 0.3 * tone((note,), beat, bass_harm, 0.005, 0.3)
                if name != "C" or bar >= 6:  # C is a breakdown: drums return for its last two bars
                    if b in (0, 2):
                        out[at : at + len(kick)] += kick
                    if b in (1, 3):
                        out[at : at + len(snare)] += snare
                    hats = 4 if name == "B" else 2
                    for h in range(hats):
                        hp = at + h * beat // hats
                        out[hp : hp + len(hat)] += hat * (1.0 if h == 0 else 0.6)
        pos += 32 * beat
    out = out[:n]
    fade = int(0.5 * sr)
    out[-fade:] *= np.linspace(1, 0, fade)
    out *= 0.9 / max(np.abs(out).max(), 1e-9)
    info = {
        "tempo_bpm": bpm,
        "key": NOTE_NAMES[key],
        "seconds": seconds,
        "sections": " ".join(f"{s['name']}@{s['start_s']:.2f}" for s in sections),
    }
    return out.astype(np.float32), info


def write_songs(
    out_dir: str | os.PathLike, n_songs: int = 4, seconds: float = 180.0, sample_rate: int = 22050, seed: int = 0
) -> list[Path]:
    """Write ``n_songs`` songs as ``<out_dir>/song_<i>.wav`` and ``<out_dir>/index.csv``.

    Returns:
        The audio paths, in order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, rows = [], []
    for i in range(n_songs):
        wav, info = make_song(seed * 100_003 + i, seconds, sample_rate)
        path = write_audio(out / f"song_{i:03d}.wav", wav, sample_rate)
        paths.append(path)
        rows.append({"file": path.name, **info})
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["file"])
        writer.writeheader()
        writer.writerows(rows)
    return paths
