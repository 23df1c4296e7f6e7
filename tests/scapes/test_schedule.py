"""Schedule: seeded Poisson events per source, minimum spacing, live mood changes."""

import threading

import numpy as np
import pytest

from soundloom.core.errors import ParameterError
from soundloom.scapes.mood import Mood
from soundloom.scapes.schedule import EventSource, Schedule

SOURCES = [EventSource("chimes", ("low", "mid", "high")), EventSource("drops", ("small", "large"))]


def test_same_seed_same_events_other_seed_other_events():
    a = Schedule(SOURCES, "neutral", seed=3).until(300.0)
    b = Schedule(SOURCES, "neutral", seed=3).until(300.0)
    c = Schedule(SOURCES, "neutral", seed=4).until(300.0)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]
    assert [e.time_s for e in a] != [e.time_s for e in c]


def test_rate_follows_the_mood_per_source():
    mood = Mood.of("neutral")
    hours = 2.0
    events = Schedule(SOURCES, mood, seed=1).until(hours * 3600)
    expected = mood.event_rate_per_min * 60 * hours * len(SOURCES)
    assert abs(len(events) - expected) < 4 * np.sqrt(expected)
    for src in SOURCES:
        n = sum(e.source == src.name for e in events)
        assert abs(n - expected / 2) < 4 * np.sqrt(expected / 2)


def test_rate_scale_weights_a_source():
    sources = [EventSource("often", ("a",), rate_scale=3.0), EventSource("rare", ("b",))]
    events = Schedule(sources, "calm", seed=2).until(3 * 3600)
    often = sum(e.source == "often" for e in events)
    assert 2.4 < often / (len(events) - often) < 3.6


def test_no_two_events_closer_than_min_spacing():
    sources = [EventSource(f"s{i}", ("x",)) for i in range(6)]  # crowded on purpose
    events = Schedule(sources, "energetic", seed=5).until(1800.0)
    gaps = np.diff([e.time_s for e in events])
    assert np.all(gaps >= Mood.of("energetic").min_spacing_s - 1e-9)
    assert np.all(gaps >= 0)


def test_events_stay_within_the_mood_ranges():
    mood = Mood.of("calm")
    for e in Schedule(SOURCES, mood, seed=6).until(1800.0):
        p = e.position
        assert abs(p.azimuth_deg) <= mood.azimuth_spread_deg
        assert mood.elevation_range_deg[0] <= p.elevation_deg <= mood.elevation_range_deg[1]
        assert mood.distance_range_m[0] <= p.distance_m <= mood.distance_range_m[1]
        assert abs(p.drift_deg_per_s) <= mood.drift_deg_per_s
        assert mood.gain_db_range[0] <= e.gain_db <= mood.gain_db_range[1]
        assert e.label in dict((s.name, s.labels) for s in SOURCES)[e.source]


def _count_in(events, lo, hi):
    return sum(lo <= e.time_s < hi for e in events)


def test_change_to_energetic_raises_the_rate_within_3_s():
    """Measured from event timestamps over 200 seeded runs: events in the 3 s after the change."""
    change, window, runs = 120.0, 3.0, 200
    changed, steady = 0, 0
    for seed in range(runs):
        s = Schedule(SOURCES, "calm", seed=seed)
        before = s.until(change)
        s.set_mood("energetic", at_s=change)
        after = s.until(change + window)
        assert all(e.time_s >= change for e in after) and all(e.time_s < change for e in before)
        changed += len(after)
        steady += _count_in(Schedule(SOURCES, "calm", seed=seed).until(change + window), change, change + window)
    calm_expected = Mood.of("calm").event_rate_per_min * len(SOURCES) * window / 60 * runs
    energetic_expected = Mood.of("energetic").event_rate_per_min * len(SOURCES) * window / 60 * runs
    assert changed >= 2 * max(steady, calm_expected)
    assert changed >= 0.7 * energetic_expected  # min spacing of the old mood would have cut this


def test_change_back_to_calm_lowers_the_rate():
    s = Schedule(SOURCES, "energetic", seed=9)
    s.until(600.0)
    s.set_mood("calm", at_s=600.0)
    later = s.until(1800.0)
    rate = len(later) / 20.0
    assert rate == pytest.approx(Mood.of("calm").event_rate_per_min * len(SOURCES), rel=0.35)
    assert all(e.min_spacing_s == Mood.of("calm").min_spacing_s for e in later)
    assert [c["at_s"] for c in s.mood_changes] == [0.0, 600.0]


def test_mood_can_change_from_another_thread():
    s = Schedule(SOURCES, "calm", seed=1)
    done = threading.Event()

    def change():
        s.set_mood(0.8, at_s=0.0)
        done.set()

    threading.Thread(target=change).start()
    assert done.wait(timeout=5.0)
    assert s.mood.energy == 0.8
    assert len(s.until(60.0)) > 0


@pytest.mark.parametrize(
    "sources",
    [[], [EventSource("a", ("x",)), EventSource("a", ("y",))]],
)
def test_bad_source_lists_raise(sources):
    with pytest.raises(ParameterError):
        Schedule(sources)


def test_bad_sources_raise():
    with pytest.raises(ParameterError):
        EventSource("empty", ())
    with pytest.raises(ParameterError):
        EventSource("zero", ("x",), rate_scale=0.0)
