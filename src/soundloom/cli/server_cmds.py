"""CLI: serve an endless stream over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

from ..streams.config import RenderConfig
from .app import app

#: Option defaults come from the config, so ``serve`` and ``stream`` cannot drift apart.
_RENDER = RenderConfig()


@app.command()
def serve(
    pool: Path = typer.Argument(..., help="Pool folder (from `soundloom chunk`)."),
    model: str = typer.Option("features", "--model", help="Run folder of an embedding model, or 'features'."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    crossfade_ms: float = typer.Option(_RENDER.crossfade_ms, help="Equal-power crossfade length (ms)."),
    target_lufs: float = typer.Option(_RENDER.target_lufs, help="Stream loudness (LUFS)."),
) -> None:
    """Serve an endless stream live: a player page at / and the audio at /stream.wav."""
    import uvicorn

    from ..studio.app import create_app

    typer.echo(f"soundloom: http://{host}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(
        create_app(pool, model, render=RenderConfig(crossfade_ms=crossfade_ms, target_lufs=target_lufs)),
        host=host,
        port=port,
        log_level="warning",
    )
