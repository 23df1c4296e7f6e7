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

from .render import RenderConfig, SeamVerifier, Segment, iter_render, limit_peaks
from .search import NextChunkChooser, SearchConfig, iter_greedy


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
    ref = float(np.median(table.loudness_lufs[table.loudness_lufs > -70]))
    chooser = NextChunkChooser(table, emb, cfg, verifier=SeamVerifier(catalog, rcfg) if verify else None)
    for row, score, nat in iter_greedy(chooser, cfg.seed):
        gain = (
            float(np.clip(ref - table.loudness_lufs[row], -rcfg.max_gain_db, rcfg.max_gain_db))
            if rcfg.match_loudness and table.loudness_lufs[row] > -70
            else 0.0
        )
        yield Segment(
            songs[int(table.song_id[row])],
            int(table.id[row]),
            int(table.idx[row]),
            int(table.start[row]),
            int(table.end[row]),
            gain,
            score,
            nat,
        )


def write_endless(
    out: BinaryIO,
    catalog,
    emb,
    cfg: SearchConfig,
    rcfg: RenderConfig,
    max_seconds: float | None = None,
    verify: bool = True,
) -> float:
    """Write the stream to ``out`` until it is closed (or ``max_seconds``); returns seconds written."""
    rate = catalog.sample_rate
    table = catalog.chunks()
    ref = float(np.median(table.loudness_lufs[table.loudness_lufs > -70]))
    gain = 10 ** ((rcfg.target_lufs - ref) / 20)
    out.write(wav_stream_header(rate))
    written = 0
    try:
        for block, _ in iter_render(endless_segments(catalog, emb, cfg, rcfg, verify), rate, rcfg):
            block = limit_peaks(block * gain, rate, rcfg.true_peak_db - 0.5)
            out.write((np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())
            out.flush()
            written += len(block)
            if max_seconds is not None and written >= max_seconds * rate:
                break
    except BrokenPipeError:
        pass
    return written / rate
