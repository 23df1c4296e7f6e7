"""Level following for continuations: each sound the model adds after a prompt is kept near the prompt's level.

A prior continues a prompt window by window, and once its window slides the context restarts from the silence
after a sound, so the next sound is drawn at its label's usual level, not the prompt's speaker's. Here the
added part is cut into sounds (runs of frames within ``SILENCE_DB`` of the prompt's active level, closer runs
merged, the shortest left out; one the prompt's end cuts through is the prompt's and keeps its level), each
sound's active level is measured against the prompt's, and a sound more than ``tolerance_db`` louder or
quieter gets a constant gain that brings it to that tolerance, at most ``max_gain_db``. The gain changes only
between sounds, smoothed over ``RAMP_S``, and is exactly 0 dB on the prompt. Frames more than ``SILENCE_DB``
below the prompt are no sound: they are never measured, and a near-silent stretch gets no gain of its own
(only the ramp between its neighbours' gains, each bounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.02  # level frames
SILENCE_DB = 40.0  # frames this far below the prompt's active level are silence
MERGE_S = 0.15  # runs of sound closer than this are one sound (a stop's closure inside a word)
# Shorter sounds are not measured (a click, or the onset of a sound the output's end cuts off: its level is
# its first few frames'); they keep the gain around them.
MIN_SOUND_S = 0.1
RAMP_S = 0.05  # the shortest gain change
MAX_GAIN_DB = 12.0


@dataclass(frozen=True)
class FollowedSound:
    """One sound of the added part: samples ``[start, end)``, its active level and the gain it got (dB)."""

    start: int
    end: int
    level_db: float
    gain_db: float
    bounded: bool  # it needed more than the gain's bound
    carried: bool = False  # the prompt's own last sound, carried on past its end: never followed

    def to_dict(self, rate: int) -> dict:
        return {
            "start_s": round(self.start / rate, 4),
            "end_s": round(self.end / rate, 4),
            "level_db": round(self.level_db, 2),
            "gain_db": round(self.gain_db, 2),
            "bounded": self.bounded,
            "carried": self.carried,
        }


def frame_samples(rate: int) -> int:
    """Samples in one level frame (``FRAME_S``) at ``rate`` Hz."""
    return max(1, int(round(FRAME_S * rate)))


def frame_powers(wav: np.ndarray, frame: int) -> np.ndarray:
    """Mean square of each ``frame``-sample frame of ``wav`` ``(samples,)``; a last partial frame counts."""
    x = np.asarray(wav, dtype=np.float64)
    n = -(-len(x) // frame)
    padded = np.zeros(n * frame)
    padded[: len(x)] = x * x
    counts = np.full(n, float(frame))
    if n and len(x) % frame:
        counts[-1] = len(x) % frame
    return padded.reshape(n, frame).sum(axis=1) / counts


def active_level_db(wav: np.ndarray, rate: int) -> float | None:
    """Level (dB of mean square) of the frames of ``wav`` within ``SILENCE_DB`` of its loudest one; None if
    it is all zeros."""
    p = frame_powers(wav, frame_samples(rate))
    if not len(p) or p.max() <= 0.0:
        return None
    return float(10 * np.log10(p[p >= p.max() * 10 ** (-SILENCE_DB / 10)].mean()))


def _sounds(wav: np.ndarray, start: int, rate: int, floor_db: float) -> list[tuple[int, int, float]]:
    """Sounds of ``wav[start:]``: ``(start, end, active level dB)``, runs of frames above ``floor_db``, merged
    across gaps shorter than ``MERGE_S``, at least ``MIN_SOUND_S`` long."""
    frame = frame_samples(rate)
    p = frame_powers(wav[start:], frame)
    loud = p >= 10 ** (floor_db / 10)
    idx = np.flatnonzero(loud)
    if not len(idx):
        return []
    merge = max(1, int(round(MERGE_S / FRAME_S)))
    breaks = np.flatnonzero(np.diff(idx) > merge)
    firsts = np.concatenate([[idx[0]], idx[breaks + 1]])
    lasts = np.concatenate([idx[breaks], [idx[-1]]])
    out = []
    shortest = max(1, int(round(MIN_SOUND_S / FRAME_S)))
    for a, b in zip(firsts, lasts):
        if b + 1 - a < shortest:
            continue
        level = float(10 * np.log10(p[a : b + 1][loud[a : b + 1]].mean()))
        out.append((start + int(a) * frame, min(len(wav), start + (int(b) + 1) * frame), level))
    return out


def follow_level(
    wav: np.ndarray,
    prompt: np.ndarray,
    rate: int,
    tolerance_db: float,
    max_gain_db: float = MAX_GAIN_DB,
) -> tuple[np.ndarray, list[FollowedSound]]:
    """``wav`` ``(samples,)`` whose first ``len(prompt)`` samples are the prompt's, with each sound after them
    brought within ``tolerance_db`` of the prompt's active level (gain at most ``max_gain_db`` either way).

    A sound the prompt's end cuts through (sound in the prompt's last frame and in the first frame after it) is
    the prompt's own, carried on: it keeps its level (0 dB), so a note's decay or a word's fall is not lifted;
    only the sounds that begin after it follow. Returns the new audio (float32; the prompt's samples unchanged,
    bit for bit) and the sounds found after the prompt with their gains. A silent prompt leaves everything as it
    is.
    """
    wav = np.asarray(wav, dtype=np.float32)
    start = len(prompt)
    reference = active_level_db(prompt, rate)
    if reference is None or start >= len(wav):
        return wav.copy(), []
    floor = reference - SILENCE_DB
    frame = frame_samples(rate)
    sounding_end = frame_powers(prompt[-frame:], frame)[0] >= 10 ** (floor / 10)
    found = []
    for a, b, level in _sounds(wav, start, rate, floor):
        if a == start and sounding_end:
            found.append(FollowedSound(a, b, level, 0.0, False, carried=True))
            continue
        dev = level - reference
        want = float(np.clip(dev, -tolerance_db, tolerance_db) - dev)
        gain = float(np.clip(want, -max_gain_db, max_gain_db))
        found.append(FollowedSound(a, b, level, gain, abs(want) > max_gain_db))
    if not any(s.gain_db for s in found):
        return wav.copy(), found
    # Target gain: 0 dB until half a ramp after the prompt, constant over each sound, linear between sounds;
    # a centred moving average of one ramp then smooths every change, and keeps the prompt's side exactly 0.
    half = max(1, int(round(RAMP_S * rate / 2)))
    xs, ys = [0.0, float(start + half)], [0.0, 0.0]
    for s in found:
        first = max(float(s.start), xs[-1] + 1)  # a sound that overlaps the first ramp: a step, smoothed below
        last = max(float(s.end - 1), first + 1)
        xs += [first, last]
        ys += [s.gain_db, s.gain_db]
    target = np.interp(np.arange(len(wav), dtype=np.float64), xs, ys)
    padded = np.concatenate([np.zeros(half), target, np.full(half, target[-1])])
    sums = np.concatenate([[0.0], np.cumsum(padded)])
    width = 2 * half + 1
    gain_db = (sums[width:] - sums[:-width]) / width
    out = wav.copy()
    out[start:] = (wav[start:] * 10 ** (gain_db[start:] / 20)).astype(np.float32)
    return out, found
