"""Audio at the edges of chunks: tail windows (just before a chunk's end) and head windows (from its start).

Every transition model judges a join from these two windows only, so they are cut the same way
everywhere: the tail of a chunk ending at sample ``e`` is ``[e - W, e)``, the head of a chunk
starting at ``s`` is ``[s, s + W)``; nothing on the far side of a cut leaks in.
"""

from __future__ import annotations

import numpy as np

from ..core.levels import k_weight

#: Seam windows (the gate metrics use 50 ms either side of a join).
SEAM_MS = 50.0
#: Spectral bands kept for the predicted seam cosine.
SEAM_BANDS = 128


def edge_windows(wav: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Tail and head windows of chunks of one song.

    Args:
        wav: mono song ``(samples,)``.
        starts, ends: chunk bounds in samples ``(n,)``.
        width: window length W in samples.

    Returns:
        tails ``(n, W)`` = ``wav[e - W : e]`` and heads ``(n, W)`` = ``wav[s : s + W]``, zero-padded
        where the song is too short.
    """
    padded = np.concatenate([np.zeros(width, np.float32), wav.astype(np.float32), np.zeros(width, np.float32)])
    idx = np.arange(width)
    tails = padded[(np.asarray(ends)[:, None] - width + width) + idx[None, :]]
    heads = padded[(np.asarray(starts)[:, None] + width) + idx[None, :]]
    return tails, heads


#: BS.1770 K-weighting as pyloudnorm's ``Meter`` builds it: a +4 dB high shelf at 1500 Hz, then a
#: 38 Hz high-pass (gain dB, Q, corner Hz, kind of :class:`pyloudnorm.IIRfilter`).
def chunk_loudness(kw: np.ndarray, starts: np.ndarray, ends: np.ndarray, sample_rate: int) -> np.ndarray:
    """Loudness (LUFS) of each chunk from a K-weighted song: 400 ms blocks gated at -70 LUFS.

    Cheaper than one meter per chunk and equal to it without the relative gate. ``(n,)``; -70 for silence.
    """
    block = int(0.4 * sample_rate)
    out = np.full(len(starts), -70.0, dtype=np.float32)
    sq = kw * kw
    for i, (s, e) in enumerate(zip(starts, ends)):
        seg = sq[s:e]
        nb = max(1, len(seg) // block)
        blocks = (
            seg[: nb * block].reshape(nb, -1).mean(axis=1)
            if len(seg) >= block
            else np.array([seg.mean() if len(seg) else 0.0])
        )
        lufs = -0.691 + 10 * np.log10(blocks + 1e-20)
        kept = blocks[lufs > -70.0]
        if len(kept):
            out[i] = -0.691 + 10 * np.log10(kept.mean())
    return out


def integrated_loudness(wav: np.ndarray, sample_rate: int) -> float:
    """BS.1770 integrated loudness (LUFS) of mono ``(samples,)``: 400 ms blocks, 75 % overlap,
    absolute gate -70 LUFS, relative gate -10 LU. Same result as pyloudnorm, with vectorised
    gating (pyloudnorm loops over blocks in Python: seconds for a 10-minute stream)."""
    z2 = k_weight(wav, sample_rate) ** 2
    block, step = int(0.4 * sample_rate), int(0.1 * sample_rate)
    if len(z2) < block:
        return float(-0.691 + 10 * np.log10(z2.mean() + 1e-20)) if len(z2) else float("-inf")
    csum = np.concatenate([[0.0], np.cumsum(z2)])
    starts = np.arange(0, len(z2) - block + 1, step)
    ms = (csum[starts + block] - csum[starts]) / block
    lk = -0.691 + 10 * np.log10(ms + 1e-20)
    kept = ms[lk > -70.0]
    if not len(kept):
        return float("-inf")
    rel = -0.691 + 10 * np.log10(kept.mean()) - 10.0
    kept = kept[(-0.691 + 10 * np.log10(kept + 1e-20)) > rel]
    return float(-0.691 + 10 * np.log10(kept.mean()))


def seam_spectra(windows: np.ndarray) -> np.ndarray:
    """Hann-windowed magnitude spectra pooled into :data:`SEAM_BANDS` linear bands, unit norm.

    Args: windows ``(n, samples)``. Returns ``(n, SEAM_BANDS)`` float32 (cosine = dot product).
    """
    n = windows.shape[1]
    mag = np.abs(np.fft.rfft(windows * np.hanning(n)[None, :].astype(np.float32), axis=1))
    bins = mag.shape[1] - mag.shape[1] % SEAM_BANDS
    bands = mag[:, :bins].reshape(len(windows), SEAM_BANDS, -1).sum(axis=2)
    return (bands / (np.linalg.norm(bands, axis=1, keepdims=True) + 1e-9)).astype(np.float32)


def rms_db_rows(windows: np.ndarray) -> np.ndarray:
    """RMS level (dBFS) of each row of ``(n, samples)``: ``(n,)``."""
    return (10 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=1) + 1e-10)).astype(np.float32)


def spectral_centroid_hz(wav: np.ndarray, starts: np.ndarray, ends: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean spectral centroid (Hz) of each chunk from 2048-sample frames at a 4096 stride: ``(n,)``."""
    out = np.zeros(len(starts), dtype=np.float32)
    freqs = np.fft.rfftfreq(2048, 1.0 / sample_rate)
    for i, (s, e) in enumerate(zip(starts, ends)):
        seg = wav[s:e]
        if len(seg) < 2048:
            continue
        frames = np.lib.stride_tricks.sliding_window_view(seg, 2048)[::4096]
        mag = np.abs(np.fft.rfft(frames, axis=1))
        out[i] = float(np.mean((mag @ freqs) / (mag.sum(axis=1) + 1e-9)))
    return out
