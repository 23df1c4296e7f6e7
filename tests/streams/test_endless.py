"""Endless streams: ``write_endless`` bounded by ``max_seconds``."""

import io

import numpy as np
import pytest

from soundloom.streams.catalog import ChunkCatalog
from soundloom.streams.config import RenderConfig, SearchConfig
from soundloom.streams.endless import write_endless
from soundloom.streams.index import load_pool_embeddings

WAV_HEADER = 44


class Sink(io.BytesIO):
    """Keeps what is written; hangs up (BrokenPipeError) once it holds more than ``limit`` bytes."""

    def __init__(self, limit: int | None = None):
        super().__init__()
        self.limit = limit

    def write(self, b) -> int:
        if self.limit is not None and self.tell() >= self.limit:
            raise BrokenPipeError
        return super().write(b)


def _write(pool, out, max_seconds):
    with ChunkCatalog(pool, create=False) as c:
        emb = load_pool_embeddings(c, "features")
        rate = c.sample_rate
        secs = write_endless(out, c, emb, SearchConfig(reuse_window=5), RenderConfig(), max_seconds, verify=False)
    return secs, rate


@pytest.mark.parametrize("max_seconds", [0.5, 3.3337])
def test_write_endless_stops_at_exactly_max_seconds(pool, max_seconds):
    out = Sink()
    secs, rate = _write(pool, out, max_seconds)
    n = round(max_seconds * rate)
    pcm = np.frombuffer(out.getvalue()[WAV_HEADER:], "<i2")
    assert len(pcm) == n  # was up to a whole render block more
    assert secs == n / rate
    assert np.abs(pcm).max() > 100  # audio, not silence


def test_write_endless_bounded_is_a_prefix_of_the_unbounded_stream(pool):
    bounded = Sink()
    _write(pool, bounded, 2.0)
    unbounded = Sink(limit=WAV_HEADER + 2 * 22050 * 6)  # a listener that hangs up after ~6 s
    _write(pool, unbounded, None)
    a, b = bounded.getvalue(), unbounded.getvalue()
    assert len(b) > len(a) and b.startswith(a)
