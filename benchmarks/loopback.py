"""Shared by the server benchmarks: a small synthetic pool and a free loopback port."""

from __future__ import annotations

import signal
import socket
import subprocess
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


def stop_server(server: subprocess.Popen, timeout_s: float = 20.0) -> str:
    """Stop a server subprocess as a user would (SIGINT), kill it if it lingers; returns its stderr."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    return server.stderr.read() if server.stderr else ""
