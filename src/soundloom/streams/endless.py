"""Endless streams: greedy search and block rendering without end, written as 16-bit WAV to a binary pipe.

The WAV header declares the largest size (the convention for live WAV streams); players read
until the pipe closes. Loudness is set per chunk (matched to the pool's median chunk) plus one
fixed gain to the target, with the peak limiter run per block.

A watcher (``on_candidates``) sees, at each step, the next candidates the search considered after the
chunk just chosen, with their scores and seam verdicts (what a player shows as "up next").
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..core.levels import db_to_gain
from .config import RenderConfig, SearchConfig
from .joins import reference_lufs
from .render import Segment, iter_render, limit_peaks, segment
from .seams import SeamVerifier
from .search import NextChunkChooser, iter_greedy


def wav_stream_header(sample_rate: int, channels: int = 1) -> bytes:
    """RIFF/WAVE header for 16-bit PCM with maximal (unknown) sizes."""
    block = 2 * channels
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


#: Candidates a watcher is shown per step (``endless_segments(on_candidates=...)``).
WATCH_TOP = 5
#: Seam verdicts a watched search remembers (forgotten all at once beyond it).
MAX_KNOWN_VERDICTS = 10_000

#: ``on_candidates(chunk_id, candidates)``: after chunk ``chunk_id`` the search considered ``candidates``,
#: best first, each ``{"chunk_id", "song", "chunk_index", "score", "seam_predicted", "seam_pass"}``.
CandidateWatcher = Callable[[int, list[dict]], None]


class _RememberingVerifier:
    """A :class:`SeamVerifier` that remembers its verdicts, so a watcher can show them without rendering twice."""

    def __init__(self, verifier: SeamVerifier):
        self.verifier = verifier
        self.known: dict[tuple[int, int], bool] = {}

    def measure(self, a: int, b: int) -> dict[str, float]:
        m = self.verifier.measure(a, b)
        if len(self.known) >= MAX_KNOWN_VERDICTS:
            self.known.clear()
        self.known[(int(a), int(b))] = bool(m["pass"])
        return m

    def passes(self, a: int, b: int) -> bool:
        got = self.known.get((int(a), int(b)))
        return got if got is not None else bool(self.measure(a, b)["pass"])

    def __getattr__(self, name: str):
        # whatever else the search asks of a verifier (``onset_reference``, ...) is the wrapped one's
        return getattr(self.verifier, name)


class _WatchedChooser(NextChunkChooser):
    """A search that reports each step's top candidates to ``watch`` (see :data:`CandidateWatcher`).

    The top :data:`WATCH_TOP` candidates without a seam verdict yet get one (a few ms each), through the
    remembering verifier, which draws nothing from the search's random generator: the stream chosen is the
    same as without a watcher."""

    def __init__(self, table, emb, cfg: SearchConfig, songs: dict, watch: CandidateWatcher, verifier=None):
        super().__init__(table, emb, cfg, verifier=verifier)
        self._songs, self._watch = songs, watch

    def candidates(self, state, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        cands, scores = super().candidates(state, k)
        a = int(state.rows[-1])
        top, top_scores = cands[:WATCH_TOP], scores[:WATCH_TOP]
        predicted = self.seam_ok(a, top)
        shown = []
        for b, score, pred in zip(top.tolist(), top_scores.tolist(), predicted.tolist()):
            verdict = None if self.verifier is None else self.verifier.passes(a, b)
            shown.append(
                {
                    "chunk_id": int(self.table.id[b]),
                    "song": Path(self._songs[int(self.table.song_id[b])].path).name,
                    "chunk_index": int(self.table.idx[b]),
                    "score": float(score),
                    "seam_predicted": bool(pred),  # level and spectra of the chunks' edges (catalog)
                    "seam_pass": verdict,  # the join rendered for real: seam and onset gates (None: not checked)
                }
            )
        self._watch(int(self.table.id[a]), shown)
        return cands, scores


def endless_segments(
    catalog,
    emb,
    cfg: SearchConfig,
    rcfg: RenderConfig,
    verify: bool = True,
    on_candidates: CandidateWatcher | None = None,
) -> Iterator[Segment]:
    """Segments chosen greedily (joins verified on real audio when ``verify``), forever; ``on_candidates``
    sees each step's top candidates (the same stream is chosen with or without it)."""
    table, songs = catalog.chunks(), catalog.song_map()
    ref = reference_lufs(table.loudness_lufs)
    verifier = SeamVerifier(catalog, rcfg) if verify else None
    if on_candidates is None:
        chooser = NextChunkChooser(table, emb, cfg, verifier=verifier)
    else:
        verifier = _RememberingVerifier(verifier) if verifier is not None else None
        chooser = _WatchedChooser(table, emb, cfg, songs, on_candidates, verifier=verifier)
    for row, score, nat in iter_greedy(chooser, cfg.seed):
        yield segment(table, songs, row, score, nat, ref, rcfg)


def write_endless(
    out: BinaryIO,
    catalog,
    emb,
    cfg: SearchConfig,
    rcfg: RenderConfig,
    max_seconds: float | None = None,
    verify: bool = True,
) -> float:
    """Write the stream to ``out`` until it is closed, or exactly ``round(max_seconds * rate)`` samples
    when ``max_seconds`` is given (the last block is cut there); returns the seconds written."""
    rate = catalog.sample_rate
    gain = db_to_gain(rcfg.target_lufs - reference_lufs(catalog.chunks().loudness_lufs))
    total = None if max_seconds is None else max(0, round(max_seconds * rate))  # samples
    out.write(wav_stream_header(rate))
    written = 0
    try:
        for block, _ in iter_render(endless_segments(catalog, emb, cfg, rcfg, verify), rate, rcfg):
            block = limit_peaks(block * gain, rate, rcfg.true_peak_db - 0.5)
            if total is not None:  # cut after the limiter, so the samples kept are the unbounded stream's
                block = block[: total - written]
            out.write((np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())
            out.flush()
            written += len(block)
            if total is not None and written >= total:
                break
    except BrokenPipeError:
        pass
    return written / rate
