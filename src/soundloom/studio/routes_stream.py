"""The studio's radio: one endless stream per pool, rendered once and shared by every listener.

    GET  /api/streams/{name}/live.ogg    Ogg Vorbis over chunked HTTP (``<audio>``, VLC, ffplay; ~64 kb/s)
    GET  /api/streams/{name}/live.wav    16-bit mono WAV over chunked HTTP (the fallback)
    GET  /api/streams/{name}/now         now playing: song, chunk, score; the next candidates with their
                                         scores and seam verdicts, and which one was taken (JSON)
    POST /api/streams/{name}/skip        cut to a new search from another chunk, for everyone

Each listener of :mod:`soundloom.studio.app`'s ``/streams/<name>/stream.wav`` gets its own search and
renderer; that suits a few listeners who want their own seed. Twenty listeners in one process would
mean twenty renderers sharing one interpreter; the radio renders once, at real time, into a ring of
short blocks that every listener reads, so a listener costs a socket and a few copies.

The renderer thread runs while someone listens and stops :data:`LINGER_S` after the last one leaves.
A new listener starts :data:`BURST_S` behind the live edge (players start at once); one that falls
more than the ring behind (it stopped reading) jumps to the live edge.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from pathlib import Path

import numpy as np
from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse

from ..core.errors import PoolError
from .encode import OGG_MIME, OggEncoder
from .state import NotFound, StudioState

#: Audio per ring block (s).
BLOCK_S = 0.25
#: Audio kept in the ring (s): a listener this far behind jumps to the live edge.
RING_S = 12.0
#: Audio rendered ahead of real time (s), and what a new listener gets at once: a listener's player holds
#: this much, less what its codec and media cache hold back (Ogg in Chromium: an encoder page and part of
#: a 32 KB cache block; with 3 s it ran dry now and then on a loaded machine). A skip is heard this much later.
BURST_S = 5.0
#: The renderer stops this long after the last listener left (s).
LINGER_S = 5.0
#: Nice value of the renderer thread. 0, as the stream server's renderers: niced, it lost the CPU to other
#: processes on a loaded machine and fell behind real time (Chromium counted waiting events).
RENDER_NICE = 0


class Radio:
    """One pool's shared stream: a renderer thread feeding a ring of WAV blocks, listeners reading it."""

    def __init__(self, name: str, pool: Path, model: str, max_listeners: int = 64, seed: int = 0) -> None:
        from ..streams.catalog import ChunkCatalog
        from ..streams.index import load_pool_embeddings

        self.name, self.pool, self.max_listeners, self.seed = name, Path(pool), max_listeners, seed
        with ChunkCatalog(self.pool, create=False) as catalog:
            if len(catalog.chunks()) < 2:
                raise PoolError(self.pool, "the pool needs at least two chunks to stream")
            self.rate = catalog.sample_rate
            self.emb = load_pool_embeddings(catalog, model)
        self.block = int(BLOCK_S * self.rate)
        self.ring: collections.deque[tuple[int, bytes, dict | None]] = collections.deque(maxlen=int(RING_S / BLOCK_S))
        self.head = 0  # index of the next block the renderer appends
        self.listeners = 0
        self.lock = threading.Lock()
        self.wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.skip = threading.Event()
        self.last_left = time.monotonic()
        self.error: str | None = None
        self._next: tuple[int, list[dict]] | None = None  # the search's latest candidates: (after chunk, list)

    # -- renderer thread -----------------------------------------------------------------------
    def _ensure_running(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.stop.clear()
                self.ring.clear()  # a new run of the renderer: what an earlier one left is stale
                self.thread = threading.Thread(target=self._render, name=f"soundloom-radio-{self.name}", daemon=True)
                self.thread.start()

    def _render(self) -> None:
        from ..core.levels import db_to_gain
        from ..streams.catalog import ChunkCatalog
        from ..streams.config import RenderConfig, SearchConfig
        from ..streams.endless import endless_segments
        from ..streams.joins import reference_lufs
        from ..streams.render import iter_render, limit_peaks

        try:  # Linux: per thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_NICE)
        except (OSError, AttributeError):
            pass
        rcfg = RenderConfig()
        t0, sent = time.monotonic(), 0  # samples appended since t0
        try:
            with ChunkCatalog(self.pool, create=False) as catalog:  # sqlite stays in this thread
                gain = db_to_gain(rcfg.target_lufs - reference_lufs(catalog.chunks().loudness_lufs))
                while not self.stop.is_set():
                    self.skip.clear()
                    scfg = SearchConfig(seed=self.seed)
                    segments = endless_segments(catalog, self.emb, scfg, rcfg, on_candidates=self._on_candidates)
                    for block, cue in iter_render(segments, self.rate, rcfg):
                        if self._next is not None and self._next[0] == cue["chunk_id"]:
                            cue = cue | {"next": self._next[1]}
                        pcm = np.clip(limit_peaks(block * gain, self.rate, rcfg.true_peak_db - 0.5), -1, 1) * 32767
                        pcm = pcm.astype("<i2")
                        if self.skip.is_set():  # fade this block out and start a new search
                            n = min(len(pcm), int(0.05 * self.rate))
                            pcm = pcm[:n] * np.linspace(1, 0, n, dtype=np.float32)
                            pcm = pcm.astype("<i2")
                        for i in range(0, len(pcm), self.block):
                            # pace: keep at most BURST_S of audio ahead of real time
                            wait = t0 + sent / self.rate - BURST_S - time.monotonic()
                            if wait > 0 and self.stop.wait(wait):
                                return
                            self._append(pcm[i : i + self.block].tobytes(), cue if i == 0 else None)
                            sent += len(pcm[i : i + self.block])
                        if self._idle():
                            return
                        if self.skip.is_set():
                            self.seed += 1
                            break
        except Exception as exc:  # a bad song file ends the radio; the next listener starts it again
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._wake_all()

    def _on_candidates(self, chunk_id: int, candidates: list[dict]) -> None:
        # called by the search (in this thread) while it picks the chunk after ``chunk_id``, which is
        # before iter_render hands over ``chunk_id``'s block
        self._next = (chunk_id, candidates)

    def _idle(self) -> bool:
        with self.lock:
            if self.listeners == 0 and time.monotonic() - self.last_left > LINGER_S:
                self.thread = None
                return True
        return self.stop.is_set()

    def _append(self, data: bytes, cue: dict | None) -> None:
        with self.lock:
            if cue is None and self.ring:
                cue = self.ring[-1][2]
            self.ring.append((self.head, data, cue))
            self.head += 1
        self._wake_all()

    def _wake_all(self) -> None:
        for loop, event in list(self.wakers):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed
                self.wakers.discard((loop, event))

    # -- listener side -------------------------------------------------------------------------
    def now(self) -> dict:
        """What a listener that joined now hears first: the cue of the block :data:`BURST_S` behind the edge."""
        with self.lock:
            if not self.ring:
                return {"name": self.name, "playing": False, "listeners": self.listeners, "error": self.error}
            back = min(len(self.ring) - 1, int(BURST_S / BLOCK_S))
            cue = self.ring[-1 - back][2] or {}
            later = (c for _, _, c in list(self.ring)[len(self.ring) - back :] if c and c is not cue)
            taken = next((c["chunk_id"] for c in later if c.get("chunk_id") != cue.get("chunk_id")), None)
        keep = ("song", "chunk_index", "chunk_id", "score", "natural", "source_start_s", "source_end_s")
        # the candidates after this chunk; ``taken``: the one the search joined to (None while not rendered yet)
        up_next = [c | {"taken": taken is not None and c["chunk_id"] == taken} for c in cue.get("next") or []]
        return (
            {"name": self.name, "playing": True, "listeners": self.listeners, "error": self.error}
            | {k: cue.get(k) for k in keep}
            | {"next": up_next, "next_known": taken is not None}
        )

    async def blocks(self, ogg: bool = False):
        """A WAV header, then the shared blocks from :data:`BURST_S` behind the live edge, until the client
        leaves; with ``ogg``, the same audio as one Ogg Vorbis bitstream of this listener's own."""
        from ..streams.endless import wav_stream_header

        encoder = OggEncoder(self.rate) if ogg else None
        loop, event = asyncio.get_running_loop(), asyncio.Event()
        waker = (loop, event)
        self.wakers.add(waker)
        with self.lock:  # counted here, not in the route: a generator that never starts never ends either
            self.listeners += 1
        self._ensure_running()
        try:
            if encoder is None:  # Ogg's header pages come with the first audio
                yield wav_stream_header(self.rate)
            with self.lock:
                nxt = max(self.head - int(BURST_S / BLOCK_S), self.ring[0][0] if self.ring else self.head)
            while True:
                event.clear()
                with self.lock:
                    oldest = self.ring[0][0] if self.ring else self.head
                    if nxt < oldest:  # fell out of the ring: jump to the live edge
                        nxt = self.head
                    ready = [data for idx, data, _ in self.ring if idx >= nxt]
                    nxt += len(ready)
                if encoder is not None and ready:  # one page per 2-3 s of audio: often nothing yet
                    ready = [encoder.encode(b"".join(ready))]
                for data in ready:
                    if data:
                        yield data
                if not ready:
                    if self.thread is None or not self.thread.is_alive():
                        self._ensure_running()  # it lingered out, or a song error ended it
                    await event.wait()
        finally:
            self.wakers.discard(waker)
            with self.lock:
                self.listeners -= 1
                self.last_left = time.monotonic()

    def close(self) -> None:
        self.stop.set()


def router(state: StudioState, radios: dict[str, Radio]) -> APIRouter:
    api = APIRouter(prefix="/api/streams", tags=["stream"])

    def radio(name: str) -> Radio:
        if name not in radios:
            raise NotFound(f"no stream {name!r}; have {sorted(radios)}")
        return radios[name]

    @api.get("/{name}/live.wav", response_class=StreamingResponse)
    async def live(name: str = PathParam(..., max_length=64)):
        """The shared endless stream as 16-bit mono WAV over chunked HTTP (declared size: maximal)."""
        return listen(name, ogg=False)

    @api.get("/{name}/live.ogg", response_class=StreamingResponse)
    async def live_ogg(name: str = PathParam(..., max_length=64)):
        """The shared endless stream as Ogg Vorbis over chunked HTTP, encoded for each listener as it goes."""
        return listen(name, ogg=True)

    def listen(name: str, ogg: bool):
        r = radio(name)
        if r.listeners >= r.max_listeners:
            return JSONResponse(
                {"error": "busy", "detail": f"{r.max_listeners} listeners already"},
                status_code=503,
                headers={"Retry-After": "10"},
            )
        media = OGG_MIME if ogg else "audio/wav"
        return StreamingResponse(r.blocks(ogg), media_type=media, headers={"Cache-Control": "no-store"})

    @api.get("/{name}/now")
    async def now(name: str = PathParam(..., max_length=64)) -> dict:
        """Now playing on the shared stream: song file name, chunk, its transition score, listeners; ``next``:
        the candidates the search weighed after this chunk (best first: ``score``, ``seam_predicted`` from
        the catalog's edges, ``seam_pass`` from the join rendered for real, ``taken``)."""
        return radio(name).now()

    @api.post("/{name}/skip")
    async def skip(name: str = PathParam(..., max_length=64)) -> dict:
        """Cut the shared stream to a new search (next seed) for every listener."""
        r = radio(name)
        r.skip.set()
        return {"name": name, "skipped": True}

    return api
