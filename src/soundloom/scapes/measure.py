"""Measure a rendered soundscape: loudness over time, loudness range, density, brightness, peaks.

For ``soundloom eval-soundscape FILE --score SCORE.json``. Loudness follows EBU R128 / BS.1770:
K-weighting from pyloudnorm's public ``IIRfilter`` (the same two stages its ``Meter`` uses),
short-term loudness over 3 s windows every 0.1 s, and the loudness range (LRA) of EBU Tech 3342:
the 10th to 95th percentile of the short-term values, gated at -70 LUFS absolute and -20 LU
below their power mean. Stereo and binaural files are measured as stereo; FOA (4 channels,
AmbiX) by its W channel, the omnidirectional signal; other channel counts as their mean.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np

from ..core.errors import DataError
from ..core.io import load_audio
from ..core.levels import k_weight, loudness_lufs, peak_db, true_peak_db

SHORT_TERM_S = 3.0
SHORT_TERM_HOP_S = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -20.0
ONSET_MIN_GAP_S = 0.1


@dataclass(frozen=True)
class SoundscapeMeasurement:
    """What :func:`measure` reports; loudness in LUFS/LU, rates per minute, levels in dBFS/dBTP."""

    duration_s: float
    integrated_lufs: float
    short_term_mean_lufs: float
    short_term_min_lufs: float
    short_term_max_lufs: float
    loudness_range_lu: float
    onsets_per_min: float
    spectral_centroid_hz: float
    peak_dbfs: float
    true_peak_dbtp: float
    events: int | None = None
    events_per_min: float | None = None
    collisions: int | None = None
    skipped: int | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def short_term_loudness(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Short-term loudness (LUFS) of ``(channels, samples)``: 3 s windows every 0.1 s.

    Channels are summed with weight 1 (mono, stereo). Returns an empty array for clips under 3 s.
    """
    x = np.atleast_2d(wav)
    power = np.square(k_weight(x, sample_rate)).sum(axis=0)
    win, hop = int(round(SHORT_TERM_S * sample_rate)), int(round(SHORT_TERM_HOP_S * sample_rate))
    if power.size < win:
        return np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, power.size - win + 1, hop)
    mean_square = (c[starts + win] - c[starts]) / win
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(mean_square)


def loudness_range(short_term_lufs: np.ndarray) -> float:
    """EBU Tech 3342 LRA (LU) from short-term loudness values; 0.0 when nothing passes the gates."""
    st = np.asarray(short_term_lufs, dtype=np.float64)
    st = st[st >= ABSOLUTE_GATE_LUFS]
    if st.size == 0:
        return 0.0
    relative = 10.0 * np.log10(np.mean(np.power(10.0, st / 10.0))) + RELATIVE_GATE_LU
    st = st[st >= relative]
    return float(np.percentile(st, 95) - np.percentile(st, 10))


def collisions(events: list[dict]) -> int:
    """Pairs of consecutive events (by time) closer than the later one's ``min_spacing_s``."""
    times = sorted((float(e["time_s"]), float(e.get("min_spacing_s", 0.0))) for e in events)
    return sum(1 for (a, _), (b, spacing) in zip(times, times[1:]) if b - a < spacing - 1e-6)


def measure(wav: np.ndarray, sample_rate: int, score: dict | None = None) -> SoundscapeMeasurement:
    """Measure ``(channels, samples)`` (or mono) audio; events and collisions come from ``score``."""
    x = np.atleast_2d(np.asarray(wav, dtype=np.float32))
    if x.shape[1] == 0:
        raise DataError("cannot measure empty audio")
    meter_in = x[:1] if x.shape[0] == 4 else (x if x.shape[0] <= 2 else x.mean(axis=0, keepdims=True))
    mono = meter_in.mean(axis=0)
    duration_s = x.shape[1] / sample_rate
    st = short_term_loudness(meter_in, sample_rate)
    gated = st[st >= ABSOLUTE_GATE_LUFS]
    # At most one onset per 100 ms: librosa's default lets one pluck count twice (32 ms apart).
    wait = max(1, int(np.ceil(ONSET_MIN_GAP_S * sample_rate / 512)))
    onsets = librosa.onset.onset_detect(y=mono, sr=sample_rate, units="time", hop_length=512, wait=wait)
    centroid = librosa.feature.spectral_centroid(y=mono, sr=sample_rate)[0]
    frame_rms = librosa.feature.rms(y=mono)[0][: centroid.size]
    voiced = centroid[frame_rms > 1e-4]
    event_fields = {}
    if score is not None:
        events = list(score.get("events", []))
        event_fields = {
            "events": len(events),
            "events_per_min": len(events) / duration_s * 60.0,
            "collisions": collisions(events),
            "skipped": len(score.get("skipped", [])),
        }
    return SoundscapeMeasurement(
        duration_s=duration_s,
        integrated_lufs=loudness_lufs(meter_in, sample_rate),
        short_term_mean_lufs=float(gated.mean()) if gated.size else float("-inf"),
        short_term_min_lufs=float(gated.min()) if gated.size else float("-inf"),
        short_term_max_lufs=float(gated.max()) if gated.size else float("-inf"),
        loudness_range_lu=loudness_range(st),
        onsets_per_min=len(onsets) / duration_s * 60.0,
        spectral_centroid_hz=float(voiced.mean()) if voiced.size else 0.0,
        peak_dbfs=peak_db(x),
        true_peak_dbtp=true_peak_db(x, sample_rate),
        **event_fields,
    )


def measure_file(path: str | os.PathLike, score_path: str | os.PathLike | None = None) -> SoundscapeMeasurement:
    """:func:`measure` on an audio file and, optionally, its JSON score."""
    wav, rate = load_audio(path, mono=False)
    score = None
    if score_path is not None:
        try:
            score = json.loads(Path(score_path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(score_path, f"unreadable score ({exc})") from exc
        if not isinstance(score, dict) or not isinstance(score.get("events"), list):
            raise DataError(score_path, "not a soundscape score (no 'events' list)")
    return measure(wav, rate, score)
