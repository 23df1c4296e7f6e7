"""FastAPI app: an endless stream from a chunk pool, live over HTTP, plus a small player page.

    soundloom serve POOL --model RUN --port 8000      # then open http://127.0.0.1:8000/

Routes:
    GET /                 the player page
    GET /health           {"status": "ok"} once the app serves (for readiness checks)
    GET /info             pool and model facts (JSON)
    GET /stream.wav       16-bit mono WAV, endless; ``?seed=N`` picks the start, ``?seconds=S`` bounds it

Each listener gets its own search and renderer in a worker thread (the renderer pushes bytes
into a bounded queue, the response pulls from it), so a slow listener slows only its own
stream and a closed connection stops its worker. A :class:`SoundloomError` raised while handling a
request answers with a 4xx JSON error ``{"error": kind, "detail": message}`` (see :data:`ERROR_STATUS`).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from ..core.errors import ParameterError, PoolError, SoundloomError
from ..streams.catalog import ChunkCatalog
from ..streams.config import RenderConfig, SearchConfig
from ..streams.endless import write_endless
from ..streams.index import load_pool_embeddings

#: Blocks buffered ahead of a listener; bounds memory and makes the renderer wait for the client.
QUEUE_BLOCKS = 8

#: HTTP status of an error kind (the first kind in this order that the error is); other kinds: 400.
ERROR_STATUS: tuple[tuple[type[SoundloomError], int], ...] = ((ParameterError, 422), (PoolError, 409))


def error_response(exc: SoundloomError) -> JSONResponse:
    """The 4xx JSON answer to a :class:`SoundloomError`: ``{"error": kind, "detail": str(exc)}``."""
    status = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 400)
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)


class _QueueWriter:
    """A binary file-like whose writes go into a queue; raises BrokenPipeError once stopped."""

    def __init__(self, q: queue.Queue[object], stop: threading.Event):
        self.q, self.stop = q, stop

    def write(self, data: bytes) -> int:
        while True:
            if self.stop.is_set():
                raise BrokenPipeError("listener went away")
            try:
                self.q.put(bytes(data), timeout=0.25)
                return len(data)
            except queue.Full:
                continue

    def flush(self) -> None:
        pass


class _Listener:
    """One listener's renderer: a worker thread writing WAV bytes into a bounded queue."""

    _DONE = object()

    def __init__(self, pool: Path, emb, scfg: SearchConfig, rcfg: RenderConfig, max_seconds: float | None):
        self.q: queue.Queue[object] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self.stop = threading.Event()
        self.worker = threading.Thread(
            target=self._work, args=(pool, emb, scfg, rcfg, max_seconds), name="soundloom-stream", daemon=True
        )
        self.worker.start()

    def _work(self, pool, emb, scfg, rcfg, max_seconds) -> None:
        try:
            with ChunkCatalog(pool, create=False) as catalog:  # sqlite connections stay in their thread
                write_endless(_QueueWriter(self.q, self.stop), catalog, emb, scfg, rcfg, max_seconds=max_seconds)
            self._put(self._DONE)
        except BaseException as exc:  # handed to the response, which re-raises it
            self._put(exc)

    def _put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.25)
                return
            except queue.Full:
                continue

    def get(self) -> object:
        """Next block, or ``_DONE``; polls so that :meth:`close` frees a waiting thread."""
        while not self.stop.is_set():
            try:
                return self.q.get(timeout=0.25)
            except queue.Empty:
                continue
        return self._DONE

    def close(self) -> None:
        self.stop.set()


async def stream_bytes(
    pool: Path, emb, scfg: SearchConfig, rcfg: RenderConfig, max_seconds: float | None = None
) -> AsyncIterator[bytes]:
    """WAV header then PCM blocks of an endless (or ``max_seconds`` long) stream.

    An async generator, so that a listener hanging up cancels it and ``finally`` stops the worker.
    """
    listener = _Listener(pool, emb, scfg, rcfg, max_seconds)
    try:
        while True:
            item = await anyio.to_thread.run_sync(listener.get)
            if item is _Listener._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        listener.close()


def create_app(
    pool: str | Path, model: str, search: SearchConfig | None = None, render: RenderConfig | None = None
) -> FastAPI:
    """Build the app for one pool and one transition model (a run folder, or "features")."""
    pool = Path(pool)
    search = search or SearchConfig()
    render = render or RenderConfig()
    with ChunkCatalog(pool, create=False) as catalog:
        emb = load_pool_embeddings(catalog, model)
        table = catalog.chunks()
        info = {
            "pool": str(pool),
            "model": str(model),
            "sample_rate": catalog.sample_rate,
            "songs": len(set(table.song_id.tolist())),
            "chunks": len(table),
            "target_lufs": render.target_lufs,
            "crossfade_ms": render.crossfade_ms,
        }

    app = FastAPI(title="soundloom stream", version="0.1")

    @app.exception_handler(SoundloomError)
    def soundloom_error(_: Request, exc: SoundloomError) -> JSONResponse:
        return error_response(exc)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/info")
    def get_info() -> dict:
        return info

    @app.get("/stream.wav")
    def get_stream(
        seed: int = Query(search.seed, description="start chunk and sampling seed"),
        seconds: float | None = Query(None, gt=0, description="stop after this many seconds"),
    ):
        if len(emb) < 2:
            raise PoolError(pool, f"the pool needs at least two chunks to stream, it has {len(emb)}")
        scfg = dataclasses.replace(search, seed=seed)
        return StreamingResponse(
            stream_bytes(pool, emb, scfg, render, seconds),
            media_type="audio/wav",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.replace(
            "{{INFO}}",
            f"{info['songs']} songs, {info['chunks']} chunks, model {info['model']}, {info['target_lufs']:g} LUFS",
        )

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>soundloom stream</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;color:#222}
audio{width:100%}button{font-size:1em;padding:.4em 1em}</style></head>
<body><h1>soundloom</h1><p>An endless remix: {{INFO}}.</p>
<audio id="player" controls autoplay src="stream.wav"></audio>
<p><button onclick="reseed()">new stream</button> <span id="seed">seed 0</span></p>
<script>
function reseed(){const s=Math.floor(Math.random()*1e6);
document.getElementById('player').src='stream.wav?seed='+s;
document.getElementById('seed').textContent='seed '+s;}
</script></body></html>
"""
