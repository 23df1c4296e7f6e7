"""How two chunks are joined, shared by the renderer and the seam check so they cannot drift apart:
read audio around a cut, the chunk's loudness gain, the lag that lines B up with A, and the
equal-power crossfade.
"""

from __future__ import annotations

import numpy as np

from ..core.convert import resample, to_mono
from ..core.io import read_audio
from .catalog import Song
from .config import RenderConfig

#: Chunks at or below this loudness (LUFS) are treated as silent: no gain, not in the reference.
SILENT_LUFS = -70.0
#: Reference loudness of a pool without any audible chunk (LUFS).
EMPTY_POOL_LUFS = -20.0


def reference_lufs(chunk_lufs: np.ndarray) -> float:
    """The pool's median loudness over audible chunks (LUFS); :data:`EMPTY_POOL_LUFS` when there are none."""
    audible = np.asarray(chunk_lufs)[np.asarray(chunk_lufs) > SILENT_LUFS]
    return float(np.median(audible)) if len(audible) else EMPTY_POOL_LUFS


def chunk_gain_db(chunk_lufs: float, ref_lufs: float, cfg: RenderConfig) -> float:
    """Gain (dB) bringing a chunk to ``ref_lufs``, limited to +- ``cfg.max_gain_db``; 0 for silent
    chunks or when ``cfg.match_loudness`` is off."""
    if not cfg.match_loudness or chunk_lufs <= SILENT_LUFS:
        return 0.0
    return float(np.clip(ref_lufs - chunk_lufs, -cfg.max_gain_db, cfg.max_gain_db))


def read_span(song: Song, start: int, stop: int, sample_rate: int) -> np.ndarray:
    """Mono samples ``[start, stop)`` of the song's file (file-rate offsets), zero-padded outside the
    file, resampled to ``sample_rate``: ``(samples,)``."""
    lo, hi = max(0, start), min(stop, int(round(song.duration_s * song.sample_rate)))
    wav = to_mono(read_audio(song.path, lo, max(lo, hi))[0]) if hi > lo else np.zeros(0, np.float32)
    wav = np.concatenate([np.zeros(lo - start, np.float32), wav, np.zeros(max(0, stop - max(hi, lo)), np.float32)])
    if song.sample_rate != sample_rate:
        wav = resample(wav, song.sample_rate, sample_rate)
    return wav.astype(np.float32)


def best_lag(a: np.ndarray, b_wide: np.ndarray, max_lag: int) -> int:
    """Lag in ``[-max_lag, max_lag]`` at which ``b_wide[max_lag + lag : ... + len(a)]`` best matches ``a``
    (normalised cross-correlation); 0 when either side is silent."""
    if max_lag <= 0 or len(a) == 0:
        return 0
    wins = np.lib.stride_tricks.sliding_window_view(b_wide, len(a))  # (2 * max_lag + 1, len(a))
    num = wins @ a
    den = np.sqrt((wins**2).sum(1) * float(a @ a)) + 1e-9
    if float(a @ a) < 1e-8:
        return 0
    return int(np.argmax(num / den)) - max_lag


def equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in curves ``(n,)`` with ``out^2 + in^2 = 1``."""
    t = (np.arange(n, dtype=np.float32) + 0.5) / max(n, 1)
    return np.cos(0.5 * np.pi * t), np.sin(0.5 * np.pi * t)


def crossfade(a_over: np.ndarray, b_span: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Align B to A and crossfade them over ``2 * half = len(a_over)`` samples centred on the cut.

    Args:
        a_over: A's last ``2 * half`` samples: ``half`` before its cut and ``half`` past it.
        b_span: B from ``half + max_lag`` samples before its cut on (at least ``2 * half + 2 * max_lag``).
        max_lag: the alignment range (samples); B moves by the :func:`best_lag` within it.

    Returns:
        ``mixed (2 * half,)``, ``b_after`` (B from the end of the crossfade on) and the lag (samples).
    """
    n = len(a_over)
    shift = best_lag(a_over, b_span[: n + 2 * max_lag], max_lag) if n else 0
    b = b_span[max_lag + shift :]  # B from (cut - half + shift)
    fade_out, fade_in = equal_power(n)
    return a_over * fade_out + b[:n] * fade_in, b[n:], shift
