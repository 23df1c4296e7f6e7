"""Endless streams: greedy search and block rendering without end, written as 16-bit WAV to a binary pipe.

The WAV header declares the largest size (the convention for live WAV streams); players read
until the pipe closes. Loudness is set per chunk (matched to the pool's median chunk) plus one
fixed gain to the target, with the peak limiter run per block.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
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


def endless_segments(catalog, emb, cfg: SearchConfig, rcfg: RenderConfig, verify: bool = True) -> Iterator[Segment]:
    """Segments chosen greedily (joins verified on real audio when ``verify``), forever."""
    table, songs = catalog.chunks(), catalog.song_map()
    ref = reference_lufs(table.loudness_lufs)
    chooser = NextChunkChooser(table, emb, cfg, verifier=SeamVerifier(catalog, rcfg) if verify else None)
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
