"""Place a mono event in space: stereo, binaural or first-order Ambisonics (FOA, AmbiX).

One direction convention for every layout, AmbiX's: azimuth in degrees counter-clockwise from
straight ahead, so **+90 = left, -90 = right**, 180 = behind; elevation +90 = up. Distance in
metres sets the level (inverse distance, 0 dB at 1 m, clamped to [1, 100] m) and a gentle
one-pole low-pass for air absorption (20 kHz at 1 m, about 10 kHz at 10 m, 3.4 kHz at 50 m) in
every layout.

- stereo: equal-power panning of the lateral component ``sin(az) cos(el)``
  (``left = cos(p)``, ``right = sin(p)``, ``p = (1 - lateral) pi / 4``; left^2 + right^2 = 1, so
  a source keeps its power as it moves; behind pans to the centre).
- binaural: convolution with an HRIR pair: OpenAL Soft's ``.mhr`` set when installed
  (``libopenal-data``), else Brown and Duda's spherical-head model. ``renderer.method`` says which.
- foa: ACN order W, Y, Z, X with SN3D normalisation:
  ``W = s, Y = s sin(az) cos(el), Z = s sin(el), X = s cos(az) cos(el)``.

A moving event (``drift_deg_per_s``) is panned sample by sample in stereo and FOA; binaural
crossfades between the HRIRs at its start and end directions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import signal

from ..core.errors import ParameterError
from .hrtf import HrirSet, SphericalHead, find_mhr, read_mhr

#: Output layouts and their channel counts.
LAYOUTS = {"stereo": 2, "binaural": 2, "foa": 4}
NEAR_M, FAR_M = 1.0, 100.0


@dataclass(frozen=True)
class Position:
    """Where an event sounds from (AmbiX convention: +90 degrees azimuth = left).

    Attributes:
        azimuth_deg: degrees counter-clockwise from straight ahead, at the event's start.
        elevation_deg: degrees above the horizon.
        distance_m: metres from the listener.
        drift_deg_per_s: azimuth change per second while the event sounds (0 = still).
    """

    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    distance_m: float = 1.0
    drift_deg_per_s: float = 0.0

    def azimuth_at(self, n_samples: int, sample_rate: int) -> np.ndarray | float:
        """Azimuth (degrees) per sample while moving, or a scalar when still."""
        if self.drift_deg_per_s == 0.0:
            return self.azimuth_deg
        return self.azimuth_deg + self.drift_deg_per_s * np.arange(n_samples) / sample_rate

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def distance_gain(distance_m: float) -> float:
    """Linear gain for a distance: 1 / d with d clamped to [1, 100] m (0 dB at 1 m, -40 dB at 100 m)."""
    return NEAR_M / float(np.clip(distance_m, NEAR_M, FAR_M))


def air_cutoff_hz(distance_m: float, sample_rate: int) -> float:
    """Cut-off (Hz) of the air-absorption low-pass: 20 kHz at 1 m falling as 1 / (1 + 0.1 (d - 1))."""
    d = float(np.clip(distance_m, NEAR_M, FAR_M))
    return min(20000.0 / (1.0 + 0.1 * (d - NEAR_M)), 0.45 * sample_rate)


def one_pole_lowpass(wav: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """First-order low-pass (6 dB/octave) along the last axis; a no-op at or above 0.45 x the rate."""
    if cutoff_hz >= 0.45 * sample_rate:
        return np.asarray(wav, dtype=np.float32)
    pole = float(np.exp(-2.0 * np.pi * cutoff_hz / sample_rate))
    return signal.lfilter([1.0 - pole], [1.0, -pole], wav, axis=-1).astype(np.float32)


def equal_power_gains(azimuth_deg, elevation_deg=0.0) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) gains with left^2 + right^2 = 1; +90 degrees azimuth = hard left."""
    lateral = np.sin(np.radians(azimuth_deg)) * np.cos(np.radians(elevation_deg))
    p = (1.0 - lateral) * np.pi / 4.0
    return np.cos(p), np.sin(p)


class Renderer(Protocol):
    layout: str
    channels: int
    method: str
    sample_rate: int

    def render(self, mono: np.ndarray, position: Position) -> np.ndarray:
        """(channels, samples) at ``sample_rate`` for a mono ``(samples,)`` event."""
        ...


class _Distance:
    """Distance gain and air absorption, shared by every layout."""

    sample_rate: int

    def _near_far(self, mono: np.ndarray, position: Position) -> np.ndarray:
        mono = np.asarray(mono, dtype=np.float32).reshape(-1)
        out = one_pole_lowpass(mono, air_cutoff_hz(position.distance_m, self.sample_rate), self.sample_rate)
        return out * np.float32(distance_gain(position.distance_m))


class StereoRenderer(_Distance):
    """Equal-power panning plus distance (see the module docstring)."""

    layout, channels, method = "stereo", 2, "equal-power pan"

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate

    def render(self, mono: np.ndarray, position: Position) -> np.ndarray:
        s = self._near_far(mono, position)
        left, right = equal_power_gains(position.azimuth_at(s.size, self.sample_rate), position.elevation_deg)
        return np.stack([s * left, s * right]).astype(np.float32)


class FoaRenderer(_Distance):
    """First-order Ambisonics, AmbiX (ACN W, Y, Z, X; SN3D) plus distance."""

    layout, channels, method = "foa", 4, "ambix (ACN, SN3D)"

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate

    def render(self, mono: np.ndarray, position: Position) -> np.ndarray:
        s = self._near_far(mono, position)
        az = np.radians(position.azimuth_at(s.size, self.sample_rate))
        el = np.radians(position.elevation_deg)
        y, z, x = np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)
        return np.stack(np.broadcast_arrays(s, s * y, s * z, s * x)).astype(np.float32)


class BinauralRenderer(_Distance):
    """HRIR convolution plus distance; the output is longer than the input by the HRIR length."""

    layout, channels = "binaural", 2

    def __init__(self, sample_rate: int, hrirs: HrirSet | SphericalHead):
        self.sample_rate, self.hrirs = sample_rate, hrirs
        self.method = f"hrtf: {hrirs.name}" if isinstance(hrirs, HrirSet) else hrirs.name

    def render(self, mono: np.ndarray, position: Position) -> np.ndarray:
        s = self._near_far(mono, position)
        start = self.hrirs.hrir(position.azimuth_deg, position.elevation_deg)
        out = signal.oaconvolve(s[None, :], start, axes=-1)
        end_az = position.azimuth_deg + position.drift_deg_per_s * s.size / self.sample_rate
        if abs(end_az - position.azimuth_deg) >= 1.0:
            end = signal.oaconvolve(s[None, :], self.hrirs.hrir(end_az, position.elevation_deg), axes=-1)
            ramp = np.linspace(0.0, 1.0, out.shape[1], dtype=np.float32)
            out = out * np.sqrt(1.0 - ramp) + end * np.sqrt(ramp)
        return out.astype(np.float32)


def make_renderer(layout: str, sample_rate: int, hrtf: str | Path | None = "auto") -> Renderer:
    """A renderer for ``stereo``, ``binaural`` or ``foa``.

    Args:
        hrtf: for binaural: ``"auto"`` (the installed ``.mhr`` closest in rate, else the spherical
            head), a path to a ``.mhr`` file, or ``None`` / ``"spherical-head"`` for the model.
    """
    if layout == "stereo":
        return StereoRenderer(sample_rate)
    if layout == "foa":
        return FoaRenderer(sample_rate)
    if layout != "binaural":
        raise ParameterError(f"unknown layout {layout!r}; use one of {sorted(LAYOUTS)}")
    if hrtf is None or hrtf == "spherical-head":
        return BinauralRenderer(sample_rate, SphericalHead(sample_rate))
    path = find_mhr(sample_rate) if hrtf == "auto" else Path(hrtf)
    if path is None:
        return BinauralRenderer(sample_rate, SphericalHead(sample_rate))
    return BinauralRenderer(sample_rate, read_mhr(path).resampled(sample_rate))
