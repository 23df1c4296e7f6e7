"""CLI: serve an endless stream over HTTP."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import typer

from ..core.errors import ParameterError
from ..streams.config import RenderConfig
from .app import app

#: Kernel send buffer per connection (bytes, ~3 s of 22.05 kHz 16-bit mono): bounds what a client that
#: stopped reading holds, and lets the server notice it within seconds (loopback autotuning grows to MBs).
SEND_BUFFER_BYTES = 128 * 1024

#: Option defaults come from the configs, so ``serve`` and ``stream`` cannot drift apart.
_RENDER = RenderConfig()


class _QuietDrops(logging.Filter):
    """Hide uvicorn's line for a response we cancelled on purpose (an idle listener dropped):
    the studio logs its own, clearer line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening; ParameterError if the address cannot be used."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ParameterError(f"cannot listen on {host}:{port} ({exc})") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)  # accepted sockets inherit it
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ParameterError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    return sock


@app.command()
def serve(
    pool: Path = typer.Argument(..., help="Pool folder (from `soundloom chunk`)."),
    model: str = typer.Option("features", "--model", help="Run folder of an embedding model, or 'features'."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    crossfade_ms: float = typer.Option(_RENDER.crossfade_ms, help="Equal-power crossfade length (ms)."),
    target_lufs: float = typer.Option(_RENDER.target_lufs, help="Stream loudness (LUFS)."),
    max_listeners: int = typer.Option(32, min=1, help="Streams served at once; one more gets HTTP 503."),
    idle_timeout_s: float = typer.Option(
        30.0, min=0.1, max=86400.0, help="Drop a listener that stops reading for this long (s)."
    ),
    pace: float = typer.Option(2.0, min=1.0, max=1000.0, help="Render at most this many x real time per listener."),
    warm: bool = typer.Option(
        True, "--warm/--no-warm", help="Check likely joins in the background at start (GET /info says when done)."
    ),
) -> None:
    """Serve an endless stream live: a player page at / and the audio at /stream.ogg (Ogg Vorbis) and /stream.wav."""
    import uvicorn

    from ..studio.app import ServeLimits, create_app

    web = create_app(
        pool,
        model,
        render=RenderConfig(crossfade_ms=crossfade_ms, target_lufs=target_lufs),
        limits=ServeLimits(max_listeners=max_listeners, idle_timeout_s=idle_timeout_s, pace=pace, warm=warm),
    )
    sock = listen_socket(host, port)
    # Render threads hold the GIL in NumPy-free stretches; a shorter switch interval lets the event
    # loop (pages, block hand-over) take it back sooner under load.
    sys.setswitchinterval(0.001)
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    logging.getLogger("soundloom.studio").setLevel(logging.WARNING)
    typer.echo(f"soundloom: http://{host}:{port}/  (Ctrl-C to stop)")
    try:
        uvicorn.Server(uvicorn.Config(web, log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])
    finally:
        sock.close()
