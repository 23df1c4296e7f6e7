"""Seamless loops for game engines: find (or build) a loop whose end joins its start like a stream join.

``find_loop`` proposes loop points on tracked beats (music with a steady beat) or on rising zero
crossings at low local energy (drones, pads, noise), and judges each join end -> start with the seam
gates of the stream engine (:mod:`soundloom.streams.seams`: level jump, spectral cosine, click). The
best passing butt join wins. When none passes it builds a *crossfade loop*: the last ``xf`` samples of
the loop are an equal-power mix of the loop's own tail and the ``xf`` samples that precede its start,
so playback wrapping from the end lands exactly where the source continued; the end is shifted by up
to ``align_ms`` so the two mixed stretches are in phase. A crossfade loop is judged at the crossfade
centre (the real join, as the stream verifier does) and at the wrap, and reports the worse of each.

Usage::

    loop = find_loop(wav, 44100, 8.0)            # wav (samples,) or (samples, channels)
    body = render_loop(loop, wav)                 # plays seamlessly as body, body, body, ...
    loop, paths = export_loop("out/theme", wav, 44100, 8.0, target="console", intro_s=2.0)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.errors import AudioError, ParameterError
from .seams import CLICK_GATE, COSINE_GATE, LEVEL_GATE_DB, seam_metrics

#: Crossfade of a built loop (ms); longer than a stream join's because the two sides are one song.
DEFAULT_CROSSFADE_MS = 250.0
#: The end of a crossfade loop may move this far to put the mixed stretches in phase (ms).
ALIGN_MS = 5.0
#: Seam windows as :func:`seam_metrics` uses them (ms): 50 ms either side, 2 ms click blocks.
_WINDOW_MS, _BLOCK_MS = 50.0, 2.0
#: Caps on the search (candidate starts; ends per start; pairs given a crossfade).
MAX_STARTS, MAX_ENDS, MAX_CROSSFADE_PAIRS = 64, 24, 48


@dataclass(frozen=True)
class Loop:
    """A loop ``[start, end)`` of the source (samples at ``sample_rate``) and how its join measured.

    ``crossfade`` samples at the loop's end are mixed with the source before ``start`` (0: butt join).
    The seam figures are the worst over the positions judged (wrap, and crossfade centre if any).
    """

    start: int
    end: int
    sample_rate: int
    crossfade: int
    method: str  # "beats" or "zero_crossings"
    level_jump_db: float
    spectral_cosine: float
    click_ratio: float
    passed: bool

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def seconds(self) -> float:
        return self.length / self.sample_rate

    def to_dict(self) -> dict:
        return {**asdict(self), "length": self.length, "seconds": self.seconds}


def _frames(audio: np.ndarray) -> np.ndarray:
    data = np.asarray(audio, dtype=np.float32)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise AudioError(None, f"audio must be (samples,) or (samples, channels), got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise AudioError(None, "audio has non-finite samples (NaN or Inf)")
    return data


def _mono(data: np.ndarray) -> np.ndarray:
    return (data if data.ndim == 1 else data.mean(axis=1)).astype(np.float64)


def equal_power(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in curves ``(n,)`` with ``out^2 + in^2 = 1`` (the curves of stream joins)."""
    # Same curves as streams.render.equal_power, which cannot be imported here without loading torch.
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return np.cos(0.5 * np.pi * t), np.sin(0.5 * np.pi * t)


def _best_lag(a: np.ndarray, b_wide: np.ndarray, max_lag: int) -> int:
    """Lag in ``[-max_lag, max_lag]`` where ``b_wide[max_lag + lag:][:len(a)]`` best matches ``a`` (NCC)."""
    if max_lag <= 0 or len(a) == 0 or float(a @ a) < 1e-8:
        return 0
    wins = np.lib.stride_tricks.sliding_window_view(b_wide, len(a))
    ncc = (wins @ a) / (np.sqrt((wins**2).sum(1) * float(a @ a)) + 1e-9)
    return int(np.argmax(ncc)) - max_lag


def _margin(sample_rate: int) -> int:
    """Samples either side of a position that :func:`seam_metrics` reads."""
    return int(_WINDOW_MS * sample_rate / 1000) + 2 * max(2, int(_BLOCK_MS * sample_rate / 1000)) + 2


def _active_span(mono: np.ndarray, sample_rate: int, below_db: float = 40.0) -> tuple[int, int]:
    """First and last sample of the 50 ms frames within ``below_db`` of the loudest (skips silent head/tail)."""
    frame = max(1, sample_rate // 20)
    n = len(mono) // frame
    if n < 2:
        return 0, len(mono)
    db = 10 * np.log10(np.mean(mono[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(db > db.max() - below_db)
    return int(on[0] * frame), int(min(len(mono), (on[-1] + 1) * frame))


def rising_zero_crossings(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Rising zero crossings (samples: first sample >= 0 after one < 0) and the RMS (dB) of the 5 ms around each."""
    pos = np.flatnonzero((mono[:-1] < 0) & (mono[1:] >= 0)) + 1
    half = max(1, int(0.0025 * sample_rate))
    csum = np.concatenate([[0.0], np.cumsum(mono**2)])
    lo, hi = np.clip(pos - half, 0, len(mono)), np.clip(pos + half, 0, len(mono))
    return pos, 10 * np.log10((csum[hi] - csum[lo]) / np.maximum(hi - lo, 1) + 1e-12)


def track_loop_beats(mono: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """Beat positions (samples) when the input has a steady beat (>= 8 beats, spacing within 15 %), else None."""
    from ..core.convert import resample
    from .chunking import track_beats

    if len(mono) < 6 * sample_rate:  # the tracker needs a few seconds to lock on
        return None
    rate = min(sample_rate, 22050)  # beat tracking does not need more bandwidth; halves the cost at 44.1 kHz
    wav = resample(mono.astype(np.float32), sample_rate, rate)
    _, beats = track_beats(wav, rate)
    beats = np.unique(np.round(beats * (sample_rate / rate)).astype(np.int64))
    if len(beats) < 8:
        return None
    gaps = np.diff(beats)
    if np.std(gaps) > 0.15 * np.median(gaps):
        return None
    return beats


def _snap_to_crossings(points: np.ndarray, crossings: np.ndarray, radius: int) -> np.ndarray:
    """Each point moved to the nearest rising zero crossing within ``radius`` samples (else kept)."""
    if len(crossings) == 0:
        return points
    i = np.clip(np.searchsorted(crossings, points), 1, len(crossings) - 1)
    near = np.where(np.abs(crossings[i - 1] - points) <= np.abs(crossings[i] - points), crossings[i - 1], crossings[i])
    return np.where(np.abs(near - points) <= radius, near, points)


def _candidate_pairs(
    mono: np.ndarray,
    sample_rate: int,
    length: int,
    lo: int,
    hi: int,
    beats: np.ndarray | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Candidate (start, end) pairs with ``end - start`` near ``length``, inside ``[lo, hi]``, and a
    preference penalty per pair (off-bar beat counts, quiet crossings preferred)."""
    crossings, energy_db = rising_zero_crossings(mono, sample_rate)
    if beats is not None:
        pts = _snap_to_crossings(np.asarray(beats, dtype=np.int64), crossings, int(0.005 * sample_rate))
        pts = np.unique(pts[(pts >= lo) & (pts <= hi)])
        if len(pts) >= 2:
            period = float(np.median(np.diff(pts)))
            i, j = np.nonzero(np.abs((pts[None, :] - pts[:, None]) - length) <= max(1.5 * period, 0.02 * length))
            if len(i):
                n_beats = np.rint((pts[j] - pts[i]) / period).astype(np.int64)
                penalty = 0.2 * (n_beats % 4 != 0)  # whole bars keep the downbeat where it was
                keep = _subsample(len(i), MAX_STARTS * MAX_ENDS, rng)
                return pts[i][keep], pts[j][keep], penalty[keep], "beats"
    inside = (crossings >= lo) & (crossings <= hi)
    crossings, energy_db = crossings[inside], energy_db[inside]
    if len(crossings) < 2:
        raise AudioError(None, "no zero crossings to loop on (DC or silence?)")
    tol = int(min(0.05 * length, 0.25 * sample_rate))
    first = crossings[crossings <= hi - length + tol]
    if len(first) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), "zero_crossings"
    # starts: the quietest crossing in each of MAX_STARTS equal stretches of the possible range
    bins = np.linspace(first[0], first[-1] + 1, MAX_STARTS + 1)
    starts = []
    for a, b in zip(bins[:-1], bins[1:]):
        k = np.flatnonzero((crossings >= a) & (crossings < b))
        if len(k):
            starts.append(k[np.argmin(energy_db[k])])
    si, ei, pen = [], [], []
    rel = energy_db - np.median(energy_db)
    for s in starts:
        k = np.flatnonzero(np.abs(crossings - crossings[s] - length) <= tol)
        k = k[np.argsort(energy_db[k])[:MAX_ENDS]]
        si += [s] * len(k)
        ei += list(k)
        pen += list(0.02 * np.clip(rel[s] + rel[k], 0, None) / 6.0)  # quieter crossings preferred
    si, ei = np.asarray(si, np.int64), np.asarray(ei, np.int64)
    return crossings[si], crossings[ei], np.asarray(pen), "zero_crossings"


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= cap else np.sort(rng.choice(n, cap, replace=False))


def _judge(snippets: list[np.ndarray], offsets: list[list[int]], sample_rate: int) -> dict[str, np.ndarray]:
    """Seam figures per snippet (worst over its positions): snippets laid end to end, one call."""
    sig = np.concatenate(snippets)
    base = np.cumsum([0] + [len(s) for s in snippets[:-1]])
    pos = np.concatenate([b + np.asarray(o) for b, o in zip(base, offsets)])
    owner = np.concatenate([np.full(len(o), i) for i, o in enumerate(offsets)])
    m = seam_metrics(sig, pos, sample_rate)
    if len(m["positions"]) != len(pos):
        raise AssertionError("a judged position fell outside its snippet")  # a bug here, not bad input
    n = len(snippets)
    level, cos, click = np.zeros(n), np.ones(n), np.zeros(n)
    np.maximum.at(level, owner, m["level_jump_db"])
    np.minimum.at(cos, owner, m["spectral_cosine"])
    np.maximum.at(click, owner, m["click_ratio"])
    passed = (level <= LEVEL_GATE_DB) & (cos >= COSINE_GATE) & (click <= CLICK_GATE)
    return {"level_jump_db": level, "spectral_cosine": cos, "click_ratio": click, "pass": passed}


def _score(m: dict[str, np.ndarray]) -> np.ndarray:
    """Lower is better: each figure as a fraction of its gate's allowance."""
    return (
        m["level_jump_db"] / LEVEL_GATE_DB
        + (1.0 - m["spectral_cosine"]) / (1.0 - COSINE_GATE)
        + m["click_ratio"] / CLICK_GATE
    )


def _crossfade_tail(mono: np.ndarray, start: int, end: int, xf: int) -> np.ndarray:
    fo, fi = equal_power(xf)
    return mono[end - xf : end] * fo + mono[start - xf : start] * fi


def find_loop(
    audio: np.ndarray,
    sample_rate: int,
    seconds: float,
    *,
    beats: np.ndarray | None = None,
    crossfade_ms: float = DEFAULT_CROSSFADE_MS,
    seed: int = 0,
    max_search_s: float = 120.0,
) -> Loop:
    """Find the loop of about ``seconds`` whose join best passes the stream seam gates; build one with a
    crossfade when no butt join passes.

    Args:
        audio: ``(samples,)`` or ``(samples, channels)``; judged on the channel mean.
        seconds: wanted loop length (s); the result is within 5 % (zero crossings) or 1.5 beats.
        beats: beat positions (samples) to loop on; None tracks them (inputs over 6 s with a steady
            beat) or falls back to rising zero crossings.
        crossfade_ms: crossfade of a built loop (capped at a quarter of the loop).
        seed: picks among candidates when there are more than the search caps.
        max_search_s: only the first ``max(max_search_s, 3 * seconds)`` seconds of audible input are
            searched (beat tracking a 12-minute track costs a minute; a loop is found well before).
    Returns:
        The :class:`Loop`; ``passed`` says whether its join passes all three gates.
    """
    data = _frames(audio)
    mono = _mono(data)
    length = int(round(seconds * sample_rate))
    margin = _margin(sample_rate)
    xf = int(min(crossfade_ms * sample_rate / 1000, length // 4))
    lag = int(ALIGN_MS * sample_rate / 1000)
    if length < 4 * margin:
        raise ParameterError(f"a {seconds:g} s loop is too short; the seam windows alone need {4 * margin} samples")
    lo, hi = _active_span(mono, sample_rate)
    lo, hi = max(lo, xf + lag + margin), min(hi, len(mono) - margin - lag)
    hi = min(hi, lo + int(max(max_search_s, 3 * seconds) * sample_rate))
    if hi - lo < length:
        need = (length + xf + 2 * (lag + margin)) / sample_rate
        raise ParameterError(
            f"the input has {(hi - lo) / sample_rate:.2f} s of usable audio; "
            f"a {seconds:g} s loop needs about {need:.2f} s"
        )
    rng = np.random.default_rng(seed)
    if beats is None:
        beats = track_loop_beats(mono[: hi + margin + lag], sample_rate)
    starts, ends, penalty, method = _candidate_pairs(mono, sample_rate, length, lo, hi, beats, rng)
    if len(starts) == 0:
        raise AudioError(None, f"no loop points {seconds:g} s apart were found")
    length_pen = np.abs((ends - starts) - length) / length
    butt = _judge([np.concatenate([mono[e - margin : e], mono[s : s + margin]]) for s, e in zip(starts, ends)],
                  [[margin]] * len(starts), sample_rate)  # fmt: skip
    rank = _score(butt) + penalty + length_pen
    if butt["pass"].any():
        k = int(np.flatnonzero(butt["pass"])[np.argmin(rank[butt["pass"]])])
        return _make(starts[k], ends[k], sample_rate, 0, method, butt, k)
    # No butt join passes: crossfade the best-ranked pairs, ends aligned to the phase of the pre-start.
    top = np.argsort(rank)[:MAX_CROSSFADE_PAIRS]
    aligned, snippets = [], []
    for k in top:
        s, e = int(starts[k]), int(ends[k])
        e += _best_lag(mono[s - xf : s], mono[e - xf - lag : e + lag], lag)
        aligned.append(e)
        tail = _crossfade_tail(mono, s, e, xf)
        snippets.append(np.concatenate([mono[e - xf - margin : e - xf], tail, mono[s : s + margin]]))
    built = _judge(snippets, [[margin + xf // 2, margin + xf]] * len(top), sample_rate)
    rank2 = _score(built) + penalty[top] + length_pen[top] + 10.0 * ~built["pass"]
    i = int(np.argmin(rank2))
    return _make(starts[top[i]], aligned[i], sample_rate, xf, method, built, i)


def _make(start, end, sample_rate: int, xf: int, method: str, m: dict[str, np.ndarray], k: int) -> Loop:
    return Loop(
        int(start),
        int(end),
        int(sample_rate),
        int(xf),
        method,
        float(m["level_jump_db"][k]),
        float(m["spectral_cosine"][k]),
        float(m["click_ratio"][k]),
        bool(m["pass"][k]),
    )


def render_loop(loop: Loop, audio: np.ndarray) -> np.ndarray:
    """The loop body, ``(loop.length,)`` or ``(loop.length, channels)`` float32: played back to back it is seamless."""
    data = _frames(audio)
    if not (loop.crossfade <= loop.start < loop.end <= len(data)):
        raise ParameterError(f"loop [{loop.start}, {loop.end}) with a {loop.crossfade}-sample crossfade does not fit")
    body = data[loop.start : loop.end].astype(np.float64)
    if loop.crossfade:
        fo, fi = equal_power(loop.crossfade)
        if data.ndim == 2:
            fo, fi = fo[:, None], fi[:, None]
        xf = loop.crossfade
        body[-xf:] = data[loop.end - xf : loop.end] * fo + data[loop.start - xf : loop.start] * fi
    return body.astype(np.float32)


def loop_with_intro(loop: Loop, audio: np.ndarray, intro_s: float = 0.0) -> tuple[np.ndarray, int, int]:
    """Up to ``intro_s`` seconds of the source before the loop, then the loop body: (audio, loop start,
    loop end) with the loop ``[start, end)`` in samples of the returned audio. Engines play the intro
    once and then repeat the loop."""
    data = _frames(audio)
    n_intro = int(min(loop.start, max(0.0, intro_s) * loop.sample_rate))
    wav = np.concatenate([data[loop.start - n_intro : loop.start], render_loop(loop, data)])
    return wav.astype(np.float32), n_intro, n_intro + loop.length


def export_loop(
    out: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    seconds: float,
    *,
    target: str = "streaming",
    intro_s: float = 0.0,
    formats: tuple[str, ...] = ("wav", "ogg", "json"),
    beats: np.ndarray | None = None,
    crossfade_ms: float = DEFAULT_CROSSFADE_MS,
    seed: int = 0,
    max_search_s: float = 120.0,
) -> tuple[Loop, dict[str, Path]]:
    """Find a loop, bring it to the ``target`` loudness preset and write ``<out>.wav`` (``smpl`` chunk),
    ``<out>.ogg`` (LOOPSTART / LOOPLENGTH) and ``<out>.loop.json``; ``out``'s own suffix is dropped.

    Returns the loop (source positions) and the written paths by format.
    """
    from ..core.io import read_audio
    from ..core.levels import true_peak_db
    from ..core.loopfiles import (
        LOOP_TARGETS,
        TRUE_PEAK_CEILING_DB,
        normalize_loop,
        write_loop_ogg,
        write_loop_sidecar,
        write_loop_wav,
    )

    unknown = set(formats) - {"wav", "ogg", "json"}
    if unknown:
        raise ParameterError(f"unknown loop format(s) {sorted(unknown)}; use wav, ogg, json")
    if target not in LOOP_TARGETS:
        raise ParameterError(f"unknown loudness target {target!r}; use one of {', '.join(LOOP_TARGETS)}")
    loop = find_loop(
        audio, sample_rate, seconds, beats=beats, crossfade_ms=crossfade_ms, seed=seed, max_search_s=max_search_s
    )
    wav, start, end = loop_with_intro(loop, audio, intro_s)
    source, (wav, level) = wav, normalize_loop(wav, sample_rate, target, start, end)
    stem = Path(out).with_suffix("") if Path(out).suffix.lower() in (".wav", ".ogg", ".json") else Path(out)
    paths: dict[str, Path] = {}
    found = loop.to_dict()
    if "ogg" in formats:
        # Vorbis moves peaks (measured up to +0.6 dB on dev songs): lower the ceiling by the overshoot
        # and encode again, so the OGG too stays under -1 dBTP; WAV and OGG keep one gain.
        ceiling = TRUE_PEAK_CEILING_DB
        for attempt in range(4):
            paths["ogg"] = write_loop_ogg(stem.with_name(stem.name + ".ogg"), wav, sample_rate, start, end)
            ogg_peak = true_peak_db(read_audio(paths["ogg"])[0], sample_rate)
            if ogg_peak <= TRUE_PEAK_CEILING_DB or attempt == 3:
                break
            ceiling -= ogg_peak - TRUE_PEAK_CEILING_DB + 0.05
            wav, level = normalize_loop(source, sample_rate, target, start, end, ceiling_db=ceiling)
        found["ogg_true_peak_dbtp"] = ogg_peak
    if "wav" in formats:
        paths["wav"] = write_loop_wav(stem.with_name(stem.name + ".wav"), wav, sample_rate, start, end)
    if "json" in formats:
        paths["json"] = write_loop_sidecar(
            stem.with_name(stem.name + ".loop.json"), sample_rate, start, end, len(wav), level, found
        )
    return loop, paths


__all__ = ["Loop", "find_loop", "render_loop", "loop_with_intro", "export_loop", "track_loop_beats"]
