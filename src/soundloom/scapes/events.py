"""Event sources for a soundscape: generation runs (``RUN[:label,...]``) or plain synthesis functions.

Each source is a callable with the mixer's signature ``(label, seed, params) -> mono (samples,)``
at the scape's rate, plus :attr:`source`, its :class:`~soundloom.scapes.schedule.EventSource`.
The mixer calls it from its worker thread, ahead of time (``Mixer(lookahead_s=...)``), so the
stream never waits for the model.

``RUN[:item,...]``: each item is a label of the run (a fresh sample of that label, seeded by the
event's seed) or the path of an audio file (a *seed sound*: each event is a fresh variation of it,
``Generator.variation``). No items: every label of the run (or unlabelled samples). The mood sets
the sampling temperature (0.7 calm .. 1.0 energetic) and the variation amount (0.2 .. 0.5).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.convert import resample
from ..core.errors import ParameterError
from ..core.io import load_audio
from .schedule import EventSource

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


@dataclass(frozen=True)
class EventSpec:
    """A parsed ``RUN[:item,...]``: the run folder, labels to sample, seed sounds to vary."""

    run: Path
    labels: tuple[str, ...] = ()
    seed_sounds: tuple[Path, ...] = ()

    @classmethod
    def parse(cls, text: str) -> EventSpec:
        """``RUN``, ``RUN:label,label`` or ``RUN:label,seed.wav`` (a path item is a seed sound)."""
        text = text.strip()
        if not text:
            raise ParameterError("empty --events value; use RUN[:label,...]")
        run, items = text, ""
        if not Path(text).exists() and ":" in text:
            run, _, items = text.rpartition(":")
        labels, seeds = [], []
        for item in (i.strip() for i in items.split(",")):
            if not item:
                continue
            if Path(item).suffix.lower() in AUDIO_SUFFIXES:
                if not Path(item).is_file():
                    raise ParameterError(item, "seed sound not found")
                seeds.append(Path(item))
            else:
                labels.append(item)
        return cls(Path(run), tuple(labels), tuple(seeds))


def mood_temperature(energy: float) -> float:
    """Sampling temperature for a mood energy in [0, 1]: 0.7 (calm, typical sounds) to 1.0."""
    return 0.7 + 0.3 * float(np.clip(energy, 0.0, 1.0))


def mood_variation(energy: float) -> float:
    """Variation amount (latent noise scale) for a mood energy: 0.2 (calm) to 0.5."""
    return 0.2 + 0.3 * float(np.clip(energy, 0.0, 1.0))


class GeneratedEvents:
    """Events from a trained generation run: samples of labels, variations of seed sounds.

    Args:
        generator: a :class:`soundloom.sounds.generator.Generator`.
        labels: labels to sample (checked against the run's); empty with no ``seed_sounds``: all.
        seed_sounds: ``name -> (audio (samples,), sample_rate)`` to make variations of.
        sample_rate: the scape's rate (Hz); events are resampled to it.
        name: the source's name in the score.
        rate_scale: events per minute relative to the mood's rate.
    """

    def __init__(
        self,
        generator,
        labels: Sequence[str],
        seed_sounds: dict[str, tuple[np.ndarray, int]] | None,
        sample_rate: int,
        name: str,
        rate_scale: float = 1.0,
    ):
        self.generator, self.sample_rate = generator, sample_rate
        self.seed_sounds = dict(seed_sounds or {})
        known = list(generator.labels)
        for label in labels:
            if not known:
                raise ParameterError(f"events {name!r}: the run is not conditioned on labels; leave {label!r} out")
            if label not in known:
                raise ParameterError(f"events {name!r}: unknown label {label!r}; the run knows {known}")
        if not labels and not self.seed_sounds:
            labels = known or [""]
        clash = set(labels) & set(self.seed_sounds)
        if clash:
            raise ParameterError(f"events {name!r}: {sorted(clash)} is both a label and a seed sound name")
        self.labels = tuple(labels)
        self.source = EventSource(name, self.labels + tuple(self.seed_sounds), rate_scale)
        self._lock = threading.Lock()  # one model call at a time, whatever the mixer's workers

    @classmethod
    def from_spec(
        cls, spec: EventSpec | str, sample_rate: int, name: str | None = None, rate_scale: float = 1.0
    ) -> GeneratedEvents:
        """Load the run of ``spec`` (``RUN[:item,...]``) and read its seed sounds."""
        from ..sounds.generator import Generator

        spec = EventSpec.parse(spec) if isinstance(spec, str) else spec
        gen = Generator.from_run(spec.run)
        seeds = {}
        for path in spec.seed_sounds:
            wav, rate = load_audio(path, mono=True)
            seeds[path.stem] = (wav, rate)
        return cls(gen, spec.labels, seeds, sample_rate, name or spec.run.name, rate_scale)

    def __call__(self, label: str, seed: int, params: dict) -> np.ndarray:
        """One fresh event ``(samples,)`` at :attr:`sample_rate`: a sample of ``label`` or a variation."""
        energy = float(params.get("energy", 0.5))
        with self._lock:
            if label in self.seed_sounds:
                audio, rate = self.seed_sounds[label]
                sound = self.generator.variation(audio, rate, amount=mood_variation(energy), n=1, seed=seed)[0]
            else:
                sound = self.generator.sample(1, label=label or None, temperature=mood_temperature(energy), seed=seed)[
                    0
                ]
        return resample(np.asarray(sound.audio, dtype=np.float32), sound.sample_rate, self.sample_rate)


class SynthEvents:
    """Events from a function ``(label, seed, params, sample_rate=) -> mono`` (no model: demos, tests).

    The ambient one-shots of :mod:`soundloom.data.ambient` and the chimes of
    :mod:`soundloom.scapes.synthetic` plug in here.
    """

    def __init__(
        self,
        name: str,
        labels: Sequence[str],
        synth: Callable[..., np.ndarray],
        sample_rate: int,
        rate_scale: float = 1.0,
    ):
        self.source = EventSource(name, tuple(labels), rate_scale)
        self.sample_rate, self._synth = sample_rate, synth

    def __call__(self, label: str, seed: int, params: dict) -> np.ndarray:
        return np.asarray(self._synth(label, seed, params, sample_rate=self.sample_rate), dtype=np.float32)


def ambient_oneshot_events(
    sample_rate: int, name: str = "ambient", classes: Sequence[str] | None = None
) -> SynthEvents:
    """Built-in birds, chimes and drops (:mod:`soundloom.data.ambient`), each event a new seeded one-shot."""
    from ..data.ambient import AMBIENT_ONESHOT_CLASSES, make_ambient_oneshot

    def synth(label: str, seed: int, params: dict, sample_rate: int) -> np.ndarray:
        return make_ambient_oneshot(label, seed=seed, index=0, sample_rate=sample_rate)

    return SynthEvents(name, tuple(classes or AMBIENT_ONESHOT_CLASSES), synth, sample_rate)


def unique_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Source names from run folders: the folder name, suffixed ``-2``, ``-3`` ... when repeated."""
    out, seen = [], {}
    for p in paths:
        base = Path(p).name or "events"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out
