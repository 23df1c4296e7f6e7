"""When events happen: a seeded Poisson process per event source, steered by a live mood.

Each source fires at ``mood.event_rate_per_min x source.rate_scale`` events per minute. Across
all sources no two events start closer than the mood's ``min_spacing_s``: an event that would
come too soon is pushed back to the earliest allowed time (never dropped, so rates hold unless
the spacing itself saturates them).

The mood can change while the schedule runs (:meth:`Schedule.set_mood`, from any thread). A
Poisson process is memoryless, so at a change every source's pending draw is redrawn at the new
rate from the change (or the last event handed out, if later): the new rate holds from the next
event on, exactly as a piecewise-constant-rate process would, and nothing waits out an old, long
calm interval.

Reproducible: the same seed, sources and mood changes give the same events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.errors import ParameterError
from .mood import Mood
from .spatial import Position


@dataclass(frozen=True)
class EventSource:
    """A kind of event: a name, the labels it can play, and a rate relative to the mood's."""

    name: str
    labels: tuple[str, ...]
    rate_scale: float = 1.0

    def __post_init__(self):
        if not self.labels:
            raise ParameterError(f"event source {self.name!r} has no labels")
        if self.rate_scale <= 0:
            raise ParameterError(f"event source {self.name!r}: rate_scale {self.rate_scale} must be > 0")


@dataclass(frozen=True)
class ScheduledEvent:
    """One event: start time (s), which source and label, the seed to generate it with, where, how loud.

    ``min_spacing_s`` is the spacing the mood asked for when the event was drawn (for collision checks);
    ``energy`` is that mood's energy (0 calm .. 1 energetic), so a score shows when a mood change took hold.
    """

    index: int
    time_s: float
    source: str
    label: str
    seed: int
    position: Position
    gain_db: float
    min_spacing_s: float
    energy: float = 0.5

    def to_dict(self) -> dict:
        """The event as one JSON object of the score."""
        return {
            "index": self.index,
            "time_s": round(self.time_s, 6),
            "source": self.source,
            "label": self.label,
            "seed": self.seed,
            "position": self.position.to_dict(),
            "gain_db": round(self.gain_db, 3),
            "min_spacing_s": round(self.min_spacing_s, 6),
            "energy": round(self.energy, 4),
        }


class Schedule:
    """An endless, time-ordered stream of :class:`ScheduledEvent` (iterate, or :meth:`until`)."""

    def __init__(
        self, sources: Sequence[EventSource], mood: Mood | str | float = "calm", seed: int = 0, start_s: float = 0.0
    ):
        if not sources:
            raise ParameterError("a schedule needs at least one event source")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ParameterError(f"event source names must be unique, got {names}")
        self.sources = tuple(sources)
        self._mood = Mood.of(mood)
        self._lock = threading.Lock()
        root = np.random.SeedSequence(seed)
        # Arrival times and event attributes draw from separate streams, per source, so one
        # source's draws never shift another's.
        streams = root.spawn(2 * len(self.sources))
        self._arrival_rng = [np.random.default_rng(s) for s in streams[0::2]]
        self._attr_rng = [np.random.default_rng(s) for s in streams[1::2]]
        self._last_s: float | None = None
        self._clock_s = float(start_s)
        self._count = 0
        self._pending = [self._draw(i, self._clock_s) for i in range(len(self.sources))]
        self.mood_changes: list[dict] = [{"at_s": float(start_s), "mood": self._mood.to_dict()}]

    @property
    def mood(self) -> Mood:
        return self._mood

    def set_mood(self, mood: Mood | str | float, at_s: float) -> None:
        """Change the mood from scape time ``at_s`` (s) on; pending draws are redrawn at the new rate."""
        mood = Mood.of(mood)
        with self._lock:
            self._mood = mood
            origin = max(float(at_s), self._clock_s)
            self._pending = [self._draw(i, origin) for i in range(len(self.sources))]
            self.mood_changes.append({"at_s": origin, "mood": mood.to_dict()})

    def next_event(self) -> ScheduledEvent:
        """The next event in time."""
        with self._lock:
            mood = self._mood
            i = int(np.argmin(self._pending))
            t = self._pending[i]
            if self._last_s is not None:
                t = max(t, self._last_s + mood.min_spacing_s)
            self._pending[i] = self._draw(i, self._pending[i])
            self._last_s = self._clock_s = t
            event = self._attributes(i, t, mood)
            self._count += 1
            return event

    def until(self, end_s: float) -> list[ScheduledEvent]:
        """Every next event that starts before ``end_s`` (s); later ones stay pending."""
        out: list[ScheduledEvent] = []
        while True:
            with self._lock:
                soonest = min(self._pending)
                if self._last_s is not None:
                    soonest = max(soonest, self._last_s + self._mood.min_spacing_s)
            if soonest >= end_s:
                return out
            out.append(self.next_event())

    def __iter__(self) -> Iterator[ScheduledEvent]:
        while True:
            yield self.next_event()

    def _draw(self, i: int, origin_s: float) -> float:
        rate_per_s = self._mood.event_rate_per_min * self.sources[i].rate_scale / 60.0
        return origin_s + float(self._arrival_rng[i].exponential(1.0 / rate_per_s))

    def _attributes(self, i: int, t: float, mood: Mood) -> ScheduledEvent:
        rng, source = self._attr_rng[i], self.sources[i]
        (el_lo, el_hi), (near, far), (g_lo, g_hi) = mood.elevation_range_deg, mood.distance_range_m, mood.gain_db_range
        position = Position(
            azimuth_deg=float(rng.uniform(-mood.azimuth_spread_deg, mood.azimuth_spread_deg)),
            elevation_deg=float(rng.uniform(el_lo, el_hi)),
            distance_m=float(np.exp(rng.uniform(np.log(near), np.log(far)))),
            drift_deg_per_s=float(rng.uniform(-mood.drift_deg_per_s, mood.drift_deg_per_s)),
        )
        return ScheduledEvent(
            index=self._count,
            time_s=t,
            source=source.name,
            label=str(source.labels[int(rng.integers(len(source.labels)))]),
            seed=int(rng.integers(0, 2**31 - 1)),
            position=position,
            gain_db=float(rng.uniform(g_lo, g_hi)),
            min_spacing_s=mood.min_spacing_s,
            energy=mood.energy,
        )
