"""The studio: one local web app over the engines, for a folder (``--root``) of sounds, runs and pools.

    soundloom studio --root ~/sounds --pool pools/wesnoth      # then open http://127.0.0.1:8000/

The page (``static/``) is plain HTML, JS and CSS shipped in the package: no build step, no CDN, no web
font, so it works offline. The API is documented by its OpenAPI schema at ``/docs`` and
``/openapi.json``. Routes:

    GET  /health                      {"status": "ok"}
    /api/files, /api/audio, /api/thumb, /api/scan            browse, play, thumbnails, scan report
    /api/jobs, /api/jobs/{id}/events (SSE), .../stop          prepare and train jobs in worker processes
    /api/runs, /api/generate, /api/variation, /api/interpolate, /api/batches/{id}.zip
    /api/latents                      the training set's latents in 2-D (PCA)
    /api/streams, /streams/<name>/... the stream server of :mod:`soundloom.studio.app`, one per pool

Every path the API takes is relative to the root and confined to it (:mod:`.paths`). Request bodies are
bounded (:data:`MAX_BODY_BYTES`). Only safetensors weights are loaded (the Generator's rule).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..core.errors import ParameterError, SoundloomError
from .app import ServeLimits, create_app, error_response, validation_response
from .jobs import JobManager
from .state import NotFound, StudioState

#: Largest request body accepted (bytes): the API takes small JSON, never uploads.
MAX_BODY_BYTES = 64 * 1024
STATIC = Path(__file__).parent / "static"


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 (by Content-Length or as it streams)."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        seen, refused = 0, False

        async def bounded():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit:  # answer now; the app sees the client leave and what it sends is dropped
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, bounded, guarded)

    async def _refuse(self, send) -> None:
        body = b'{"error":"ParameterError","detail":"request body too large (at most %d bytes)"}' % self.limit
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def create_studio(
    root: str | os.PathLike,
    pools: dict[str, tuple[str | os.PathLike, str]] | None = None,
    limits: ServeLimits | None = None,
) -> FastAPI:
    """Build the studio app for ``root``.

    Args:
        root: the folder the studio works in; every path the API takes is inside it.
        pools: stream name -> (pool folder, transition model: a run folder or "features"), each served
            live at ``/streams/<name>/stream.wav`` by :func:`soundloom.studio.app.create_app`.
        limits: the stream servers' listener limits.
    Raises:
        ParameterError: ``root`` is not a folder. PoolError: a pool cannot be served.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ParameterError(f"{root}: --root must be an existing folder")
    state = StudioState(root, JobManager(root))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        for radio in app.state.radios.values():
            radio.close()
        state.jobs.stop_all()  # no orphan workers once the server is gone

    app = FastAPI(
        lifespan=lifespan,
        title="soundloom studio",
        version="0.1",
        description="Browse and scan sounds, train and generate, map latents, stream. Paths are relative to the root.",
    )
    app.state.studio = state

    @app.exception_handler(SoundloomError)
    async def soundloom_error(_: Request, exc: SoundloomError) -> JSONResponse:
        if isinstance(exc, NotFound):
            return JSONResponse({"error": "NotFound", "detail": str(exc)}, status_code=404)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    @app.get("/health", tags=["studio"])
    async def health() -> dict:
        """``{"status": "ok"}`` once the studio serves."""
        return {"status": "ok"}

    @app.get("/api/info", tags=["studio"])
    async def info() -> dict:
        """The root's name and the streams served."""
        return {"root": root.name, "streams": sorted(state.streams)}

    from . import routes_data, routes_generate, routes_jobs, routes_latent  # noqa: PLC0415

    app.include_router(routes_data.router(state))
    app.include_router(routes_jobs.router(state))
    app.include_router(routes_generate.router(state))
    app.include_router(routes_latent.router(state))

    from .routes_stream import Radio
    from .routes_stream import router as radio_router

    radios: dict[str, Radio] = {}
    for name, (pool, model) in (pools or {}).items():
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ParameterError(f"stream name {name!r}: letters, digits, - and _ only")
        stream = create_app(pool, model, limits=limits)
        app.mount(f"/streams/{name}", stream)
        radios[name] = Radio(name, Path(pool), model, max_listeners=(limits or ServeLimits()).max_listeners)
        state.streams[name] = {
            "name": name,
            "url": f"/streams/{name}/stream.wav",
            "info": f"/streams/{name}/info",
            "live": f"/api/streams/{name}/live.wav",
            "live_ogg": f"/api/streams/{name}/live.ogg",
            "now": f"/api/streams/{name}/now",
        }
    app.include_router(radio_router(state, radios))
    app.state.radios = radios

    @app.get("/api/streams", tags=["stream"])
    async def streams() -> list[dict]:
        """The streams: ``live`` / ``live_ogg`` (one shared stream, WAV or Ogg Vorbis over chunked HTTP), ``now``
        (now playing and the next candidates), and ``url``
        (a listener's own stream from its ``?seed=``) with its ``info``."""
        return [state.streams[k] for k in sorted(state.streams)]

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.add_middleware(BodyLimit)
    return app
