"""A tiny bed pool chunked from built-in ambient songs (no training: the ``features`` scorer)."""

from __future__ import annotations

import pytest

from soundloom.data.ambient import write_ambient_songs
from soundloom.streams.catalog import ChunkCatalog
from soundloom.streams.chunking import ChunkConfig

POOL_RATE = 16000
CHUNK_S = 1.5


@pytest.fixture(scope="session")
def ambient_pool(tmp_path_factory):
    """A pool of four 12 s ambient songs (drone, water, pad, pulse) cut into 1.5 s chunks at 16 kHz."""
    root = tmp_path_factory.mktemp("ambient-pool")
    paths = write_ambient_songs(
        root / "songs", n_songs=4, seconds=12.0, sample_rate=POOL_RATE, kinds=("drone", "water", "pad", "pulse")
    )
    with ChunkCatalog(root / "pool") as catalog:
        catalog.add_songs(paths, ChunkConfig(method="fixed", seconds=CHUNK_S), sample_rate=POOL_RATE)
    return root / "pool"
