"""The soundscape mixer: an endless bed plus scheduled, spatialised events, limited, in blocks.

Inputs are plain values so the engines plug in later without this module knowing them:

- a **bed**: any iterable of stereo blocks ``(2, n)`` at the scape rate (any n; re-blocked here);
  when it ends the bed falls silent and the events go on.
- **event sources**: a callable ``(label, seed, params) -> mono (samples,)`` at the scape rate, or
  one per source name. ``params`` holds ``energy`` (0..1), ``brightness_hz`` and ``source``.
  Each event is peak-normalised to -1 dBFS, then gets its scheduled ``gain_db``, the mood's
  brightness low-pass and its place in space.
- a :class:`~soundloom.scapes.schedule.Schedule`.

Events are rendered ahead (``lookahead_s``) by a worker thread pool. Live (the default), the
mixer never waits: an event whose render is not ready when its start is mixed is skipped and
counted (``skipped`` in the score). Offline (``live=False``, for files) it waits, so the file
holds every event of the schedule.

Layouts: stereo and binaural carry the bed as it is (the bed is already a stereo mix); in FOA
the bed stays centred: ``W = (L + R) / 2`` plus ``Y = bed_width x (L - R) / 2`` (a little of
the bed's own left-right width; ``bed_width=0`` gives W only), X = Z = 0.

Every output block passes a true-peak limiter (-1 dBTP by default); the output is aligned with
the schedule (the limiter's look-ahead only delays when a block is handed out). A JSON score lists every event
played (time, source, label, seed, position, gain) so a game can trigger them itself.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ..core.atomic import write_json
from ..core.errors import AudioError, ParameterError
from ..core.levels import db_to_gain, gain_to_db, normalize_peak
from .limiter import TruePeakLimiter
from .mood import Mood
from .schedule import Schedule, ScheduledEvent
from .spatial import LAYOUTS, Renderer, make_renderer

#: ``(label, seed, params) -> mono (samples,)`` at the scape's rate.
EventSynth = Callable[[str, int, dict], np.ndarray]

SCORE_VERSION = 1


@dataclass
class _Voice:
    start: int  # sample index of the event's first sample
    audio: np.ndarray  # (channels, n)


class Mixer:
    """Mix a bed and scheduled events into ``(channels, block_size)`` blocks of a layout."""

    def __init__(
        self,
        bed: Iterable[np.ndarray],
        events: EventSynth | Mapping[str, EventSynth],
        schedule: Schedule,
        sample_rate: int,
        layout: str = "stereo",
        block_size: int = 4096,
        renderer: Renderer | None = None,
        lookahead_s: float = 2.0,
        workers: int = 1,
        live: bool = True,
        ceiling_dbtp: float = -1.0,
        bed_gain_db: float = 0.0,
        bed_width: float = 0.3,
        hrtf: str | os.PathLike | None = "auto",
    ):
        if layout not in LAYOUTS:
            raise ParameterError(f"unknown layout {layout!r}; use one of {sorted(LAYOUTS)}")
        if block_size < 64:
            raise ParameterError(f"block_size {block_size} is below 64 samples")
        self.sample_rate, self.layout, self.block_size = sample_rate, layout, block_size
        self.channels = LAYOUTS[layout]
        self.renderer = renderer or make_renderer(layout, sample_rate, hrtf=hrtf)
        self.schedule, self.live = schedule, live
        self._synths = events
        self._bed = iter(bed)
        self._bed_buf = np.zeros((2, 0), dtype=np.float32)
        self._bed_gain = db_to_gain(bed_gain_db)
        self.bed_width = bed_width
        self._lookahead = int(lookahead_s * sample_rate)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scape-events")
        self._pending: deque[tuple[ScheduledEvent, int, Future]] = deque()
        self._voices: list[_Voice] = []
        self._limiter = TruePeakLimiter(self.channels, sample_rate, ceiling_dbtp=ceiling_dbtp)
        self._pos = 0  # next sample to mix (scape time, before the limiter)
        self.emitted = 0  # samples handed out
        self.played: list[ScheduledEvent] = []
        self.skipped: list[ScheduledEvent] = []

    # -- control ------------------------------------------------------------------------------
    def set_mood(self, mood: Mood | str | float) -> None:
        """Change the mood now (from any thread); events already rendered ahead keep theirs."""
        self.schedule.set_mood(mood, at_s=self._pos / self.sample_rate)

    def close(self) -> None:
        """Stop the event workers (pending renders are cancelled)."""
        for _, _, fut in self._pending:
            fut.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Mixer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- output -------------------------------------------------------------------------------
    def blocks(self) -> Iterator[np.ndarray]:
        """Endless ``(channels, block_size)`` float32 blocks."""
        out = np.zeros((self.channels, 0), dtype=np.float32)
        while True:
            limited = self._limiter.process(self._mix_block())
            out = np.concatenate([out, limited], axis=1) if out.size else limited
            while out.shape[1] >= self.block_size:
                block, out = out[:, : self.block_size], out[:, self.block_size :]
                self.emitted += self.block_size
                yield block

    def render(self, seconds: float) -> np.ndarray:
        """The first ``seconds`` of the scape as one ``(channels, samples)`` array."""
        n = int(round(seconds * self.sample_rate))
        parts, have = [], 0
        for block in self.blocks():
            parts.append(block)
            have += block.shape[1]
            if have >= n:
                break
        return np.concatenate(parts, axis=1)[:, :n]

    def score(self) -> dict:
        """The JSON score: every event played and skipped, mood changes, renderer and limiter."""
        return {
            "version": SCORE_VERSION,
            "sample_rate": self.sample_rate,
            "layout": self.layout,
            "renderer": self.renderer.method,
            "duration_s": self.emitted / self.sample_rate,
            "events": [e.to_dict() for e in self.played if e.time_s * self.sample_rate < self.emitted],
            "skipped": [e.to_dict() for e in self.skipped],
            "mood_changes": list(self.schedule.mood_changes),
            "limiter": {
                "ceiling_dbtp": gain_to_db(self._limiter.ceiling),
                "reduced_samples": self._limiter.reduced_samples,
                "min_gain_db": gain_to_db(self._limiter.min_gain),
            },
        }

    def write_score(self, path: str | os.PathLike) -> Path:
        """Write :meth:`score` as JSON (atomically)."""
        return write_json(path, self.score())

    # -- internals ----------------------------------------------------------------------------
    def _mix_block(self) -> np.ndarray:
        n, start = self.block_size, self._pos
        block = self._bed_block(n)
        self._queue_events(start + n + self._lookahead)
        while self._pending and self._pending[0][1] < start + n:
            event, at, fut = self._pending.popleft()
            if not fut.done() and self.live:
                fut.cancel()
                self.skipped.append(event)
                continue
            self._voices.append(_Voice(max(at, start), fut.result()))  # a failed render raises here
            self.played.append(event)
        still = []
        for v in self._voices:
            off = v.start - start
            src0 = max(0, -off)
            dst0 = max(0, off)
            count = min(n - dst0, v.audio.shape[1] - src0)
            if count > 0:
                block[:, dst0 : dst0 + count] += v.audio[:, src0 : src0 + count]
            if v.audio.shape[1] - src0 > n - dst0:
                still.append(v)
        self._voices = still
        self._pos += n
        return block

    def _bed_block(self, n: int) -> np.ndarray:
        while self._bed_buf.shape[1] < n:
            chunk = next(self._bed, None)
            if chunk is None:
                chunk = np.zeros((2, n), np.float32)
                self._bed = iter(())
            chunk = np.asarray(chunk, dtype=np.float32)
            if chunk.ndim != 2 or chunk.shape[0] != 2:
                raise AudioError(f"bed blocks must be stereo (2, samples), got shape {chunk.shape}")
            # The usual case (the bed's blocks are ours) takes no copy.
            self._bed_buf = chunk if self._bed_buf.shape[1] == 0 else np.concatenate([self._bed_buf, chunk], axis=1)
        bed, self._bed_buf = self._bed_buf[:, :n] * np.float32(self._bed_gain), self._bed_buf[:, n:]
        if self.layout != "foa":
            return bed
        out = np.zeros((4, n), dtype=np.float32)
        out[0] = 0.5 * (bed[0] + bed[1])
        out[1] = self.bed_width * 0.5 * (bed[0] - bed[1])
        return out

    def _queue_events(self, until_sample: int) -> None:
        for event in self.schedule.until(until_sample / self.sample_rate):
            mood = self.schedule.mood
            params = {"energy": mood.energy, "brightness_hz": mood.event_lowpass_hz, "source": event.source}
            fut = self._pool.submit(self._render_event, event, params)
            self._pending.append((event, int(round(event.time_s * self.sample_rate)), fut))

    def _render_event(self, event: ScheduledEvent, params: dict) -> np.ndarray:
        synth = self._synths[event.source] if isinstance(self._synths, Mapping) else self._synths
        mono = np.asarray(synth(event.label, event.seed, params), dtype=np.float32).reshape(-1)
        if mono.size == 0 or not np.all(np.isfinite(mono)):
            raise AudioError(f"event source {event.source!r} gave empty or non-finite audio for {event.label!r}")
        mono = normalize_peak(mono, headroom_db=1.0) * np.float32(db_to_gain(event.gain_db))
        cutoff = params["brightness_hz"]
        if cutoff < 0.45 * self.sample_rate:
            sos = signal.butter(2, cutoff, fs=self.sample_rate, output="sos")
            mono = signal.sosfilt(sos, mono).astype(np.float32)
        return self.renderer.render(mono, event.position)
