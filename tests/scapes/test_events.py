"""Event sources: RUN[:label,...], fresh samples of a label or variations of a seed sound, at the scape rate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundloom.core.errors import ParameterError
from soundloom.scapes.events import (
    EventSpec,
    GeneratedEvents,
    ambient_oneshot_events,
    mood_temperature,
    mood_variation,
    unique_names,
)


@dataclass
class FakeSound:
    audio: np.ndarray
    sample_rate: int


class FakeGenerator:
    """Stands in for soundloom.sounds.generator.Generator: records its calls, returns a tone per seed."""

    sample_rate = 8000

    def __init__(self, labels=("bird", "chime")):
        self.labels = list(labels)
        self.calls: list[tuple] = []

    def _tone(self, seed: int) -> FakeSound:
        t = np.arange(self.sample_rate) / self.sample_rate
        return FakeSound((0.5 * np.sin(2 * np.pi * (200 + seed % 1000) * t)).astype(np.float32), self.sample_rate)

    def sample(self, n, label=None, temperature=1.0, seed=None):
        self.calls.append(("sample", label, temperature, seed))
        return [self._tone(seed)]

    def variation(self, audio, sample_rate, amount=0.3, n=1, seed=None):
        self.calls.append(("variation", len(audio), sample_rate, amount, seed))
        return [self._tone(seed)]


def test_spec_parses_labels_and_seed_sounds(tmp_path):
    seed = tmp_path / "chime_seed.wav"
    sf.write(seed, np.zeros(800, np.float32), 8000)
    assert EventSpec.parse("runs/amb") == EventSpec(Path("runs/amb"))
    spec = EventSpec.parse(f"runs/amb:bird, chime,{seed}")
    assert str(spec.run) == "runs/amb" and spec.labels == ("bird", "chime") and spec.seed_sounds == (seed,)
    run_with_colon = tmp_path / "a:b"
    run_with_colon.mkdir()
    assert EventSpec.parse(str(run_with_colon)).run == run_with_colon  # an existing folder is the run, whole
    with pytest.raises(ParameterError, match="seed sound not found"):
        EventSpec.parse("runs/amb:missing.wav")
    with pytest.raises(ParameterError):
        EventSpec.parse("  ")


def test_labels_sample_the_run_at_the_moods_temperature_and_resample():
    gen = FakeGenerator()
    events = GeneratedEvents(gen, ["bird"], None, 16000, "amb")
    assert events.source.name == "amb" and events.source.labels == ("bird",)
    out = events("bird", 7, {"energy": 1.0})
    assert out.shape == (16000,) and out.dtype == np.float32  # 1 s at 8 kHz -> 16 kHz
    assert gen.calls == [("sample", "bird", mood_temperature(1.0), 7)]
    events("bird", 8, {"energy": 0.0})
    assert gen.calls[-1] == ("sample", "bird", 0.7, 8)
    assert not np.allclose(events("bird", 9, {})[:100], out[:100])  # each event a fresh sound


def test_seed_sounds_give_variations():
    gen = FakeGenerator()
    seed_audio = np.zeros(4000, np.float32)
    events = GeneratedEvents(gen, [], {"drip": (seed_audio, 4000)}, 8000, "amb")
    assert events.source.labels == ("drip",)
    events("drip", 3, {"energy": 0.0})
    assert gen.calls == [("variation", 4000, 4000, mood_variation(0.0), 3)]


def test_no_labels_means_every_label_of_the_run():
    assert GeneratedEvents(FakeGenerator(), [], None, 8000, "amb").source.labels == ("bird", "chime")
    assert GeneratedEvents(FakeGenerator(labels=()), [], None, 8000, "amb").source.labels == ("",)


def test_unknown_labels_are_parameter_errors():
    with pytest.raises(ParameterError, match="unknown label 'whale'"):
        GeneratedEvents(FakeGenerator(), ["whale"], None, 8000, "amb")
    with pytest.raises(ParameterError, match="not conditioned"):
        GeneratedEvents(FakeGenerator(labels=()), ["bird"], None, 8000, "amb")


def test_a_missing_run_is_a_model_file_error(tmp_path):
    from soundloom.core.errors import ModelFileError

    with pytest.raises(ModelFileError):
        GeneratedEvents.from_spec(str(tmp_path / "nothing"), 8000)


def test_built_in_ambient_events_and_names():
    events = ambient_oneshot_events(16000)
    assert set(events.source.labels) == {"bird", "chime", "drop"}
    a, b = events("bird", 1, {}), events("bird", 2, {})
    assert a.shape == (16000,) and not np.array_equal(a, b)
    assert unique_names(["runs/amb", "other/amb", "runs/x"]) == ["amb", "amb-2", "x"]
