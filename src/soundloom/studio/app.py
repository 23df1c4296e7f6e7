"""FastAPI app: an endless stream from a chunk pool, live over HTTP, plus a small player page.

    soundloom serve POOL --model RUN --port 8000      # then open http://127.0.0.1:8000/

Routes:
    GET /                 the player page
    GET /health           {"status": "ok"} once the app serves (for readiness checks)
    GET /info             pool and model facts, and the listeners now connected (JSON)
    GET /stream.wav       16-bit mono WAV, endless; ``?seed=N`` picks the start, ``?seconds=S`` bounds it
                          (exactly: ``round(S * rate)`` samples, the header giving that size)
    GET /stream.ogg       the same stream as Ogg Vorbis (about 64 kb/s instead of 353 kb/s), encoded block by
                          block in the listener's worker (:mod:`.encode`); the page plays it when the browser can

Each listener gets its own search and renderer in a worker thread, built cheaply from what every
listener shares read-only (:class:`SharedPool`: the chunk table, songs, embeddings, the search
index, and the seam verdicts of joins already rendered for real, which are most of a live stream's
CPU). At most ``start_slots`` listeners render their first burst at once, so a crowd arriving
together does not starve the ones already playing. The renderer hands the
response small blocks through a bounded queue (:data:`QUEUE_BLOCKS` blocks of at most
:data:`BLOCK_S`), paced to at most ``pace`` x real time after a first ``burst_s`` of audio, so a
greedy client cannot make the server render flat out. A client that stops reading leaves the queue
full: after ``idle_timeout_s`` of that it is dropped and its renderer stopped. Beyond
``max_listeners`` a new listener gets 503. A hang-up stops the worker at once.

``GET /info`` also reports the renderers' CPU use (``render``: audio seconds per CPU second, start-up
CPU ms per listener, seam verdicts computed and reused), figures that do not depend on the machine's load.

Errors: bad query parameters answer 422 ``{"error": "ParameterError", "detail": reason}``; a
:class:`SoundloomError` raised while handling a request answers with a 4xx JSON error (see
:data:`ERROR_STATUS`); one raised mid-stream (a song file deleted while serving) ends that stream
cleanly and is logged as one line.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import html
import logging
import math
import os
import queue
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from ..core.errors import ParameterError, PoolError, SoundloomError
from ..core.levels import db_to_gain
from ..streams.catalog import ChunkCatalog
from ..streams.config import RenderConfig, SearchConfig
from ..streams.endless import wav_stream_header
from ..streams.index import PoolEmbeddings, load_pool_embeddings
from ..streams.joins import reference_lufs
from ..streams.render import iter_render, limit_peaks, segment
from ..streams.seams import SeamVerifier
from ..streams.search import NextChunkChooser, iter_greedy
from .encode import OGG_MIME, OggEncoder

log = logging.getLogger("soundloom.studio")

#: Blocks buffered ahead of a listener; bounds memory per listener (4 x 1 s = 4 s of audio).
QUEUE_BLOCKS = 4
#: Longest block handed to the response (s): the grain of pacing and of the idle check (1 s: 4x fewer
#: event-loop wake-ups than 0.25 s for the same audio).
BLOCK_S = 1.0
#: Nice value of render threads (see :func:`_lower_priority`). 0: on a shared machine, niced renderers
#: lost the CPU to other processes and paced listeners fell behind; the start gate protects the loop now.
RENDER_NICE = 0
#: Fade-out at the end of a bounded (``?seconds=``) stream (s).
FADE_S = 0.01
#: Largest seed accepted (NumPy seeds are unsigned; 32 bits is plenty).
MAX_SEED = 2**32 - 1
#: WAV header length in bytes (RIFF + fmt + data chunk heads), as :func:`wav_stream_header` writes it.
WAV_HEADER_BYTES = 44

#: Seam verdicts kept per app (a bool per join ``(a, b)``; ~150 bytes each): forgotten all at once beyond it.
MAX_VERDICTS = 200_000
#: Most seam verdicts computed ahead at start (``ServeLimits.warm``): ~10 ms of CPU each.
MAX_WARM_VERDICTS = 20_000
#: Nice value of the thread warming seam verdicts: it yields to listeners and pages.
WARM_NICE = 15
#: Listeners' start-up CPU figures kept for ``/info`` (the latest ones).
STATS_KEPT = 256
#: glibc ``mallopt`` parameter number of M_ARENA_MAX (see :func:`_limit_arenas`).
_M_ARENA_MAX = -8
#: Heap arenas the server's threads share (glibc gives each new thread its own otherwise, and keeps them).
MALLOC_ARENAS = 2

#: HTTP status of an error kind (the first kind in this order that the error is); other kinds: 400.
ERROR_STATUS: tuple[tuple[type[SoundloomError], int], ...] = ((ParameterError, 422), (PoolError, 409))


@dataclass(frozen=True)
class ServeLimits:
    """What one server allows its listeners.

    Attributes:
        max_listeners: streams served at once; one more gets 503.
        idle_timeout_s: a listener whose queue stays full this long (it stopped reading) is dropped (s).
        pace: after the burst, audio is rendered at most this many times faster than real time.
        burst_s: audio sent at once at the start, so a player starts without waiting (s).
        max_seconds: longest ``?seconds=`` accepted (s).
        start_slots: listeners rendering their first burst at once (default: the CPU count); the others
            wait their turn, so a crowd arriving together cannot starve the listeners already playing.
        warm: compute the seam verdicts of each chunk's first candidates in the background at start
            (``/info`` says when done), so the first listeners do not pay for them.
    """

    max_listeners: int = 32
    idle_timeout_s: float = 30.0
    pace: float = 2.0
    burst_s: float = 4.0
    max_seconds: float = 24 * 3600.0
    start_slots: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    warm: bool = False

    def __post_init__(self) -> None:
        if self.max_listeners < 1:
            raise ParameterError(f"max_listeners must be >= 1, got {self.max_listeners}")
        if self.start_slots < 1:
            raise ParameterError(f"start_slots must be >= 1, got {self.start_slots}")
        for name in ("idle_timeout_s", "pace", "max_seconds"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be a finite number > 0, got {v}")
        if not (math.isfinite(self.burst_s) and self.burst_s >= 0):
            raise ParameterError(f"burst_s must be a finite number >= 0, got {self.burst_s}")


def error_response(exc: SoundloomError) -> JSONResponse:
    """The 4xx JSON answer to a :class:`SoundloomError`: ``{"error": kind, "detail": str(exc)}``."""
    status = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 400)
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """422 ``{"error": "ParameterError", "detail": "seed: Input should be ... (got '-1')"}``."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        got = f" (got {e['input']!r})" if isinstance(e.get("input"), str | int | float) else ""
        parts.append(f"{where}: {e.get('msg', 'invalid')}{got}")
    return JSONResponse({"error": "ParameterError", "detail": "; ".join(parts)[:500]}, status_code=422)


def exact_header(sample_rate: int, n_samples: int) -> bytes:
    """RIFF/WAVE header of 16-bit mono PCM holding exactly ``n_samples``."""
    data = 2 * n_samples
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data)
    )


class JoinVerdicts:
    """Seam verdicts (does the rendered join ``a -> b`` pass the gates?) shared by every listener.

    A verdict depends only on the pool and the render options, so one computed for one listener
    holds for all: with it, a live stream's joins cost a lookup instead of a few real renders and
    onset envelopes (about 90 % of a listener's CPU without it). Thread-safe; at most
    :data:`MAX_VERDICTS` are kept (then all are forgotten at once, so memory stays bounded).
    """

    def __init__(self, verifier: SeamVerifier, max_entries: int = MAX_VERDICTS):
        self._base, self._max = verifier, max_entries
        self._known: dict[tuple[int, int], bool] = {}
        self._lock = threading.Lock()
        self.computed = 0
        self.reused = 0

    def for_listener(self) -> _ListenerVerifier:
        """A verifier for one listener's search: its own copy of the verifier's per-call state (the
        last A side it read), the verdicts shared."""
        return _ListenerVerifier(self, copy.copy(self._base))

    def lookup(self, key: tuple[int, int]) -> bool | None:
        with self._lock:
            got = self._known.get(key)
            self.reused += got is not None
            return got

    def remember(self, key: tuple[int, int], verdict: bool) -> None:
        with self._lock:
            if len(self._known) >= self._max:
                self._known.clear()
            self._known[key] = verdict
            self.computed += 1


class _ListenerVerifier:
    """What :class:`~soundloom.streams.search.NextChunkChooser` calls (``passes``), backed by the shared verdicts."""

    def __init__(self, verdicts: JoinVerdicts, own: SeamVerifier):
        self.verdicts, self.own = verdicts, own

    def passes(self, a: int, b: int) -> bool:
        key = (int(a), int(b))
        got = self.verdicts.lookup(key)
        if got is None:
            got = self.own.passes(*key)
            self.verdicts.remember(key, got)
        return got


#: The fields :class:`NextChunkChooser` has (as of this module): :func:`fork_chooser` copies a template
#: that has exactly these and builds a fresh chooser otherwise, so a change there cannot leak state.
_CHOOSER_FIELDS = frozenset(
    "cfg verifier table rows reuse_window tails index succ song rel_tail_db rel_head_db tail_spec head_spec "
    "uses made step rng".split()
)
#: Options a chooser's read-only parts (index, reuse window) depend on: a template serves configs equal in these.
_CHOOSER_BUILD_OPTIONS = ("index", "reuse_window")


def fork_chooser(template: NextChunkChooser, emb: PoolEmbeddings, cfg: SearchConfig, verifier) -> NextChunkChooser:
    """A chooser for one listener that shares ``template``'s read-only parts (table, search index,
    successor and seam arrays) and has its own search state (uses, joins made, step, seeded RNG).

    Equivalent to ``NextChunkChooser(template.table, emb, cfg, verifier=verifier)`` (tested), at the cost
    of a zeroed array of per-chunk use counts instead of rebuilding the index. ``emb``: the embeddings
    the template was built from (a fresh chooser is built from them when the template cannot be forked).
    """
    same_build = all(getattr(cfg, k) == getattr(template.cfg, k) for k in _CHOOSER_BUILD_OPTIONS)
    if set(vars(template)) != _CHOOSER_FIELDS or not same_build:
        return NextChunkChooser(template.table, emb, cfg, verifier=verifier)
    chooser = copy.copy(template)
    chooser.cfg, chooser.verifier = cfg, verifier
    chooser.uses = np.zeros_like(template.uses)
    chooser.made, chooser.step = {}, 0
    chooser.rng = np.random.default_rng(cfg.seed + 1)
    return chooser


class RenderStats:
    """CPU the listeners' renderers used (thread CPU time, so independent of the machine's load)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.listeners = 0
        self.audio_s = 0.0
        self.cpu_s = 0.0
        self.setup_cpu_ms: deque[float] = deque(maxlen=STATS_KEPT)
        self.first_block_cpu_ms: deque[float] = deque(maxlen=STATS_KEPT)

    def add(self, setup_ms: float, first_ms: float | None, audio_s: float, cpu_s: float) -> None:
        with self._lock:
            self.listeners += 1
            self.audio_s += audio_s
            self.cpu_s += cpu_s
            self.setup_cpu_ms.append(setup_ms)
            if first_ms is not None:
                self.first_block_cpu_ms.append(first_ms)

    def summary(self) -> dict:
        """Finished listeners, audio seconds rendered per CPU second, median start-up CPU (ms)."""
        with self._lock:
            med = lambda xs: float(np.median(xs)) if xs else None  # noqa: E731
            return {
                "finished_listeners": self.listeners,
                "audio_s": round(self.audio_s, 3),
                "cpu_s": round(self.cpu_s, 3),
                "audio_s_per_cpu_s": round(self.audio_s / self.cpu_s, 1) if self.cpu_s > 0 else None,
                "setup_cpu_ms_median": med(self.setup_cpu_ms),
                "first_block_cpu_ms_median": med(self.first_block_cpu_ms),
            }


class SharedPool:
    """Everything the listeners of one app read and never change, loaded once: the chunk table, the
    songs, the embeddings, the loudness reference and stream gain, a template search (its index
    built once), the seam verdicts, and the start-up gate (``start_slots``).
    """

    def __init__(self, catalog: ChunkCatalog, emb: PoolEmbeddings, search: SearchConfig, render: RenderConfig, limits):
        self.table, self.songs = catalog.chunks(), catalog.song_map()
        self.sample_rate = catalog.sample_rate
        self.emb, self.render_cfg = emb, render
        self.ref_lufs = reference_lufs(self.table.loudness_lufs)
        self.gain = db_to_gain(render.target_lufs - self.ref_lufs)
        self.template: NextChunkChooser | None = None
        if len(emb) >= 2:
            self.template = NextChunkChooser(self.table, emb, search)
        self.verdicts = JoinVerdicts(SeamVerifier(catalog, render))
        self.start_gate = threading.BoundedSemaphore(limits.start_slots)
        self.stats = RenderStats()
        self.warmed = threading.Event()  # set when warm_verdicts has finished (or was never asked for)
        self.warmed.set()
        self._to_start: queue.SimpleQueue[threading.Thread] = queue.SimpleQueue()
        self._starter: threading.Thread | None = None
        self._starter_lock = threading.Lock()

    def spawn(self, listener: Listener) -> None:
        """Queue ``listener`` for this pool's starter thread, without waiting: ``Thread.start`` waits until
        the new thread runs, which under load (a crowd of listeners arriving, bursts rendering) costs the
        event loop tens of ms per listener (measured: the page took 1.6 s while 45 listeners arrived)."""
        with self._starter_lock:
            if self._starter is None:
                self._starter = threading.Thread(target=self._start_workers, name="soundloom-starter", daemon=True)
                self._starter.start()
        self._to_start.put(listener)

    def _start_workers(self) -> None:
        """Start the queued listeners' workers in arrival order, each once it holds a start slot.

        A listener has no thread until then: a crowd arriving together used to start one thread each at
        once, every one polling the start gate four times a second (45 threads for 2 slots in the load test)."""
        while True:
            listener = self._to_start.get()
            while not listener.stop.is_set():
                if self.start_gate.acquire(timeout=0.25):
                    listener.admitted()
                    break
            else:  # it hung up while queued: end its response, no worker needed
                listener._hand(listener._DONE)

    def start_warming(self, max_verdicts: int = MAX_WARM_VERDICTS) -> None:
        """Compute, in a low-priority background thread, the verdicts a stream starting at each chunk
        checks first (see :meth:`warm_verdicts`); ``warmed`` is set when done."""
        if self.template is None:
            return
        self.warmed.clear()
        threading.Thread(target=self.warm_verdicts, args=(max_verdicts,), name="soundloom-warm", daemon=True).start()

    def warm_verdicts(self, max_verdicts: int = MAX_WARM_VERDICTS) -> int:
        """For each chunk (until ``max_verdicts`` are known), run one search step from it, which verifies
        its first candidates for real: most joins a live stream checks are these, so listeners then
        find their verdicts ready instead of rendering joins at start-up. Returns the verdicts computed."""
        _lower_priority(WARM_NICE)
        before = self.verdicts.computed
        # one verifier for every step (this thread's alone): a fresh copy per step would calibrate each
        # song's quiet-join reference again (SeamVerifier copies start with empty caches): 13 s instead of 4
        verifier = self.verdicts.for_listener()
        try:
            for a in self.template.rows:
                if self.verdicts.computed - before >= max_verdicts:
                    break
                cfg = dataclasses.replace(self.template.cfg, start=int(self.table.id[a]))
                chooser = fork_chooser(self.template, self.emb, cfg, verifier)
                chooser.candidates(chooser.start_state(np.random.default_rng(0)))
        except SoundloomError as exc:  # a song file gone: listeners will meet it and say so
            log.warning("seam verdicts not warmed: %s", exc)
        finally:
            self.warmed.set()
            _release_memory()
        return self.verdicts.computed - before

    def chooser(self, cfg: SearchConfig) -> NextChunkChooser:
        """A fresh search for one listener (see :func:`fork_chooser`)."""
        return fork_chooser(self.template, self.emb, cfg, self.verdicts.for_listener())

    def write_stream(self, out, cfg: SearchConfig) -> None:
        """Write the live stream of seed ``cfg.seed`` to ``out`` (a WAV header, then 16-bit blocks) until
        ``out.write`` raises :class:`BrokenPipeError`: the loop of
        :func:`soundloom.streams.endless.write_endless` with seam verification, over the shared state."""
        rcfg, rate, table, songs = self.render_cfg, self.sample_rate, self.table, self.songs
        chooser = self.chooser(cfg)
        out.write(wav_stream_header(rate))
        segments = (
            segment(table, songs, row, score, nat, self.ref_lufs, rcfg)
            for row, score, nat in iter_greedy(chooser, cfg.seed)
        )
        for block, _ in iter_render(segments, rate, rcfg):
            block = limit_peaks(block * self.gain, rate, rcfg.true_peak_db - 0.5)
            out.write((np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())


class _Stopped(BrokenPipeError):
    """Raised in the renderer to end it (write_endless returns on a broken pipe)."""


class Listener:
    """One listener's renderer: a worker thread handing WAV blocks to the event loop.

    The worker blocks on a semaphore of :data:`QUEUE_BLOCKS` slots; the response frees a slot per
    block it takes. Pacing and the idle check happen in the worker, so the event loop never waits
    on it (and no thread-pool thread is held per listener). The worker starts only once the pool's
    starter thread has taken one of the start slots for it, and gives the slot back once its burst is
    handed over (or the client stops taking blocks), so only ``start_slots`` listeners render a burst at
    once and a listener waiting its turn costs no thread.
    """

    _DONE = object()

    def __init__(
        self, shared: SharedPool, scfg: SearchConfig, limits: ServeLimits, seconds: float | None, ogg: bool = False
    ):
        self.loop = asyncio.get_running_loop()
        self.q: asyncio.Queue[object] = asyncio.Queue()
        self.slots = threading.Semaphore(QUEUE_BLOCKS)
        self.stop = threading.Event()
        self.dropped = asyncio.Event()  # set (in the loop) when the worker gave up on an idle client
        self.shared, self.rate, self.limits = shared, shared.sample_rate, limits
        self.total = None if seconds is None else max(1, round(seconds * self.rate))  # samples
        self.sent = 0  # PCM samples handed over
        self.header_sent = False
        self.held = np.zeros(0, "<i2")  # samples held back for the fade-out of a bounded stream
        self.encoder = OggEncoder(self.rate) if ogg else None  # None: WAV (header, then raw PCM)
        self.t0 = time.monotonic()
        self.starting = False  # holds a start slot
        self.cpu0 = 0.0  # thread CPU time at the worker's start (s)
        self.setup_cpu_ms = 0.0  # thread CPU (ms) before the header: this listener's own search state
        self.first_block_cpu_ms: float | None = None  # ... and before its first audio block
        self.worker = threading.Thread(target=self._work, args=(scfg,), name="soundloom-stream", daemon=True)
        shared.spawn(self)

    # -- worker side ---------------------------------------------------------------------------
    def admitted(self) -> None:
        """Called by the starter thread with a start slot taken for this listener: start its worker."""
        self.starting = True
        try:
            self.worker.start()
        except RuntimeError as exc:  # no thread to be had: give the slot back and end this stream
            self._started()
            self._hand(exc)

    def _work(self, scfg: SearchConfig) -> None:
        _lower_priority()
        try:
            self.cpu0 = time.thread_time()
            self.shared.write_stream(self, scfg)
            self._hand(self._DONE)
        except _Stopped:
            self._hand(self._DONE)
        except BaseException as exc:  # handed to the response, which ends the stream and logs it
            self._hand(exc)
        finally:
            self._started()
            cpu = time.thread_time() - self.cpu0
            self.shared.stats.add(self.setup_cpu_ms, self.first_block_cpu_ms, self.sent / self.rate, cpu)
            _release_memory()

    def _started(self) -> None:
        """Give the start slot back (once): the burst is out, or the client stopped taking it."""
        if self.starting:
            self.starting = False
            self.shared.start_gate.release()

    def write(self, data: bytes) -> int:
        """File-like ``write`` for :func:`write_endless`: the header, then 16-bit PCM blocks."""
        if not self.header_sent:
            self.header_sent = True
            self.setup_cpu_ms = 1000 * (time.thread_time() - self.cpu0)
            if self.encoder is None:  # Ogg's header pages come with the first audio
                self._push(exact_header(self.rate, self.total) if self.total is not None else bytes(data))
            return len(data)
        if self.first_block_cpu_ms is None:
            self.first_block_cpu_ms = 1000 * (time.thread_time() - self.cpu0)
        pcm = np.frombuffer(data, dtype="<i2")
        if self.total is None:
            self._send(pcm)
            return len(data)
        # The last FADE_S of a bounded stream is faded out, so a few samples are held back until
        # the end is known (the end may fall in the next block).
        self.held = np.concatenate([self.held, pcm[: self.total - self.sent - len(self.held)]])
        if self.sent + len(self.held) >= self.total:
            self._send(_fade_out(self.held, self.rate))
            if self.encoder is not None:  # the last Ogg pages, which end the bitstream
                self._push(self.encoder.close())
            raise _Stopped("the requested length was reached")
        keep = min(len(self.held), int(FADE_S * self.rate))
        self._send(self.held[: len(self.held) - keep])
        self.held = self.held[len(self.held) - keep :]
        return len(data)

    def _send(self, pcm: np.ndarray) -> None:
        """Hand ``pcm`` over in blocks of at most :data:`BLOCK_S`, paced."""
        step = max(1, int(BLOCK_S * self.rate))
        for i in range(0, len(pcm), step):
            piece = pcm[i : i + step]
            self._pace()
            data = piece.tobytes() if self.encoder is None else self.encoder.encode(piece)
            if data:  # the Ogg encoder hands out whole pages only
                self._push(data)
            self.sent += len(piece)

    def flush(self) -> None:
        pass

    def _pace(self) -> None:
        """Wait until sending more keeps within ``burst_s + pace x elapsed`` of audio."""
        ahead_s = self.sent / self.rate - self.limits.burst_s
        if ahead_s >= 0:
            self._started()
        if ahead_s > 0:
            wait = self.t0 + ahead_s / self.limits.pace - time.monotonic()
            if wait > 0 and self.stop.wait(wait):
                raise _Stopped("listener went away")

    def _push(self, block: bytes) -> None:
        """Take a queue slot (giving up after ``idle_timeout_s`` of a full queue), then hand ``block`` over."""
        deadline = time.monotonic() + self.limits.idle_timeout_s
        if not self.slots.acquire(blocking=False):
            self._started()  # the client is not taking its burst: let another listener start meanwhile
            while not self.slots.acquire(timeout=min(0.25, max(0.0, deadline - time.monotonic()))):
                if self.stop.is_set():
                    raise _Stopped("listener went away")
                if time.monotonic() >= deadline:
                    self.stop.set()
                    self._call(self.dropped.set)
                    raise _Stopped("listener stopped reading")
        if self.stop.is_set():
            raise _Stopped("listener went away")
        self._call(self.q.put_nowait, block)

    def _hand(self, item: object) -> None:
        """Hand the end marker or an error over without waiting for a slot (the queue is unbounded)."""
        self._call(self.q.put_nowait, item)

    def _call(self, fn, *args) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the server is shutting down
            self.stop.set()

    # -- response side -------------------------------------------------------------------------
    async def blocks(self):
        """WAV header then PCM blocks until the stream ends; logs (one line) an error that ended it."""
        try:
            while True:
                item = await self.q.get()
                if item is self._DONE:
                    return
                if isinstance(item, BaseException):
                    _log_stream_error(item)
                    return
                self.slots.release()
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self.stop.set()


def _release_memory() -> None:
    """Give freed heap back to the system (glibc keeps a worker thread's arena otherwise), so the
    server's RSS returns to its idle size after listeners leave."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _limit_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Let the server's threads share ``arenas`` glibc heap arenas: each listener's worker thread would
    otherwise get one of its own (up to 8 per core), whose freed pages glibc keeps, so the RSS would
    stay up after listeners leave. Process-wide; a no-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # not glibc
        pass


def _lower_priority(nice: int = RENDER_NICE) -> None:
    """Lower this thread's CPU priority (Linux threads have their own nice value), so the event loop
    that answers pages and hands blocks over gets the CPU first when renders compete for it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: keep the default priority
        pass


def _fade_out(pcm: np.ndarray, rate: int) -> np.ndarray:
    """The last :data:`FADE_S` of 16-bit ``pcm`` faded to zero, so a trimmed stream ends without a click."""
    n = min(len(pcm), int(FADE_S * rate))
    out = pcm.copy()
    if n:
        out[-n:] = (out[-n:].astype(np.float32) * np.linspace(1, 0, n, dtype=np.float32)).astype("<i2")
    return out


def _log_stream_error(exc: BaseException) -> None:
    if isinstance(exc, SoundloomError | OSError):
        log.warning("a stream ended early: %s", exc)
    else:  # a bug: one line here, the traceback only at debug level
        log.error("a stream ended early: internal error (%s: %s)", type(exc).__name__, exc)
        log.debug("traceback", exc_info=exc)


class ListenerResponse(StreamingResponse):
    """A streaming response bound to one :class:`Listener`; frees the listener's slot when it ends.

    When the listener's worker gives up on a client that stopped reading, the pending send (blocked
    on the client) is cancelled, so the connection is released too.
    """

    def __init__(self, app: FastAPI, make_listener, headers: dict[str, str], media_type: str = "audio/wav"):
        self._app, self._make = app, make_listener
        super().__init__(self._body(), media_type=media_type, headers=headers)
        self._listener: Listener | None = None

    async def _body(self):
        async for block in self._listener.blocks():
            yield block

    async def __call__(self, scope, receive, send) -> None:
        try:
            self._listener = self._make()  # here, in the event loop the listener hands blocks to
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    await self._listener.dropped.wait()
                    log.warning("dropped a listener that stopped reading for %g s", self._app.state.idle_timeout_s)
                    tg.cancel_scope.cancel()

                async def serve() -> None:
                    await super(ListenerResponse, self).__call__(scope, receive, send)
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                tg.start_soon(serve)
        finally:
            if self._listener is not None:
                self._listener.close()
            self._app.state.listeners -= 1


def create_app(
    pool: str | Path,
    model: str,
    search: SearchConfig | None = None,
    render: RenderConfig | None = None,
    limits: ServeLimits | None = None,
) -> FastAPI:
    """Build the app for one pool and one transition model (a run folder, or "features").

    Raises:
        PoolError: the pool is missing, not a pool, has no chunks, or its song files changed.
    """
    pool = Path(pool)
    search = search or SearchConfig()
    render = render or RenderConfig()
    limits = limits or ServeLimits()
    with ChunkCatalog(pool, create=False) as catalog:
        table = catalog.chunks()
        if len(table) == 0:
            raise PoolError(pool, "the pool has no chunks; add songs with `soundloom chunk`")
        changed = catalog.check_sources()
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise PoolError(changed[0]["path"], changed[0]["reason"] + more)
        emb = load_pool_embeddings(catalog, model)
        sample_rate = catalog.sample_rate
        shared = SharedPool(catalog, emb, search, render, limits)
        info = {
            "pool": str(pool),
            "model": str(model),
            "sample_rate": sample_rate,
            "songs": len(set(table.song_id.tolist())),
            "chunks": len(table),
            "target_lufs": render.target_lufs,
            "crossfade_ms": render.crossfade_ms,
            "max_listeners": limits.max_listeners,
        }

    _limit_arenas()
    app = FastAPI(title="soundloom stream", version="0.1")
    app.state.listeners = 0
    app.state.shared = shared
    if limits.warm:
        shared.start_warming()
    app.state.idle_timeout_s = limits.idle_timeout_s

    @app.exception_handler(SoundloomError)
    async def soundloom_error(_: Request, exc: SoundloomError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_query(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/info")
    async def get_info() -> dict:
        verdicts = {
            "seam_verdicts_computed": shared.verdicts.computed,
            "seam_verdicts_reused": shared.verdicts.reused,
            "seam_verdicts_warm": shared.warmed.is_set(),
        }
        return {**info, "listeners": app.state.listeners, "render": {**shared.stats.summary(), **verdicts}}

    seed_query = Query(search.seed, ge=0, le=MAX_SEED, description="start chunk and sampling seed")
    seconds_query = Query(
        None, gt=0, le=limits.max_seconds, allow_inf_nan=False, description="stop after exactly this long (s)"
    )

    @app.get("/stream.wav")
    async def get_stream(seed: int = seed_query, seconds: float | None = seconds_query):
        """The live stream as 16-bit mono WAV (endless: the header declares the largest size)."""
        return listen(seed, seconds, ogg=False)

    @app.get("/stream.ogg")
    async def get_stream_ogg(seed: int = seed_query, seconds: float | None = seconds_query):
        """The live stream as Ogg Vorbis, encoded as it is rendered."""
        return listen(seed, seconds, ogg=True)

    def listen(seed: int, seconds: float | None, ogg: bool):
        if len(emb) < 2:
            raise PoolError(pool, f"the pool needs at least two chunks to stream, it has {len(emb)}")
        if app.state.listeners >= limits.max_listeners:
            return JSONResponse(
                {"error": "busy", "detail": f"{limits.max_listeners} listeners already (the most this server takes)"},
                status_code=503,
                headers={"Retry-After": "10"},
            )
        scfg = dataclasses.replace(search, seed=seed)
        app.state.listeners += 1  # given back by ListenerResponse when the stream ends
        return ListenerResponse(
            app,
            lambda: Listener(shared, scfg, limits, seconds, ogg=ogg),
            headers={"Cache-Control": "no-store"},
            media_type=OGG_MIME if ogg else "audio/wav",
        )

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        text = f"{info['songs']} songs, {info['chunks']} chunks, model {info['model']}, {info['target_lufs']:g} LUFS"
        return PAGE.replace("{{INFO}}", html.escape(text))

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>soundloom stream</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;color:#222}
audio{width:100%}button{font-size:1em;padding:.4em 1em}</style></head>
<body><h1>soundloom</h1><p>An endless remix: {{INFO}}.</p>
<audio id="player" controls autoplay></audio>
<p><button onclick="reseed()">new stream</button> <span id="seed">seed 0</span> <span id="kind"></span></p>
<script>
const player=document.getElementById('player');
const src=player.canPlayType('audio/ogg; codecs="vorbis"')?'stream.ogg':'stream.wav';
document.getElementById('kind').textContent='('+src+')';
player.src=src;
function reseed(){const s=Math.floor(Math.random()*1e6);
player.src=src+'?seed='+s;
document.getElementById('seed').textContent='seed '+s;}
</script></body></html>
"""
