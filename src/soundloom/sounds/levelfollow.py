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

Window following (``window_db``) then keeps the level of each window of ``window`` samples (RMS over the window,
silence included: a window holding a short sound reads quieter than one holding a long one at the same level)
within ``window_db`` of the next one's. It moves each sound's constant gain from the gain
above, least squares over the windows from the output's start (and, weighted less, those at every
``WINDOW_STEP_S`` between), as far as the sounds allow: no sound further than ``WINDOW_SOUND_DB`` from the
prompt's active level, no gain over ``max_gain_db``, and silence never lifted (a window with no sound in it stays
as quiet as it is: a pause is the sampler's to redraw, :class:`soundloom.sounds.Generator`'s pause guard).
What no gain can hold (a sound whose own envelope spans two windows, a sound that ends long before the output does)
is the sampler's too: the Generator's window guard draws it again (:func:`window_jump_db`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

FRAME_S = 0.02  # level frames
SILENCE_DB = 40.0  # frames this far below the prompt's active level are silence
MERGE_S = 0.15  # runs of sound closer than this are one sound (a stop's closure inside a word)
# Shorter sounds are not measured (a click, or the onset of a sound the output's end cuts off: its level is
# its first few frames'); they keep the gain around them.
MIN_SOUND_S = 0.1
RAMP_S = 0.05  # the shortest gain change
MAX_GAIN_DB = 12.0
# Window following: a sound may move this far from the prompt's active level to hold its windows' level (two
# sounds each within it are within twice it of each other; real speakers' clips differ by 5.6 dB at the 90th
# percentile, see the README).
WINDOW_SOUND_DB = 6.0
# Windows held: the grid of windows from the output's start (where a reader's windows begin), and, with a quarter
# of that weight in all, the pairs of windows beginning every WINDOW_STEP_S between (a reader whose windows are a
# little longer or shorter drifts off the grid). All offsets at full weight pull against the grid: speech with
# pauses has offsets at which no gains hold every pair (real digits, clips one after another, at 0.5 s off the
# grid: every sequence has a jump over 6 dB).
WINDOW_STEP_S = 0.01
OFFSET_SHARE = 0.25
# The defaults a Generator continues with (:class:`soundloom.sounds.Generator`): two adjacent training-length
# windows within 5 dB (a dB under the 6-dB target: a reader's windows need not begin where these do), and a
# continuation with a window more than 10 dB below the prompt's drawn again (real speech of the held-out digits
# speakers, clips one after another: no window more than 7.0 dB below the first clip's, over 100 sequences), at
# most 4 times.
FOLLOW_WINDOW_DB = 5.0
PAUSE_GUARD_DB = 10.0
PAUSE_REDRAWS = 4
# The window guard: a continuation whose adjacent training-length windows (on the grid from the output's start, and
# whole windows half a window apart from it) still differ by more than the window following's own bound after it is
# drawn again (with the pause guard's budget). Chosen on the bench's seed-0 draws only: on the grid, every
# continuation the follower held was within 4.6 dB and the ones it could not hold over 6; the half-window reading
# (real speech: 0 of 50 sequences over 6 dB, the continuations 9-16 of 100) was added there too.
WINDOW_GUARD_DB = FOLLOW_WINDOW_DB
# Windows of silence read this far below the output's peak (a window of zeros is not an infinite jump).
JUMP_FLOOR_DB = 60.0
# The windows are held this much inside the bound: the gains' ramps and the frames between sounds, which the
# solver counts at 0 dB, move a window's level by a little.
WINDOW_MARGIN_DB = 0.5


@dataclass(frozen=True)
class FollowedSound:
    """One sound of the added part: samples ``[start, end)``, its active level and the gain it got (dB)."""

    start: int
    end: int
    level_db: float
    gain_db: float
    bounded: bool  # it needed more than the gain's bound
    carried: bool = False  # the prompt's own last sound, carried on past its end: never followed
    window_gain_db: float = 0.0  # the part of ``gain_db`` that window following added

    def to_dict(self, rate: int) -> dict:
        return {
            "start_s": round(self.start / rate, 4),
            "end_s": round(self.end / rate, 4),
            "level_db": round(self.level_db, 2),
            "gain_db": round(self.gain_db, 2),
            "bounded": self.bounded,
            "carried": self.carried,
            "window_gain_db": round(self.window_gain_db, 2),
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


def ends_in_sound(prompt: np.ndarray, rate: int) -> bool:
    """Whether the last level frame of ``prompt`` ``(samples,)`` holds sound (within ``SILENCE_DB`` of its active
    level): a continuation then carries that sound on (its decay is the prompt's, not a pause)."""
    reference = active_level_db(prompt, rate)
    if reference is None:
        return False
    frame = frame_samples(rate)
    return bool(frame_powers(prompt[-frame:], frame)[0] >= 10 ** ((reference - SILENCE_DB) / 10))


def window_level_db(wav: np.ndarray) -> float | None:
    """RMS level (dB) of ``wav`` ``(samples,)``, silence included; None if it is all zeros."""
    ms = float(np.mean(np.square(wav, dtype=np.float64))) if len(wav) else 0.0
    return 10 * np.log10(ms) if ms > 0.0 else None


def sliding_window_levels_db(wav: np.ndarray, first: int, window: int, rate: int) -> np.ndarray:
    """RMS levels (dB, -inf for zeros) of the windows of ``window`` samples of ``wav`` ``(samples,)`` that begin
    at ``first`` or later, one every ``WINDOW_STEP_S``, the last ending at the output's end; empty when none fits."""
    n, first = len(wav), max(first, 0)
    if n - first < window:
        return np.zeros(0)
    step = max(1, int(round(WINDOW_STEP_S * rate)))
    starts = np.unique(np.append(np.arange(first, n - window + 1, step), n - window))
    sums = np.concatenate([[0.0], np.cumsum(np.square(wav, dtype=np.float64))])
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.maximum(sums[starts + window] - sums[starts], 0.0) / window)


def quietest_window_db(wav: np.ndarray, first: int, window: int, rate: int) -> float | None:
    """RMS level (dB) of the quietest window of :func:`sliding_window_levels_db`; -inf for a window of zeros,
    None when none fits."""
    levels = sliding_window_levels_db(wav, first, window, rate)
    return float(levels.min()) if len(levels) else None


def window_jump_db(wav: np.ndarray, window: int, prompt_samples: int = 0, half_hop: bool = False) -> float:
    """Largest ``|dB|`` between the RMS levels of adjacent ``window``-sample windows of ``wav`` ``(samples,)`` on the
    grid from its start (a last window cut by the output's end counts when it holds half a window; levels floored
    ``JUMP_FLOOR_DB`` below the peak), pairs that lie inside the first ``prompt_samples`` left out; 0.0 when no pair
    is left. With ``half_hop``, also between whole windows half a window apart from the start (a reader whose
    windows overlap by half)."""
    x = np.asarray(wav, dtype=np.float64)
    n = len(x)
    peak = float(np.max(x * x)) if n else 0.0
    if peak <= 0.0:
        return 0.0
    sums = np.concatenate([[0.0], np.cumsum(x * x)])

    def largest(starts: np.ndarray) -> float:
        if len(starts) < 2:
            return 0.0
        ends = np.minimum(starts + window, n)
        power = (sums[ends] - sums[starts]) / (ends - starts)
        levels = 10 * np.log10(np.maximum(power, peak * 10 ** (-JUMP_FLOOR_DB / 10)))
        jumps = np.abs(np.diff(levels))[ends[1:] > prompt_samples]
        return float(jumps.max()) if len(jumps) else 0.0

    grid = np.arange(0, n, max(int(window), 1))
    jump = largest(grid[n - grid >= window // 2])
    if half_hop:
        jump = max(jump, largest(np.arange(0, n - window + 1, max(int(window) // 2, 1))))
    return jump


def _hold_windows(
    wav: np.ndarray,
    rate: int,
    found: list[FollowedSound],
    active_db: float,
    window: int,
    window_db: float,
    max_gain_db: float,
) -> list[FollowedSound]:
    """``found`` with gains moved so that two adjacent windows of ``window`` samples (on the grid from the output's
    start, and at a quarter of the weight in all, one pair every ``WINDOW_STEP_S`` between; a last window cut by
    the output's end counts when it holds half a window) differ in RMS level by at most ``window_db``, as far as
    the bounds allow (:func:`follow_level`): least squares of the excess over the bound, bounded gains."""
    from scipy.optimize import minimize

    free = [i for i, s in enumerate(found) if not s.carried]
    n = len(wav)
    if not free or n < window + window // 2:
        return found
    step = max(1, int(round(WINDOW_STEP_S * rate)))
    grid = np.arange(0, n - window - window // 2 + 1, window)
    offset = np.setdiff1d(np.arange(0, n - window - window // 2 + 1, step), grid)
    firsts = np.concatenate([grid, offset])
    weight = np.concatenate([np.ones(len(grid)), np.full(len(offset), OFFSET_SHARE * len(grid) / max(len(offset), 1))])
    # Windows: [a, a + window) and [a + window, min(a + 2 window, n)) for each pair start a.
    lo_edge = np.concatenate([firsts, firsts + window])
    hi_edge = np.minimum(lo_edge + window, n)
    sums = np.concatenate([[0.0], np.cumsum(np.square(wav, dtype=np.float64))])
    energy = np.zeros((len(lo_edge), len(free)))  # each free sound's energy in each window, before any gain
    for j, i in enumerate(free):
        a, b = found[i].start, found[i].end
        energy[:, j] = sums[np.clip(hi_edge, a, b)] - sums[np.clip(lo_edge, a, b)]
    # The prompt, carried sounds and the gaps, counted at 0 dB.
    fixed = np.maximum(sums[hi_edge] - sums[lo_edge] - energy.sum(axis=1), 0.0) + 1e-20 * (hi_edge - lo_edge)
    length = (hi_edge - lo_edge).astype(np.float64)
    base = np.array([found[i].gain_db for i in free])
    dev = np.array([found[i].level_db - active_db for i in free])
    lo = np.minimum(np.maximum(-max_gain_db, -WINDOW_SOUND_DB - dev), base)
    hi = np.maximum(np.minimum(max_gain_db, WINDOW_SOUND_DB - dev), base)
    band = max(window_db - WINDOW_MARGIN_DB, 0.0)
    half = len(firsts)

    def cost(gains: np.ndarray) -> tuple[float, np.ndarray]:
        lin = 10 ** (gains / 10)
        total = fixed + energy @ lin
        level = 10 * np.log10(total / length)
        jump = level[half:] - level[:half]
        over = np.maximum(np.abs(jump) - band, 0.0) * np.sign(jump) * np.sqrt(weight)
        # d level / d gain_j = the share of sound j's energy in the window; a small pull towards each sound's own
        # gain keeps them where sound following put them wherever the windows allow it.
        share = energy * lin / total[:, None]
        grad = 2 * (over * np.sqrt(weight)) @ (share[half:] - share[:half]) + 2e-3 * (gains - base)
        return float(np.sum(over**2) + 1e-3 * np.sum((gains - base) ** 2)), grad

    result = minimize(cost, base, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)))
    gains = np.clip(result.x, lo, hi)
    out = list(found)
    for j, i in enumerate(free):
        g = float(gains[j])
        out[i] = replace(found[i], gain_db=g, window_gain_db=g - found[i].gain_db)
    return out


def follow_level(
    wav: np.ndarray,
    prompt: np.ndarray,
    rate: int,
    tolerance_db: float,
    max_gain_db: float = MAX_GAIN_DB,
    window: int | None = None,
    window_db: float | None = None,
) -> tuple[np.ndarray, list[FollowedSound]]:
    """``wav`` ``(samples,)`` whose first ``len(prompt)`` samples are the prompt's, with each sound after them
    brought within ``tolerance_db`` of the prompt's active level (gain at most ``max_gain_db`` either way).

    With ``window_db`` (and ``window``, samples), the gains are then moved so that two adjacent windows of that
    length differ by at most ``window_db`` (:func:`_hold_windows`; the module's docstring). Without, the output is
    what it was before window following existed, bit for bit.

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
    sounding_end = ends_in_sound(prompt, rate)
    floor = reference - SILENCE_DB
    found = []
    for a, b, level in _sounds(wav, start, rate, floor):
        if a == start and sounding_end:
            found.append(FollowedSound(a, b, level, 0.0, False, carried=True))
            continue
        dev = level - reference
        want = float(np.clip(dev, -tolerance_db, tolerance_db) - dev)
        gain = float(np.clip(want, -max_gain_db, max_gain_db))
        found.append(FollowedSound(a, b, level, gain, abs(want) > max_gain_db))
    if window_db is not None and window:
        found = _hold_windows(wav, rate, found, reference, int(window), float(window_db), max_gain_db)
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
