"""Channel and rate conversion, and fitting clips to a fixed length."""

from __future__ import annotations

import numpy as np
import soxr

from .errors import ParameterError


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average channels: ``(channels, samples)`` or ``(samples,)`` -> ``(samples,)``."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav
    return wav[0] if wav.shape[0] == 1 else wav.mean(axis=0)


def resample(wav: np.ndarray, from_hz: int, to_hz: int, quality: str = "HQ") -> np.ndarray:
    """Resample with soxr along the last axis.

    Args:
        wav: ``(samples,)`` or ``(channels, samples)`` float32.
        quality: soxr quality ("QQ", "LQ", "MQ", "HQ", "VHQ").
    Returns:
        Same layout with ``round(samples * to_hz / from_hz)`` samples.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if from_hz == to_hz:
        return wav
    if wav.ndim == 1:
        return soxr.resample(wav, from_hz, to_hz, quality=quality).astype(np.float32, copy=False)
    out = soxr.resample(np.ascontiguousarray(wav.T), from_hz, to_hz, quality=quality)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def convert_audio(wav: np.ndarray, from_hz: int, to_hz: int, to_channels: int) -> np.ndarray:
    """Rate and channel conversion in one step; returns ``(to_channels, samples)``."""
    wav = np.atleast_2d(np.asarray(wav, dtype=np.float32))
    if wav.shape[0] != to_channels:
        if to_channels == 1:
            wav = wav.mean(axis=0, keepdims=True)
        elif wav.shape[0] == 1:
            wav = np.repeat(wav, to_channels, axis=0)
        else:
            raise ParameterError(f"cannot map {wav.shape[0]} channels to {to_channels}")
    return resample(wav, from_hz, to_hz)


def fade(wav: np.ndarray, fade_in: int = 0, fade_out: int = 0) -> np.ndarray:
    """Raised-cosine fades of ``fade_in`` / ``fade_out`` samples on the last axis (copy)."""
    wav = np.array(wav, dtype=np.float32, copy=True)
    n = wav.shape[-1]
    for length, head in ((min(fade_in, n), True), (min(fade_out, n), False)):
        if length <= 0:
            continue
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, length, dtype=np.float32))
        if head:
            wav[..., :length] *= ramp
        else:
            wav[..., n - length :] *= ramp[::-1]
    return wav


def fit_length(
    wav: np.ndarray,
    n_samples: int,
    fade_samples: int = 0,
    align: str = "start",
) -> np.ndarray:
    """Pad with zeros or trim so the last axis has ``n_samples``.

    Args:
        wav: ``(..., samples)``.
        fade_samples: length of the fade applied where the clip was cut (trim) so the cut
            does not click; padding needs no fade because the clip already ends where it ends.
        align: "start" keeps the beginning (onsets stay in place), "center" keeps the middle.
    """
    wav = np.asarray(wav, dtype=np.float32)
    n = wav.shape[-1]
    if n == n_samples:
        return wav.copy()
    if n > n_samples:
        offset = 0 if align == "start" else (n - n_samples) // 2
        out = wav[..., offset : offset + n_samples]
        return fade(out, fade_in=fade_samples if offset > 0 else 0, fade_out=fade_samples)
    left = 0 if align == "start" else (n_samples - n) // 2
    out = np.zeros(wav.shape[:-1] + (n_samples,), dtype=np.float32)  # np.pad costs ~30 us a call
    out[..., left : left + n] = wav
    return out
