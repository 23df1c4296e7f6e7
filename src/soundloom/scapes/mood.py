"""Mood: one number, calm (0) to energetic (1), that steers a soundscape's events and its bed.

Three named points anchor the scale (``calm`` = 0, ``neutral`` = 0.5, ``energetic`` = 1); every
field is interpolated continuously between them (levels and rates linearly, frequencies and
distances on a log scale, so half-way sounds half-way)::

    Mood.of("calm").event_rate_per_min        # 2.0 events/min per source
    Mood.of(0.75).gain_db_range               # between neutral and energetic
    Mood.of("energetic").event_rate_per_min   # 8.0: four times calm, and 6 dB louder, nearer
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..core.errors import ParameterError

#: The named points on the energy scale.
NAMED_MOODS = {"calm": 0.0, "neutral": 0.5, "energetic": 1.0}

# field -> (calm, neutral, energetic, interpolation). Pairs are (low, high) ranges.
_ANCHORS: dict[str, tuple[object, object, object, str]] = {
    "event_rate_per_min": (2.0, 4.0, 8.0, "log"),
    "gain_db_range": ((-12.0, -6.0), (-9.0, -3.0), (-6.0, 0.0), "lin"),
    "azimuth_spread_deg": (180.0, 150.0, 120.0, "lin"),
    "elevation_range_deg": ((0.0, 30.0), (-10.0, 30.0), (-20.0, 30.0), "lin"),
    "distance_range_m": ((2.0, 8.0), (1.5, 6.0), (1.0, 4.0), "log"),
    "drift_deg_per_s": (2.0, 5.0, 10.0, "lin"),
    "event_lowpass_hz": (3000.0, 7000.0, 14000.0, "log"),
    "min_spacing_s": (4.0, 2.0, 0.8, "log"),
    "bed_loudness_lufs": (-30.0, -26.0, -22.0, "lin"),
    "bed_onsets_per_min": (10.0, 30.0, 90.0, "log"),
    "bed_centroid_hz": (700.0, 1400.0, 2500.0, "log"),
    "bed_tempo_bpm": (60.0, 90.0, 120.0, "lin"),
}


@dataclass(frozen=True)
class Mood:
    """Everything the schedule, the renderer and the bed search read from the mood.

    Attributes:
        energy: position on the scale, 0 (calm) to 1 (energetic).
        event_rate_per_min: mean events per minute for each event source (Poisson rate).
        gain_db_range: (low, high) event gain in dB, drawn uniformly.
        azimuth_spread_deg: events are placed at azimuths in [-spread, +spread] degrees
            (180 = all around the listener; 0 = straight ahead).
        elevation_range_deg: (low, high) elevation in degrees (+90 = above).
        distance_range_m: (near, far) distance in metres, drawn log-uniformly.
        drift_deg_per_s: events move in azimuth by up to this many degrees per second.
        event_lowpass_hz: brightness target: events are low-passed at this cut-off (Hz).
        min_spacing_s: no two events, across all sources, start closer than this (s).
        bed_loudness_lufs: preferred bed loudness (LUFS, short-term).
        bed_onsets_per_min: preferred bed onset density (onsets per minute).
        bed_centroid_hz: preferred bed brightness (mean spectral centroid, Hz).
        bed_tempo_bpm: preferred bed tempo (beats per minute).
    """

    energy: float
    event_rate_per_min: float
    gain_db_range: tuple[float, float]
    azimuth_spread_deg: float
    elevation_range_deg: tuple[float, float]
    distance_range_m: tuple[float, float]
    drift_deg_per_s: float
    event_lowpass_hz: float
    min_spacing_s: float
    bed_loudness_lufs: float
    bed_onsets_per_min: float
    bed_centroid_hz: float
    bed_tempo_bpm: float

    @classmethod
    def of(cls, value: str | float | Mood) -> Mood:
        """A mood from a name (calm, neutral, energetic), an energy in [0, 1] or a mood."""
        if isinstance(value, Mood):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            if key in NAMED_MOODS:
                return cls.of(NAMED_MOODS[key])
            try:
                value = float(key)
            except ValueError:
                raise ParameterError(f"unknown mood {value!r}; use calm, neutral, energetic or 0..1") from None
        energy = float(value)
        if not 0.0 <= energy <= 1.0:
            raise ParameterError(f"mood energy {energy} is outside [0, 1]")
        fields = {name: _interpolate(anchor, energy) for name, anchor in _ANCHORS.items()}
        return cls(energy=energy, **fields)

    def bed_weights(self) -> dict[str, float]:
        """What the bed search prefers: loudness (LUFS), onsets/min, centroid (Hz), tempo (BPM)."""
        return {
            "loudness_lufs": self.bed_loudness_lufs,
            "onsets_per_min": self.bed_onsets_per_min,
            "centroid_hz": self.bed_centroid_hz,
            "tempo_bpm": self.bed_tempo_bpm,
        }

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _interpolate(anchor: tuple[object, object, object, str], energy: float):
    calm, neutral, energetic, how = anchor
    lo, hi, t = (calm, neutral, energy / 0.5) if energy <= 0.5 else (neutral, energetic, (energy - 0.5) / 0.5)
    if isinstance(lo, tuple):
        return tuple(_mix(a, b, t, how) for a, b in zip(lo, hi))
    return _mix(lo, hi, t, how)


def _mix(a: float, b: float, t: float, how: str) -> float:
    if how == "log":
        return float(np.exp((1.0 - t) * np.log(a) + t * np.log(b)))
    return float((1.0 - t) * a + t * b)
