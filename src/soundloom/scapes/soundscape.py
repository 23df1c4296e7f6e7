"""The soundscape API: a mood-steered bed plus generated events, placed in space, to a file or live.

::

    bed = Bed.open("pool/", "features", mood="calm", sample_rate=48000)
    events = [GeneratedEvents.from_spec("runs/ambient:bird,chime", 48000)]
    with Soundscape(bed=bed, events=events, mood="calm", layout="binaural") as scape:
        scape.render(10, "calm.flac")            # calm.flac + calm.flac.score.json
    # live: for block in scape.blocks(): ...   scape.set_mood("energetic") from any thread

``bed`` is a :class:`~soundloom.scapes.bed.Bed`, any iterable of stereo blocks ``(2, n)`` at the
scape rate (e.g. :func:`~soundloom.scapes.synthetic.synthetic_bed`), or ``None`` (silence).
``events`` are sources with a ``.source`` (:class:`EventSource`) that are called
``(label, seed, params) -> mono`` (:mod:`soundloom.scapes.events`).

The score (``<out>.score.json``) lists every event played (time, source, label, seed, position,
gain, the mood energy it was drawn with), the mood changes (when asked, in scape time), and the
bed's joins with their seam figures measured on the rendered bed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path, write_json
from ..core.errors import AudioError, ParameterError
from ..core.io import WRITE_FORMATS
from .mixer import Mixer
from .mood import Mood
from .schedule import Schedule
from .spatial import LAYOUTS

#: Formats that hold more than two channels (FOA needs four).
_MULTICHANNEL = ("wav", "flac", "ogg")


def score_path_for(out_path: str | os.PathLike) -> Path:
    """Where the score of ``out_path`` goes: ``<out_path>.score.json``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".score.json")


class Soundscape:
    """A bed and event sources mixed in a layout (stereo, binaural, foa), steered by a live mood.

    Args:
        bed: a :class:`Bed`, an iterable of stereo blocks at ``sample_rate``, or None.
        events: event sources (at least one), names unique.
        mood: calm | neutral | energetic | a number in [0, 1].
        layout: stereo | binaural | foa.
        sample_rate: Hz.
        seed: the schedule's seed (times, positions, gains, event seeds).
        lookahead_s: events are rendered this far ahead by the worker(s).
        hrtf: binaural only: ``auto`` (installed ``.mhr``, else a spherical head), a path, or None.
    """

    def __init__(
        self,
        bed=None,
        events: Sequence = (),
        mood: Mood | str | float = "calm",
        layout: str = "stereo",
        sample_rate: int = 48000,
        seed: int = 0,
        block_size: int = 4096,
        lookahead_s: float = 2.0,
        workers: int = 1,
        hrtf: str | os.PathLike | None = "auto",
        bed_width: float = 0.3,
    ):
        if layout not in LAYOUTS:
            raise ParameterError(f"unknown layout {layout!r}; use one of {sorted(LAYOUTS)}")
        if not events:
            raise ParameterError("a soundscape needs at least one event source (--events RUN[:label,...])")
        self.mood = Mood.of(mood)
        self.bed, self.events = bed, list(events)
        self.sample_rate, self.layout = sample_rate, layout
        self.schedule = Schedule([e.source for e in self.events], self.mood, seed=seed)
        synths = {e.source.name: e for e in self.events}
        self.mixer = Mixer(
            _bed_blocks(bed),
            synths,
            self.schedule,
            sample_rate,
            layout=layout,
            block_size=block_size,
            lookahead_s=lookahead_s,
            workers=workers,
            live=True,
            hrtf=hrtf,
            bed_width=bed_width,
        )
        self.seed = seed
        self.mood_requests: list[dict] = [{"requested_at_s": 0.0, "energy": self.mood.energy}]

    # -- control ------------------------------------------------------------------------------
    def set_mood(self, mood: Mood | str | float) -> None:
        """Change the mood now, from any thread; events drawn from here on and the bed follow it."""
        mood = Mood.of(mood)
        self.mood = mood
        self.mood_requests.append({"requested_at_s": self.mixer.emitted / self.sample_rate, "energy": mood.energy})
        self.mixer.set_mood(mood)
        if hasattr(self.bed, "set_mood"):
            self.bed.set_mood(mood)

    def close(self) -> None:
        """Stop the event workers (a :class:`Bed` is closed by whoever opened it)."""
        self.mixer.close()

    def __enter__(self) -> Soundscape:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- output -------------------------------------------------------------------------------
    def blocks(self, live: bool = True) -> Iterator[np.ndarray]:
        """Endless ``(channels, block_size)`` float32 blocks. ``live``: never wait for an event's render
        (one not ready in time is skipped and listed in the score); ``live=False`` waits (files)."""
        self.mixer.live = live
        return self.mixer.blocks()

    @property
    def channels(self) -> int:
        return self.mixer.channels

    def render(self, minutes: float, out_path: str | os.PathLike, progress=None) -> dict[str, Path]:
        """Write ``minutes`` of the scape to ``out_path`` (wav, flac, ogg, mp3; format from the
        extension) and its score beside it; returns ``{"audio": ..., "score": ...}``.

        Every scheduled event is heard (rendering waits for the worker when it must).
        """
        import soundfile as sf

        out_path = Path(out_path)
        fmt = out_path.suffix.lstrip(".").lower()
        if fmt not in WRITE_FORMATS:
            raise AudioError(out_path, f"cannot write format {fmt!r}; use one of {sorted(WRITE_FORMATS)}")
        if self.channels > 2 and fmt not in _MULTICHANNEL:
            raise ParameterError(
                f"{out_path}: {fmt} holds at most 2 channels; write the {self.layout} layout as wav/flac/ogg"
            )
        if minutes <= 0:
            raise ParameterError(f"minutes must be > 0, got {minutes}")
        total = int(round(minutes * 60.0 * self.sample_rate))
        sf_format, subtype = WRITE_FORMATS[fmt]
        written = 0
        with atomic_path(out_path, suffix=f".{fmt}") as tmp:
            with sf.SoundFile(tmp, "w", self.sample_rate, self.channels, subtype=subtype, format=sf_format) as f:
                for block in self.blocks(live=False):
                    take = block[:, : total - written]
                    f.write(np.clip(take.T, -1.0, 1.0))
                    written += take.shape[1]
                    if progress is not None:
                        progress("rendering", written, total)
                    if written >= total:
                        break
        score = write_json(score_path_for(out_path), self.score(duration_s=written / self.sample_rate))
        return {"audio": out_path, "score": score}

    def score(self, duration_s: float | None = None) -> dict:
        """The JSON score: the mixer's (events, skipped, mood changes, limiter) plus sources, mood
        requests and the bed's joins; ``duration_s`` trims events to what a file holds."""
        out = self.mixer.score()
        if duration_s is not None:
            out["duration_s"] = duration_s
            out["events"] = [e for e in out["events"] if e["time_s"] < duration_s]
        out["seed"] = self.seed
        out["sources"] = [{"name": e.source.name, "labels": list(e.source.labels)} for e in self.events]
        out["mood_requests"] = list(self.mood_requests)
        if hasattr(self.bed, "score"):
            bed = self.bed.score()
            if duration_s is not None:
                bed["joins"] = [j for j in bed["joins"] if j["time_s"] < duration_s]
                bed["seam_pass_rate"] = float(np.mean([j["pass"] for j in bed["joins"]])) if bed["joins"] else None
            out["bed"] = bed
        return out


def _bed_blocks(bed) -> Iterable[np.ndarray]:
    if bed is None:
        return iter(())  # the mixer plays silence where the bed ends
    if hasattr(bed, "blocks"):
        return bed.blocks()
    return bed
