"""Level normalisation: peak, RMS and loudness (LUFS, ITU-R BS.1770 via pyloudnorm).

Every strategy has a silence floor: a clip quieter than the floor is returned unchanged so that
silence and noise floors are never blown up to full scale.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm

from .convert import resample
from .errors import ParameterError

#: pyloudnorm's gating block: 400 ms.
LOUDNESS_BLOCK_S = 0.4


#: ITU-R BS.1770 K-weighting: (gain dB, Q, corner Hz, kind) of its two biquads (shelf, then RLB high-pass).
K_WEIGHTING = ((4.0, 1 / np.sqrt(2), 1500.0, "high_shelf"), (0.0, 0.5, 38.0, "high_pass"))


def k_weight(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """BS.1770 K-weighted signal, float64, same shape as ``wav`` (filtered along the last axis).

    For measures that need the weighted signal itself (chunk loudness, short-term loudness), which
    pyloudnorm's ``Meter`` keeps to itself; built from pyloudnorm's public filter class.
    """
    out = np.asarray(wav, dtype=np.float64)
    for gain_db, q, fc, kind in K_WEIGHTING:
        out = pyloudnorm.IIRfilter(gain_db, q, fc, sample_rate, kind).apply_filter(out)
    return out


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float, floor_db: float = -200.0) -> float:
    return float(max(20.0 * np.log10(max(gain, 1e-30)), floor_db))


def peak_db(wav: np.ndarray) -> float:
    """Sample peak in dBFS."""
    return gain_to_db(float(np.max(np.abs(wav))) if np.size(wav) else 0.0)


def rms_db(wav: np.ndarray) -> float:
    """RMS level in dBFS (all channels together)."""
    return gain_to_db(float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if np.size(wav) else 0.0)


def true_peak_db(wav: np.ndarray, sample_rate: int, oversample: int = 4) -> float:
    """Approximate true peak (dBTP) by 4x oversampling, as BS.1770-4 Annex 2 suggests."""
    if np.size(wav) == 0:
        return -200.0
    up = resample(np.atleast_2d(wav), sample_rate, sample_rate * oversample, quality="MQ")
    return gain_to_db(float(np.max(np.abs(up))))


def loudness_lufs(wav: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of ``(samples,)`` or ``(channels, samples)``.

    Clips shorter than the 400 ms gating block are measured as one block of their own length
    (K-weighted mean square without gating), so short one-shots still get a loudness.
    Returns -inf for digital silence.
    """
    data = np.asarray(wav, dtype=np.float64)
    data = data.T if data.ndim == 2 else data
    n = data.shape[0]
    if n == 0 or not np.any(data):
        return float("-inf")
    duration = n / sample_rate
    block = LOUDNESS_BLOCK_S if duration >= LOUDNESS_BLOCK_S else duration
    meter = pyloudnorm.Meter(sample_rate, block_size=block)
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(data))


def normalize_peak(wav: np.ndarray, headroom_db: float = 1.0, floor_db: float = -60.0) -> np.ndarray:
    """Scale so the sample peak sits at ``-headroom_db`` dBFS; quieter than ``floor_db``: unchanged."""
    peak = peak_db(wav)
    if peak <= floor_db:
        return np.asarray(wav, dtype=np.float32).copy()
    return (np.asarray(wav, dtype=np.float32) * db_to_gain(-headroom_db - peak)).astype(np.float32)


def normalize_rms(
    wav: np.ndarray, target_db: float = -20.0, headroom_db: float = 1.0, floor_db: float = -60.0
) -> np.ndarray:
    """Scale to an RMS of ``target_db`` dBFS, then limit the gain so the peak keeps ``headroom_db``."""
    level = rms_db(wav)
    if level <= floor_db:
        return np.asarray(wav, dtype=np.float32).copy()
    gain_db = min(target_db - level, -headroom_db - peak_db(wav))
    return (np.asarray(wav, dtype=np.float32) * db_to_gain(gain_db)).astype(np.float32)


def normalize_loudness(
    wav: np.ndarray,
    sample_rate: int,
    target_lufs: float = -23.0,
    headroom_db: float | None = 1.0,
    floor_lufs: float = -70.0,
    true_peak: bool = False,
) -> np.ndarray:
    """Scale to ``target_lufs`` integrated loudness.

    Args:
        headroom_db: if set, the gain is lowered so the (sample or true) peak stays at or below
            ``-headroom_db`` dBFS; the result may then be quieter than the target.
        floor_lufs: clips quieter than this are returned unchanged (silence stays silence).
        true_peak: limit on the 4x-oversampled true peak rather than the sample peak.
    """
    level = loudness_lufs(wav, sample_rate)
    if not np.isfinite(level) or level <= floor_lufs:
        return np.asarray(wav, dtype=np.float32).copy()
    gain_db = target_lufs - level
    if headroom_db is not None:
        peak = true_peak_db(wav, sample_rate) if true_peak else peak_db(wav)
        gain_db = min(gain_db, -headroom_db - peak)
    return (np.asarray(wav, dtype=np.float32) * db_to_gain(gain_db)).astype(np.float32)


def normalize(wav: np.ndarray, sample_rate: int, strategy: str = "peak", **kwargs: float) -> np.ndarray:
    """Dispatch by name: "peak", "rms", "loudness" or "none"."""
    if strategy == "peak":
        return normalize_peak(wav, **kwargs)
    if strategy == "rms":
        return normalize_rms(wav, **kwargs)
    if strategy == "loudness":
        return normalize_loudness(wav, sample_rate, **kwargs)
    if strategy == "none":
        return np.asarray(wav, dtype=np.float32)
    raise ParameterError(f"unknown normalisation {strategy!r}; use peak, rms, loudness or none")
