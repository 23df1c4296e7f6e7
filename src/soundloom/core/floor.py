"""The spectral floor of a clip: how far below its loudest bins its quietest bins lie (dB).

Clean partials over silence sit near -100 dB or lower; broadband noise under a sound (a blurred decoder's
fault, or Griffin-Lim's leakage) lifts it to roughly the noise level. Two views that can disagree:
:func:`spectral_floor_db` averages power over the whole clip first (the evaluation's measure), so it sees the
bins a sound never reaches; :func:`frame_floor_db` looks inside each sounding frame, where noise between a pluck's
harmonics shows even when the clip's average spectrum looks clean. The post-filter's calibration at export
(:mod:`soundloom.sounds.postfilter`) balances both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _stft_magnitude(clip: np.ndarray, sample_rate: int, window_s: float = 0.032) -> np.ndarray:
    """``|STFT|`` ``(bins, frames)`` of a clip with a Hann window of about ``window_s`` seconds (the next power of two
    in samples, at least 64; hop a quarter), zero-padded at the edges."""
    import librosa

    n_fft = int(2 ** np.ceil(np.log2(max(64, window_s * sample_rate))))
    wav = np.asarray(clip, dtype=np.float32)
    return np.abs(librosa.stft(wav, n_fft=n_fft, hop_length=n_fft // 4, pad_mode="constant"))


def spectral_floor_db(
    clips: Sequence[np.ndarray] | np.ndarray,
    sample_rate: int,
    quantile: float | Sequence[float] = 0.1,
    window_s: float = 0.032,
) -> np.ndarray:
    """Per-clip spectral floor in dB relative to the clip's loudest bin: ``(N,)``, or ``(N, Q)`` for a sequence
    of ``Q`` quantiles.

    The clip is analysed at its own rate with a Hann STFT of ``window_s`` (~32 ms); power is averaged over time and the
    floor is the median dB of the quietest ``quantile`` of bins. Silence is not trimmed: it adds no power, and a trimmed
    edge would add the broadband leakage of a step.
    """
    qs = np.atleast_1d(np.asarray(quantile, dtype=float))
    out = np.empty((len(clips), len(qs)))
    for i, clip in enumerate(clips):
        power = (_stft_magnitude(clip, sample_rate, window_s) ** 2).mean(axis=1)
        db = np.sort(10 * np.log10(np.maximum(power, 1e-30) / max(float(power.max()), 1e-30)))
        for j, q in enumerate(qs):
            out[i, j] = float(np.median(db[: max(1, int(round(q * len(db))))]))
    return out if np.ndim(quantile) else out[:, 0]


def frame_floor_db(
    clips: Sequence[np.ndarray] | np.ndarray, sample_rate: int, percentile: float = 10.0, active_db: float = 40.0
) -> np.ndarray:
    """Per-clip floor inside the sounding frames ``(N,)``, dB: per frame, the ``percentile`` of its bins' dB below
    the frame's loudest bin, the median over frames whose loudest bin is within ``active_db`` of the clip's
    loudest (the same ~32 ms Hann STFT as :func:`spectral_floor_db`). A silent clip gives 0."""
    out = np.zeros(len(clips))
    for i, clip in enumerate(clips):
        mag = _stft_magnitude(clip, sample_rate)
        db = 20 * np.log10(np.maximum(mag, 1e-10))
        peak = db.max(axis=0)
        active = peak >= peak.max() - active_db
        if mag.max() > 0:
            out[i] = float(np.median(np.percentile(db[:, active], percentile, axis=0) - peak[active]))
    return out
