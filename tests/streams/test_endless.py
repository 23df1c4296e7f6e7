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


def test_a_watcher_sees_each_steps_candidates_and_changes_nothing(pool):
    from itertools import islice

    from soundloom.streams.endless import endless_segments

    seen: list[tuple[int, list[dict]]] = []
    with ChunkCatalog(pool, create=False) as c:
        emb = load_pool_embeddings(c, "features")
        cfg, rcfg = SearchConfig(reuse_window=5, seed=3), RenderConfig()
        plain = [s.chunk_id for s in islice(endless_segments(c, emb, cfg, rcfg), 8)]
        watched = [
            s.chunk_id
            for s in islice(endless_segments(c, emb, cfg, rcfg, on_candidates=lambda a, cs: seen.append((a, cs))), 8)
        ]
    assert watched == plain  # the watcher's extra seam checks draw nothing from the search's randomness
    assert [a for a, _ in seen] == plain[:-1]  # one report per step, after the chunk just chosen
    for (_, cands), nxt in zip(seen, plain[1:]):
        assert cands[0]["chunk_id"] == nxt  # temperature 0: the search takes its first candidate
        assert 1 <= len(cands) <= 5 and all(isinstance(x["seam_pass"], bool) for x in cands)
        assert all(isinstance(x["seam_predicted"], bool) and np.isfinite(x["score"]) for x in cands)
