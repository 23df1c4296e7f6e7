"""Render a planned stream: read chunks by offset, align, crossfade, match loudness, encode.

Each join is an equal-power crossfade of ``crossfade_ms`` centred on the cut: A plays on past its
end (its own song continues there) while B starts a little before its start. Where a song has no
audio there (a first or last chunk), the crossfade moves to the side that has, so it never fades
into padding (:func:`soundloom.streams.joins.plan_join`). B is shifted by up
to ``align_ms`` to the lag that maximises the normalised cross-correlation of the two overlapping
stretches, so their waveforms (and beats) line up. Each chunk's gain brings its loudness to the
pool's median chunk loudness (limited to ``max_gain_db``); the finished stream is normalised to
``target_lufs`` and a look-ahead limiter keeps the true peak under ``true_peak_db``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import write_json
from ..core.convert import resample
from ..core.io import write_audio
from ..core.levels import db_to_gain
from .catalog import Song
from .config import RenderConfig
from .joins import chunk_gain_db, join_audio, read_within_song, reference_lufs
from .seams import seam_metrics, summarise
from .search import StreamPlan, repetition


@dataclass
class Segment:
    """One chunk to play: source file samples ``[start, end)`` at ``sample_rate``; gain in dB."""

    song: Song
    chunk_id: int
    chunk_index: int
    start: int
    end: int
    gain_db: float
    score: float
    natural: bool


def plan_segments(catalog, plan: StreamPlan, cfg: RenderConfig) -> list[Segment]:
    """Segments of a plan with per-chunk gains (loudness matched to the pool's median chunk)."""
    table, songs = catalog.chunks(), catalog.song_map()
    ref = reference_lufs(table.loudness_lufs)
    return [
        segment(table, songs, row, score, nat, ref, cfg)
        for row, score, nat in zip(plan.rows, plan.scores, plan.natural)
    ]


def segment(table, songs: dict, row: int, score: float, natural: bool, ref_lufs: float, cfg: RenderConfig) -> Segment:
    """The :class:`Segment` of chunk ``row`` of ``table``, its gain matched to ``ref_lufs``."""
    return Segment(
        songs[int(table.song_id[row])],
        int(table.id[row]),
        int(table.idx[row]),
        int(table.start[row]),
        int(table.end[row]),
        chunk_gain_db(float(table.loudness_lufs[row]), ref_lufs, cfg),
        float(score),
        bool(natural),
    )


def read_chunk(seg: Segment, sample_rate: int, before: int, after: int) -> tuple[np.ndarray, int, int]:
    """The segment's chunk, gain applied, with up to ``before`` / ``after`` samples of its song around it
    (see :func:`joins.read_within_song`): audio, index of the chunk's start, samples after its end."""
    wav, pre, post = read_within_song(seg.song, seg.start, seg.end, before, after, sample_rate)
    return wav * db_to_gain(seg.gain_db), pre, post


def iter_render(
    segments: list[Segment] | Iterator[Segment], sample_rate: int, cfg: RenderConfig
) -> Iterator[tuple[np.ndarray, dict]]:
    """Render segment by segment: yields (finished audio block ``(samples,)``, cue entry).

    The block of segment i runs from its cut (B's start in the output) to the next segment's cut;
    the last block is emitted when the iterator ends. Each join is :func:`joins.join_audio`: the
    crossfade lies on real audio only (see :func:`joins.plan_join`). Output positions in cue entries
    are in samples.
    """
    half = int(cfg.crossfade_ms * sample_rate / 2000)
    lag = int(cfg.align_ms * sample_rate / 1000)
    slide = int(cfg.slide_ms * sample_rate / 1000)
    pending: np.ndarray | None = None  # current body, with `ext` samples of its song after its end
    ext = 0
    pending_cue: dict | None = None
    out_pos = 0
    for seg in segments:
        r = seg.song.sample_rate
        if pending is None:
            shift = 0
            body, _, ext = read_chunk(seg, sample_rate, 0, 2 * half + slide)
            n_fade = min(int(0.005 * sample_rate), len(body))
            body[:n_fade] *= np.linspace(0, 1, n_fade, dtype=np.float32)
        else:
            span, pre, post = read_chunk(seg, sample_rate, 2 * half + lag + slide, 2 * half + slide)
            joined, cut, shift, _ = join_audio(pending, len(pending) - ext, span, pre, half, lag, slide, sample_rate)
            block = joined[:cut]
            yield block, pending_cue
            out_pos += len(block)
            body, ext = joined[cut:], post
        pending = body
        dur = len(body) - ext  # this block's length if the next join is centred on the cut
        pending_cue = {
            "song": Path(seg.song.path).name,
            "song_id": seg.song.id,
            "chunk_id": seg.chunk_id,
            "chunk_index": seg.chunk_index,
            "source_start_s": (seg.start + int(round(shift * r / sample_rate))) / r,
            "source_end_s": seg.end / r,
            "output_start_samples": out_pos,
            "score": seg.score,
            "natural": seg.natural,
            "gain_db": seg.gain_db,
            "shift_ms": 1000.0 * shift / sample_rate,
            "planned_samples": dur,
        }
    if pending is not None:
        # no next chunk: drop the extension and fade the last 20 ms out
        last = pending[: len(pending) - ext].copy()
        n_fade = min(int(0.02 * sample_rate), len(last))
        last[len(last) - n_fade :] *= np.linspace(1, 0, n_fade, dtype=np.float32)
        yield last, pending_cue


def limit_peaks(
    wav: np.ndarray,
    sample_rate: int,
    ceiling_db: float,
    lookahead_ms: float = 5.0,
    release_ms: float = 50.0,
    envelope: np.ndarray | None = None,
) -> np.ndarray:
    """Look-ahead limiter: a smooth gain that keeps ``envelope`` (default ``|wav|``) at or below
    ``ceiling_db`` dBFS. The gain is held over the look-ahead plus release and then averaged over
    the look-ahead, so it is already down when a peak arrives and never exceeds what a peak needs."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    env = np.abs(wav) if envelope is None else envelope
    need = np.minimum(1.0, db_to_gain(ceiling_db) / (env + 1e-12)).astype(np.float32)
    if need.min() >= 1.0:
        return wav
    w = max(1, int(lookahead_ms * sample_rate / 1000))
    held = minimum_filter1d(need, size=2 * w + 1 + int(release_ms * sample_rate / 1000))
    gain = np.minimum(uniform_filter1d(held, size=w), need)
    return (wav * gain).astype(np.float32)


def true_peak_envelope(wav: np.ndarray, sample_rate: int, oversample: int = 4) -> np.ndarray:
    """Per-sample maximum of ``|wav|`` oversampled ``oversample`` times (inter-sample peaks): ``(samples,)``."""
    up = np.abs(resample(wav[None, :], sample_rate, sample_rate * oversample, quality="MQ")[0])
    n = min(len(wav), len(up) // oversample)
    env = np.abs(wav).copy()
    env[:n] = np.maximum(env[:n], up[: n * oversample].reshape(n, oversample).max(axis=1))
    return env


def finish_loudness(wav: np.ndarray, sample_rate: int, target_lufs: float, true_peak_ceiling_db: float) -> np.ndarray:
    """Gain to ``target_lufs`` through a true-peak limiter (ceiling ``true_peak_ceiling_db`` dBTP).

    Limiting lowers loudness, so the pre-gain is found by a secant search on the loudness after
    limiting (always limiting the original signal, never a limited one again): within 0.1 LU in
    two or three passes.
    """
    from .edges import integrated_loudness

    level = integrated_loudness(wav, sample_rate)
    if not np.isfinite(level):
        return wav
    env = true_peak_envelope(wav, sample_rate)  # scales with the gain: computed once
    ceiling = true_peak_ceiling_db - 0.1
    gain_db, prev = target_lufs - level, None
    out = wav
    for _ in range(5):
        g = db_to_gain(gain_db)
        out = limit_peaks((wav * g).astype(np.float32), sample_rate, ceiling, envelope=env * g)
        got = integrated_loudness(out, sample_rate)
        if abs(got - target_lufs) < 0.1:
            break
        slope = (
            1.5 if prev is None or got == prev[1] else float(np.clip((gain_db - prev[0]) / (got - prev[1]), 1.0, 5.0))
        )
        prev = (gain_db, got)
        gain_db += (target_lufs - got) * slope
    return out


def render_stream(catalog, plan: StreamPlan, cfg: RenderConfig = RenderConfig()) -> tuple[np.ndarray, dict]:
    """The whole stream ``(samples,)`` at the pool rate and its cue dict (seconds)."""
    rate = catalog.sample_rate
    segs = plan_segments(catalog, plan, cfg)
    blocks, cues = [], []
    for block, cue in iter_render(segs, rate, cfg):
        blocks.append(block)
        cues.append(cue)
    wav = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    wav = finish_loudness(wav, rate, cfg.target_lufs, cfg.true_peak_db)
    pos = 0
    for cue, block in zip(cues, blocks):
        cue["output_start_s"] = pos / rate
        pos += len(block)
        cue["output_end_s"] = pos / rate
        cue.pop("output_start_samples"), cue.pop("planned_samples")
    joins = np.array([int(round(c["output_start_s"] * rate)) for c in cues[1:]], dtype=np.int64)
    summary = {
        "joins": summarise(seam_metrics(wav, joins, rate)),
        **repetition(plan.rows, plan.meta.get("pool_chunks", len(catalog.chunks()))),
    }
    return wav, {
        "sample_rate": rate,
        "duration_s": len(wav) / rate,
        "render": asdict(cfg),
        "plan": plan.meta,
        "summary": summary,
        "segments": cues,
    }


def write_stream(path: str | Path, wav: np.ndarray, cue: dict, plot: bool = True) -> dict[str, Path]:
    """Write the audio (format from the extension), ``<path>.cue.json`` and ``<path>.timeline.png``."""
    path = Path(path)
    written = {"audio": write_audio(path, wav, cue["sample_rate"])}
    written["cue"] = write_json(path.with_name(path.name + ".cue.json"), cue)
    if plot:
        from .timeline import plot_timeline

        written["timeline"] = plot_timeline(cue, path.with_name(path.name + ".timeline.png"))
    return written
