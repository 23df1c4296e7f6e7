"""How two chunks are joined, shared by the renderer and the seam check so they cannot drift apart:
read audio around a cut, the chunk's loudness gain, where the crossfade lies (:func:`plan_join`: on
real audio only), the lag that lines B up with A, and the equal-power crossfade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.convert import resample, to_mono
from ..core.io import read_audio
from .catalog import Song
from .config import RenderConfig
from .onsets import onset_envelope

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


def read_within_song(
    song: Song, start: int, stop: int, before: int, after: int, sample_rate: int
) -> tuple[np.ndarray, int, int]:
    """Samples ``[start, stop)`` of the song's file (file-rate offsets) with up to ``before`` / ``after``
    samples (at ``sample_rate``) of the song around them, never reaching outside the song.

    Returns:
        mono audio ``(samples,)`` at ``sample_rate``, the index of ``start`` in it and the samples kept
        after ``stop``.
    """
    r = song.sample_rate
    to_pool = lambda n: int(n * sample_rate // r)  # noqa: E731  (rounded down: never past the song)
    to_file = lambda n: int(round(n * r / sample_rate))  # noqa: E731
    total = int(round(song.duration_s * r))
    pre = max(0, min(before, to_pool(start) - 1))
    post = max(0, min(after, to_pool(total - stop) - 1))
    return read_span(song, start - to_file(pre), stop + to_file(post), sample_rate), pre, post


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


def crossfade(
    a_over: np.ndarray, b_span: np.ndarray, max_lag: int, edge_fade: int = 64
) -> tuple[np.ndarray, np.ndarray, int]:
    """Align B to A and crossfade them over ``n = len(a_over)`` samples (any ``n``, 0 included).

    Args:
        a_over: A's last ``n`` samples (the stretch that fades out).
        b_span: B from ``max_lag`` samples before the stretch that fades in; should hold at least
            ``n + 2 * max_lag`` samples (a shorter one, a song that ends inside the crossfade, is
            faded out over its last ``edge_fade`` samples and zero-padded).
        max_lag: the alignment range (samples); B moves by the :func:`best_lag` within it.

    Returns:
        ``mixed (n,)``, ``b_after`` (B from the end of the crossfade on) and the lag (samples).
    """
    n = len(a_over)
    if len(b_span) < n + 2 * max_lag:
        k = min(edge_fade, len(b_span))
        b_span = b_span.astype(np.float32).copy()
        b_span[len(b_span) - k :] *= np.linspace(1, 0, k, dtype=np.float32)
        b_span = np.concatenate([b_span, np.zeros(n + 2 * max_lag - len(b_span), np.float32)])
    shift = best_lag(a_over, b_span[: n + 2 * max_lag], max_lag) if n else 0
    b = b_span[max_lag + shift :]
    den = float(np.sqrt(float(a_over @ a_over) * float(b[:n] @ b[:n])))
    rho = float(a_over @ b[:n]) / den if den > 1e-12 else 0.0
    fade_out, fade_in = crossfade_curves(n, rho)
    return a_over * fade_out + b[:n] * fade_in, b[n:], shift


def crossfade_curves(n: int, correlation: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in curves ``(n,)`` that keep the power of the mix constant for two signals of
    this correlation: ``out^2 + in^2 + 2 rho out in = 1`` (rho clipped to [0, 1]). Equal power for
    unrelated signals (rho = 0); equal gain for identical ones (rho = 1), which an equal-power fade
    would swell by 3 dB in the middle (heard as an event at the cut, since the alignment makes the
    two sides correlate)."""
    out, inn = equal_power(n)
    rho = float(np.clip(correlation, 0.0, 1.0))
    scale = 1.0 / np.sqrt(out**2 + inn**2 + 2 * rho * out * inn)
    return (out * scale).astype(np.float32), (inn * scale).astype(np.float32)


@dataclass(frozen=True)
class JoinPlan:
    """Where a crossfade lies around a cut (pool-rate samples).

    The crossfade is ``length`` samples long. A's own audio runs ``a_after`` samples past A's end, B's
    runs from ``b_before`` samples before B's start, and ``length - a_after - b_before`` (>= 0) samples of
    A's end and B's start overlap: the stream is that much shorter than the two chunks. The cut (B's
    start in the output) lies ``b_before`` samples into the crossfade. ``lag`` is the alignment range.
    """

    a_after: int
    b_before: int
    length: int
    lag: int

    @property
    def overlap(self) -> int:
        return self.length - self.a_after - self.b_before


def plan_join(half: int, max_lag: int, a_held: int, a_room: int, b_room: int) -> JoinPlan:
    """Place a ``2 * half`` crossfade on real audio only, never on padding before or after a song.

    The ideal is centred on the cut: A plays on ``half`` samples past its end (its song continues there)
    and B starts ``half`` before its start. A song's last chunk has no audio after it and a first chunk
    none before it: the crossfade then moves to the side that has audio, and when neither has enough,
    A's end and B's start overlap. What A holds before the crossfade limits it; a B shorter than the
    crossfade fades in, ends (with a short fade, see :func:`crossfade`) and leaves A's fade-out to
    run on to the next join.

    Args:
        half: half the crossfade (samples).
        max_lag: alignment range (samples); reduced so that B's shifted start stays inside its song.
        a_held: A's samples available up to its end (its chunk and what came before it in the output).
        a_room: A's song's audio after A's end (samples, already read).
        b_room: B's song's audio before B's start.
    """
    lag = max(0, min(max_lag, b_room))
    n = 2 * half
    x = min(a_room, half)
    y = min(b_room - lag, half)
    x = min(a_room, max(x, n - y))
    y = min(b_room - lag, max(y, n - x))
    n = max(0, min(n, a_held + x))
    x = min(x, n)
    y = min(y, n - x)
    return JoinPlan(int(x), int(y), int(n), int(lag))


def quiet_offset(a: np.ndarray, a_end: int, b: np.ndarray, b_start: int, slide: int, sample_rate: int) -> int:
    """Offset (samples, within +-``slide``) moving both A's end and B's start to where the two songs
    together have the least onset strength, so that a cut does not land on (and cut into) a note or hit;
    0 when that is where they are already quietest."""
    lo, hi = max(-slide, -a_end, -b_start), min(slide, len(a) - a_end, len(b) - b_start)
    if slide <= 0 or hi <= lo:
        return 0
    pad = 512 * max(1, int(round(sample_rate / 22050)))

    def strength(x: np.ndarray, at: int) -> tuple[np.ndarray, int, int]:
        s0 = max(0, at + lo - pad)
        env, hop = onset_envelope(x[s0 : at + hi + pad], sample_rate)
        return env, hop, at - s0

    env_a, hop, ca = strength(a, a_end)
    env_b, _, cb = strength(b, b_start)
    offsets = np.arange(lo, hi + 1, hop)
    near = (
        lambda env, c: np.array(  # noqa: E731  (strongest onset within a frame of each offset)
            [env[max(0, (c + d) // hop - 1) : (c + d) // hop + 2].max(initial=0.0) for d in offsets]
        )
    )
    cost = near(env_a, ca) + near(env_b, cb)
    cost = cost + 1e-3 * np.abs(offsets) / max(1, slide)  # ties: the nearest to the planned cut
    return int(offsets[int(np.argmin(cost))])


def join_audio(
    a: np.ndarray,
    a_end: int,
    b: np.ndarray,
    b_start: int,
    half: int,
    max_lag: int,
    slide: int = 0,
    sample_rate: int = 0,
) -> tuple[np.ndarray, int, int, JoinPlan]:
    """Join A's audio to B's as the stream does (:func:`quiet_offset`, :func:`plan_join`, :func:`crossfade`).

    Args:
        a: A's audio ``(samples,)``; A's end at index ``a_end``, ``a[a_end:]`` is its song's audio after it.
        b: B's audio; B's start at index ``b_start``, ``b[:b_start]`` is its song's audio before it.
        half: half the crossfade (samples); max_lag: alignment range (samples).
        slide: both A's end and B's start may move by up to this many samples to the quietest onset
            point (needs ``sample_rate``); 0 keeps the planned cut.

    Returns:
        ``joined`` (A up to the crossfade, the crossfade, B after it), the cut's index in ``joined``
        (B's start), how far B's start moved in its song (slide and alignment, samples) and the plan.
    """
    moved = quiet_offset(a, a_end, b, b_start, slide, sample_rate) if slide > 0 and sample_rate else 0
    a_end, b_start = a_end + moved, b_start + moved
    plan = plan_join(half, max_lag, a_end, len(a) - a_end, b_start)
    x, y, n, lag = plan.a_after, plan.b_before, plan.length, plan.lag
    lo = b_start - y - lag
    mixed, b_after, shift = crossfade(a[a_end + x - n : a_end + x], b[lo:], lag)
    head = a[: a_end + x - n]
    return np.concatenate([head, mixed, b_after]).astype(np.float32), len(head) + y, moved + shift, plan
