"""Shared by the server benchmarks: a small synthetic pool and a free loopback port."""

from __future__ import annotations

import socket
from pathlib import Path


def make_pool(root: Path) -> Path:
    """Six 20 s synthetic songs in 2 s chunks under ``root/pool``."""
    from soundloom.data.synth import write_songs
    from soundloom.streams.catalog import ChunkCatalog, find_songs
    from soundloom.streams.chunking import ChunkConfig

    write_songs(root / "songs", n_songs=6, seconds=20.0, seed=1)
    with ChunkCatalog(root / "pool") as catalog:
        catalog.add_songs(find_songs(root / "songs"), ChunkConfig(method="fixed", seconds=2.0))
    return root / "pool"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
