"""Head-related impulse responses: OpenAL Soft's ``.mhr`` sets, or a spherical-head model.

Directions use the AmbiX convention everywhere in :mod:`soundloom.scapes`: azimuth in degrees
counter-clockwise from straight ahead (+90 = left, -90 = right), elevation in degrees (+90 = up).

``.mhr`` files: Debian's ``libopenal-data`` installs OpenAL Soft's default set (derived from the
MIT KEMAR measurements; LGPL-2+ with OpenAL Soft per Debian's copyright file, redistributable;
soundloom reads the installed file and ships none of it) as
``/usr/share/openal/hrtf/default-{44100,48000}.mhr``, format ``MinPHR02``:

    "MinPHR02"  u32 rate  u8 sample_type (0 = s16, 1 = s24)  u8 channel_type (0 = left only,
    1 = left + right)  u8 ir_size  u8 field_count (= 1 here)
    per field: u16 distance (mm)  u8 elevation_count  u8 azimuth_count[elevation_count]
    coefficients: per IR (elevation -90..+90, azimuth clockwise from front), ir_size samples
        (interleaved left, right when channel_type is 1), little-endian
    delays: per IR one u8 (two for left + right), whole samples at ``rate``

A left-only set is mirrored for the right ear (right at azimuth a = left at -a), as OpenAL Soft
does. The IRs are minimum-phase; the interaural time difference lives in the delays.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ..core.convert import resample
from ..core.errors import ModelFileError

#: Where OpenAL Soft's data files are installed (searched in order after $SOUNDLOOM_HRTF_DIR).
HRTF_DIRS = ("/usr/share/openal/hrtf", "/usr/local/share/openal/hrtf", "~/.local/share/openal/hrtf")
MHR_MAGIC_02 = b"MinPHR02"


@dataclass(frozen=True)
class HrirSet:
    """A measured set of head-related impulse responses.

    Attributes:
        sample_rate: Hz.
        azimuth_deg, elevation_deg: (N,) direction of each IR (AmbiX convention).
        left, right: (N, taps) minimum-phase impulse responses of each ear.
        delay_left, delay_right: (N,) onset delay of each ear in samples.
        name: where the set came from and its format.
    """

    sample_rate: int
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    left: np.ndarray
    right: np.ndarray
    delay_left: np.ndarray
    delay_right: np.ndarray
    name: str

    def nearest(self, azimuth_deg: float, elevation_deg: float) -> int:
        """Index of the measured direction closest (great-circle) to the given one."""
        wanted = _unit(azimuth_deg, elevation_deg)
        have = _unit(self.azimuth_deg, self.elevation_deg)
        return int(np.argmax(have.T @ wanted))

    def hrir(self, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
        """(2, taps + max delay) left/right impulse responses for a direction, delays applied."""
        i = self.nearest(azimuth_deg, elevation_deg)
        width = self.left.shape[1] + int(max(self.delay_left.max(), self.delay_right.max()))
        out = np.zeros((2, width), dtype=np.float32)
        for ch, (ir, delay) in enumerate(((self.left, self.delay_left), (self.right, self.delay_right))):
            d = int(delay[i])
            out[ch, d : d + ir.shape[1]] = ir[i]
        return out

    def resampled(self, sample_rate: int) -> HrirSet:
        """The same set at another rate (soxr for the IRs, delays scaled and rounded)."""
        if sample_rate == self.sample_rate:
            return self
        ratio = sample_rate / self.sample_rate
        irs = resample(np.concatenate([self.left, self.right]), self.sample_rate, sample_rate)
        n = self.left.shape[0]
        return HrirSet(
            sample_rate=sample_rate,
            azimuth_deg=self.azimuth_deg,
            elevation_deg=self.elevation_deg,
            left=np.ascontiguousarray(irs[:n], dtype=np.float32),
            right=np.ascontiguousarray(irs[n:], dtype=np.float32),
            delay_left=np.round(self.delay_left * ratio).astype(np.int64),
            delay_right=np.round(self.delay_right * ratio).astype(np.int64),
            name=f"{self.name} resampled to {sample_rate} Hz",
        )


def read_mhr(path: str | os.PathLike) -> HrirSet:
    """Read an OpenAL Soft ``MinPHR02`` file; raises :class:`ModelFileError` naming what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(path, f"unreadable HRTF file ({exc.strerror})") from exc
    if data[:8] != MHR_MAGIC_02:
        raise ModelFileError(path, f"not a MinPHR02 HRTF file (header {data[:8]!r}); only MinPHR02 is supported")
    if len(data) < 16:
        raise ModelFileError(path, "truncated HRTF header")
    rate, sample_type, channel_type, ir_size, field_count = struct.unpack_from("<IBBBB", data, 8)
    if sample_type not in (0, 1) or channel_type not in (0, 1):
        raise ModelFileError(path, f"unsupported sample type {sample_type} or channel type {channel_type}")
    if field_count != 1 or ir_size == 0:
        raise ModelFileError(path, f"unsupported layout: {field_count} fields, IR size {ir_size}")
    pos = 16
    if len(data) < pos + 3:
        raise ModelFileError(path, "truncated field header")
    _distance_mm, ev_count = struct.unpack_from("<HB", data, pos)
    pos += 3
    az_counts = np.frombuffer(data, dtype=np.uint8, count=ev_count, offset=pos).astype(np.int64)
    pos += ev_count
    if ev_count < 2 or np.any(az_counts == 0):
        raise ModelFileError(path, f"bad elevation/azimuth counts ({ev_count} elevations)")
    n_ir, ears, width = int(az_counts.sum()), 1 + channel_type, 2 + sample_type
    need = pos + n_ir * ir_size * ears * width + n_ir * ears
    if len(data) < need:
        raise ModelFileError(path, f"truncated: {len(data)} bytes, the header promises {need}")
    raw = np.frombuffer(data, dtype=np.uint8, count=n_ir * ir_size * ears * width, offset=pos)
    coeffs = _pcm_to_float(raw, width).reshape(n_ir, ir_size, ears)
    pos += raw.size
    delays = np.frombuffer(data, dtype=np.uint8, count=n_ir * ears, offset=pos).astype(np.int64).reshape(n_ir, ears)

    elevations = np.linspace(-90.0, 90.0, ev_count)
    el = np.repeat(elevations, az_counts)
    az_cw = np.concatenate([np.arange(k) * 360.0 / k for k in az_counts])
    left, d_left = coeffs[:, :, 0], delays[:, 0]
    if channel_type == 1:
        right, d_right = coeffs[:, :, 1], delays[:, 1]
    else:  # mirror: the right ear at azimuth a hears what the left ear hears at -a
        offsets = np.concatenate([[0], np.cumsum(az_counts)[:-1]])
        mirror = np.concatenate([o + (k - np.arange(k)) % k for o, k in zip(offsets, az_counts)])
        right, d_right = left[mirror], d_left[mirror]
    azimuth = (-az_cw + 180.0) % 360.0 - 180.0  # file: clockwise (+90 = right); ours: AmbiX (+90 = left)
    return HrirSet(
        sample_rate=int(rate),
        azimuth_deg=azimuth,
        elevation_deg=el,
        left=np.ascontiguousarray(left, dtype=np.float32),
        right=np.ascontiguousarray(right, dtype=np.float32),
        delay_left=d_left,
        delay_right=d_right,
        name=f"{path} (MinPHR02)",
    )


def find_mhr(sample_rate: int) -> Path | None:
    """The installed ``.mhr`` file whose rate is closest to ``sample_rate`` (None when none is installed)."""
    dirs = [os.environ.get("SOUNDLOOM_HRTF_DIR", ""), *HRTF_DIRS]
    files = [p for d in dirs if d for p in sorted(Path(d).expanduser().glob("*.mhr"))]
    best, best_gap = None, None
    for p in files:
        try:
            with open(p, "rb") as f:
                head = f.read(12)
        except OSError:
            continue
        if head[:8] != MHR_MAGIC_02:
            continue
        gap = abs(struct.unpack_from("<I", head, 8)[0] - sample_rate)
        if best_gap is None or gap < best_gap:
            best, best_gap = p, gap
    return best


class SphericalHead:
    """Brown and Duda's (1998) spherical-head model: a head-shadow filter and a delay per ear.

    Each ear gets the one-pole/one-zero shadow filter ``H(s) = (alpha s + beta) / (s + beta)``
    with ``beta = 2 c / a`` (bilinear transform), where ``alpha`` runs from 2 (+6 dB, ear facing
    the source) to about 0.1 (-20 dB, shadowed) with the angle between the ear and the source, and
    the delay ``a / c (1 - cos theta)`` (lit side) or ``a / c (1 + theta - pi / 2)`` (shadowed).
    """

    name = "spherical-head (Brown & Duda 1998)"

    def __init__(self, sample_rate: int, radius_m: float = 0.0875, speed_of_sound: float = 343.0, taps: int = 256):
        self.sample_rate, self.radius_m, self.c, self.taps = sample_rate, radius_m, speed_of_sound, taps

    def hrir(self, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
        """(2, taps) left/right impulse responses for a direction (AmbiX convention)."""
        lateral = float(_unit(azimuth_deg, elevation_deg)[1])  # +1 = towards the left ear
        out = np.zeros((2, self.taps), dtype=np.float32)
        beta, fs2 = 2.0 * self.c / self.radius_m, 2.0 * self.sample_rate
        impulse = np.zeros(self.taps)
        for ch, ear in enumerate((1.0, -1.0)):
            theta = float(np.arccos(np.clip(ear * lateral, -1.0, 1.0)))  # angle source <-> ear axis
            alpha = 1.05 + 0.95 * np.cos(np.degrees(theta) / 150.0 * np.pi)
            if theta < np.pi / 2:
                delay_s = self.radius_m / self.c * (1.0 - np.cos(theta))
            else:
                delay_s = self.radius_m / self.c * (1.0 + theta - np.pi / 2)
            d = int(round(delay_s * self.sample_rate))
            impulse[:] = 0.0
            impulse[min(d, self.taps - 1)] = 1.0
            b = [fs2 * alpha + beta, beta - fs2 * alpha]
            a = [fs2 + beta, beta - fs2]
            out[ch] = signal.lfilter(b, a, impulse)
        return out


def _unit(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vectors (3, ...) x front, y left, z up."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])


def _pcm_to_float(raw: np.ndarray, width: int) -> np.ndarray:
    """Little-endian signed 16- or 24-bit PCM bytes -> float32 in [-1, 1)."""
    if width == 2:
        return raw.view("<i2").astype(np.float32) / 32768.0
    b = raw.reshape(-1, 3).astype(np.int32)
    value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    value = np.where(value >= 1 << 23, value - (1 << 24), value)
    return value.astype(np.float32) / 8388608.0
