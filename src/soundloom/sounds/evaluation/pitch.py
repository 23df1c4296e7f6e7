"""Pitch accuracy of pitched material, judged by librosa's pYIN (no model under test involved).

    result = pitch_accuracy(clips, sample_rate=16000, midi=[60, 64, 67])
    result["accuracy"], result["unvoiced"]     # hits / clips, clips with no usable pitch
    contour = contour_error_cents(continuations, truths, sample_rate=16000)

A clip is a hit when the median f0 of its voiced frames lies within ``tolerance_cents`` of the
asked MIDI pitch. A clip with too few voiced frames is a miss and is also counted as unvoiced,
so "wrong note" and "no note" can be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...core.convert import resample
from ...core.errors import ParameterError
from ...core.io import validate_audio
from .fixed_space import Clips

ANALYSIS_RATE_HZ = 16000


def _midi_to_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def cents(f_hz: np.ndarray, ref_hz: np.ndarray) -> np.ndarray:
    """Signed interval ``1200 log2(f / ref)`` in cents."""
    return 1200.0 * np.log2(np.asarray(f_hz, dtype=np.float64) / np.asarray(ref_hz, dtype=np.float64))


def f0_contours(
    clips: Clips,
    sample_rate: int,
    fmin_hz: float,
    fmax_hz: float,
    analysis_rate: int = ANALYSIS_RATE_HZ,
) -> list[np.ndarray]:
    """pYIN f0 per frame for each clip: a list of ``(frames,)`` arrays in Hz, NaN where unvoiced.

    Clips are resampled to ``analysis_rate`` (soxr); clips of equal length are analysed as one
    batch. Frames are ``frame_length / 4`` samples apart at ``analysis_rate``.
    """
    import librosa

    if not 0 < fmin_hz < fmax_hz:
        raise ParameterError(f"need 0 < fmin_hz < fmax_hz, got {fmin_hz}, {fmax_hz}")
    fmax_hz = min(fmax_hz, analysis_rate / 2 * 0.95)
    # The window must hold two periods of the lowest pitch.
    frame_length = int(2 ** np.ceil(np.log2(max(512, 4 * analysis_rate / fmin_hz))))
    wavs = []
    for i, clip in enumerate(clips):
        wav = np.asarray(clip, dtype=np.float32)
        validate_audio(wav, sample_rate, path=f"clip {i}", silence_db=None)
        wav = resample(wav, sample_rate, analysis_rate)
        if len(wav) < frame_length:
            wav = np.pad(wav, (0, frame_length - len(wav)))
        wavs.append(wav)
    out: list[np.ndarray] = [np.empty(0)] * len(wavs)
    by_length: dict[int, list[int]] = {}
    for i, w in enumerate(wavs):
        by_length.setdefault(len(w), []).append(i)
    for idx in by_length.values():
        f0, voiced, _ = librosa.pyin(
            np.stack([wavs[i] for i in idx]),
            fmin=fmin_hz,
            fmax=fmax_hz,
            sr=analysis_rate,
            frame_length=frame_length,
        )
        for row, i in enumerate(idx):
            out[i] = np.where(voiced[row], f0[row], np.nan)
    return out


def pitch_accuracy(
    clips: Clips,
    sample_rate: int,
    midi: Sequence[float],
    tolerance_cents: float = 50.0,
    min_voiced_fraction: float = 0.1,
    octave_range: float = 1.0,
) -> dict:
    """Share of clips whose median voiced f0 is within ``tolerance_cents`` of the asked MIDI pitch.

    Args:
        clips: ``(samples,)`` each at ``sample_rate`` Hz.
        midi: asked pitch per clip (MIDI note number; 69 = A4 = 440 Hz).
        min_voiced_fraction: a clip with fewer voiced frames than this share is unvoiced (a miss).
        octave_range: pYIN searches from ``octave_range`` octaves below the lowest asked pitch to
            as far above the highest, so an octave error is seen, not excluded.
    Returns:
        ``{"accuracy", "hits", "misses", "unvoiced", "n", "tolerance_cents", "per_clip"}``; each
        ``per_clip`` entry has ``midi``, ``f0_hz`` (None if unvoiced), ``error_cents``, ``voiced_fraction``
        and ``hit``.
    """
    midi_arr = np.asarray(midi, dtype=np.float64)
    if len(midi_arr) != len(clips):
        raise ParameterError(f"{len(midi_arr)} MIDI pitches for {len(clips)} clips")
    if len(clips) == 0:
        raise ParameterError("pitch_accuracy needs at least one clip")
    asked_hz = _midi_to_hz(midi_arr)
    fmin = float(asked_hz.min()) / 2**octave_range
    fmax = float(asked_hz.max()) * 2**octave_range
    contours = f0_contours(clips, sample_rate, fmin, fmax)
    per_clip, hits, unvoiced = [], 0, 0
    for m, hz, f0 in zip(midi_arr, asked_hz, contours):
        voiced = f0[np.isfinite(f0)]
        fraction = len(voiced) / max(len(f0), 1)
        if fraction < min_voiced_fraction or len(voiced) == 0:
            unvoiced += 1
            per_clip.append(
                {"midi": float(m), "f0_hz": None, "error_cents": None, "voiced_fraction": fraction, "hit": False}
            )
            continue
        median = float(np.median(voiced))
        err = float(cents(median, hz))
        hit = abs(err) <= tolerance_cents
        hits += hit
        per_clip.append(
            {"midi": float(m), "f0_hz": median, "error_cents": err, "voiced_fraction": fraction, "hit": bool(hit)}
        )
    n = len(clips)
    return {
        "accuracy": hits / n,
        "hits": hits,
        "misses": n - hits,
        "unvoiced": unvoiced,
        "n": n,
        "tolerance_cents": tolerance_cents,
        "per_clip": per_clip,
    }


def contour_error_cents(
    generated: Clips,
    truth: Clips,
    sample_rate: int,
    fmin_hz: float = 55.0,
    fmax_hz: float = 2000.0,
) -> dict:
    """f0 contour error of continuations against their continuation-truth.

    Per pair: median absolute cents over frames voiced in both (frames aligned from the start;
    the longer contour is cut). A pair with no frame voiced in both has error None and counts
    in ``no_overlap``.

    Returns:
        ``{"median_cents"}`` (median over pairs with overlap, None if none), ``"per_pair"`` (list of
        ``{"error_cents", "overlap_fraction"}``), ``"no_overlap"`` and ``"n"``.
    """
    if len(generated) != len(truth):
        raise ParameterError(f"{len(generated)} continuations for {len(truth)} truths")
    contours = f0_contours(list(generated) + list(truth), sample_rate, fmin_hz, fmax_hz)
    gen_c, truth_c = contours[: len(generated)], contours[len(generated) :]
    per_pair, errors = [], []
    for g, t in zip(gen_c, truth_c):
        n = min(len(g), len(t))
        g, t = g[:n], t[:n]
        both = np.isfinite(g) & np.isfinite(t)
        voiced_truth = max(int(np.isfinite(t).sum()), 1)
        if not both.any():
            per_pair.append({"error_cents": None, "overlap_fraction": 0.0})
            continue
        err = float(np.median(np.abs(cents(g[both], t[both]))))
        errors.append(err)
        per_pair.append({"error_cents": err, "overlap_fraction": float(both.sum() / voiced_truth)})
    return {
        "median_cents": float(np.median(errors)) if errors else None,
        "per_pair": per_pair,
        "no_overlap": len(per_pair) - len(errors),
        "n": len(per_pair),
    }
