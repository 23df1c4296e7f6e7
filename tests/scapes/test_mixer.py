"""Mixer: events at their times in every layout, a centred FOA bed, skipping not waiting, the score."""

import json
import threading
from functools import partial

import numpy as np
import pytest

from soundloom.core.errors import AudioError, ParameterError
from soundloom.core.levels import true_peak_db
from soundloom.scapes.mixer import Mixer
from soundloom.scapes.schedule import EventSource, Schedule
from soundloom.scapes.synthetic import chime, synthetic_bed

SR = 16000
SOURCES = [EventSource("chimes", ("low", "mid")), EventSource("drops", ("small",))]


def silent_bed(block: int = 1000):
    while True:
        yield np.zeros((2, block), np.float32)


def click(label, seed, params):
    x = np.zeros(400, np.float32)
    x[0] = 1.0
    return x


def test_events_start_at_their_scheduled_samples():
    schedule = Schedule(SOURCES, "energetic", seed=2)
    with Mixer(silent_bed(), click, schedule, SR, block_size=512, live=False) as m:
        out = m.render(60.0)
        score = m.score()
    assert len(score["events"]) >= 5
    for e in score["events"]:
        at = int(round(e["time_s"] * SR))
        assert np.abs(out[:, at]).max() > 0.01, e  # the click's first sample lands on its time
        assert np.abs(out[:, at - 100 : at]).max() == 0.0, e
    assert json.loads(json.dumps(score))["layout"] == "stereo"


@pytest.mark.parametrize("layout, channels", [("stereo", 2), ("binaural", 2), ("foa", 4)])
def test_every_layout_renders_blocks_under_the_ceiling(layout, channels):
    schedule = Schedule(SOURCES, "energetic", seed=3)
    events = partial(chime, sample_rate=SR)
    bed = synthetic_bed(SR, loudness_lufs=-14.0)  # peaks at -3 dBFS, +4 dB of bed gain: over the ceiling
    with Mixer(bed, events, schedule, SR, layout=layout, live=False, bed_gain_db=4.0) as m:
        blocks = [b for _, b in zip(range(40), m.blocks())]
        assert m.score()["renderer"] == m.renderer.method
        assert m.score()["limiter"]["reduced_samples"] > 0  # the bed is hot enough to need the limiter
    assert all(b.shape == (channels, 4096) and b.dtype == np.float32 for b in blocks)
    out = np.concatenate(blocks, axis=1)
    assert true_peak_db(out, SR) <= -1.0


def test_foa_bed_stays_centred():
    t = np.arange(SR) / SR
    bed = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32) * 0.3
    schedule = Schedule(SOURCES, "calm", seed=0, start_s=1e6)  # no events in the first hour
    with Mixer(iter([bed]), click, schedule, SR, layout="foa", bed_width=0.25, live=False) as m:
        out = m.render(0.9)
    np.testing.assert_allclose(out[0], 0.5 * (bed[0] + bed[1])[: out.shape[1]], atol=1e-6)
    np.testing.assert_allclose(out[1], 0.125 * (bed[0] - bed[1])[: out.shape[1]], atol=1e-6)
    assert np.abs(out[2]).max() == 0.0 and np.abs(out[3]).max() == 0.0


def test_a_slow_event_source_is_skipped_and_counted_never_waited_for():
    release = threading.Event()
    started = threading.Event()

    def stuck(label, seed, params):
        started.set()
        release.wait(timeout=30.0)
        return click(label, seed, params)

    schedule = Schedule(SOURCES, "energetic", seed=1)
    m = Mixer(silent_bed(), stuck, schedule, SR, block_size=1024, live=True)
    out = m.render(60.0)  # returns although every render is stuck
    assert started.is_set()
    score = m.score()
    assert len(score["skipped"]) >= 5 and score["events"] == []
    assert np.abs(out).max() == 0.0
    release.set()
    m.close()


def test_offline_waits_for_every_event_and_is_reproducible():
    def render():
        with Mixer(
            silent_bed(), partial(chime, sample_rate=SR), Schedule(SOURCES, "neutral", seed=7), SR, live=False
        ) as m:
            return m.render(40.0), m.score()

    (a, score_a), (b, score_b) = render(), render()
    np.testing.assert_array_equal(a, b)
    assert score_a["events"] == score_b["events"] and score_a["skipped"] == []


def test_mood_change_reaches_the_score(tmp_path):
    schedule = Schedule(SOURCES, "calm", seed=4)
    with Mixer(silent_bed(), click, schedule, SR, live=False, lookahead_s=1.0) as m:
        m.render(60.0)
        m.set_mood("energetic")
        blocks = m.blocks()
        for _ in range(int(120 * SR / m.block_size)):
            next(blocks)
        path = m.write_score(tmp_path / "score.json")
    score = json.loads(path.read_text())
    times = np.array([e["time_s"] for e in score["events"]])
    assert [round(c["mood"]["energy"], 2) for c in score["mood_changes"]] == [0.0, 1.0]
    assert np.sum(times >= 62.0) > 3 * np.sum(times < 60.0)  # 4x the rate for 2x the time
    keys = {"time_s", "source", "label", "seed", "position", "gain_db"}
    assert all(keys <= set(e) for e in score["events"])


def test_bad_inputs_raise():
    schedule = Schedule(SOURCES, "calm", seed=0)
    with pytest.raises(ParameterError):
        Mixer(silent_bed(), click, schedule, SR, layout="quad")
    with Mixer(iter([np.zeros((1, 100))]), click, schedule, SR) as m:
        with pytest.raises(AudioError, match="stereo"):
            m.render(1.0)


def test_a_failing_event_source_raises_instead_of_vanishing():
    def broken(label, seed, params):
        return np.full(10, np.nan, np.float32)

    with Mixer(silent_bed(), broken, Schedule(SOURCES, "energetic", seed=0), SR, live=False) as m:
        with pytest.raises(AudioError, match="non-finite"):
            m.render(60.0)


def test_a_bed_that_ends_falls_silent_and_odd_block_sizes_are_reblocked():
    rng = np.random.default_rng(0)
    bed = [(0.1 * rng.standard_normal((2, n))).astype(np.float32) for n in (700, 3000, 12300)]  # 1 s in all
    schedule = Schedule(SOURCES, "calm", seed=0, start_s=1e6)
    with Mixer(iter(bed), click, schedule, SR, block_size=1024, live=False) as m:
        out = m.render(3.0)
    np.testing.assert_allclose(out[:, :SR], np.concatenate(bed, axis=1), atol=1e-6)
    assert np.abs(out[:, SR:]).max() == 0.0
