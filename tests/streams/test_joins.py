"""Joins on adversarial chunk pairs: no clicks, no crash, the crossfade on real audio only."""

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from soundloom.streams.catalog import Song
from soundloom.streams.joins import crossfade, crossfade_curves, plan_join
from soundloom.streams.render import RenderConfig, Segment, iter_render
from soundloom.streams.seams import CLICK_GATE, onset_anomaly, seam_metrics

RATE = 22050
CFG = RenderConfig(crossfade_ms=120.0, align_ms=5.0, match_loudness=False)


def write_song(path, wav) -> Song:
    sf.write(path, np.asarray(wav, np.float32), RATE, subtype="FLOAT")
    return Song(abs(hash(str(path))) % 10_000, str(path), path.name, len(wav) / RATE, RATE, None, -20.0)


def tone(seconds, f=440.0, amp=0.3, phase=0.0, dc=0.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return dc + amp * np.sin(2 * np.pi * f * t + phase)


def render(segs):
    blocks = list(iter_render(segs, RATE, CFG))
    cuts = np.cumsum([len(b) for b, _ in blocks])[:-1]
    return np.concatenate([b for b, _ in blocks]), cuts


def seg(song, start, end, i=0):
    return Segment(song, i, i, start, end, 0.0, 1.0, False)


@pytest.mark.parametrize(
    ("a_wav", "b_wav", "a_span", "b_span"),
    [
        # DC offsets of opposite sign, B the first chunk of its song, A the last of its own
        (tone(2.0, dc=0.4), tone(2.0, 330.0, dc=-0.4), (RATE, 2 * RATE), (0, RATE)),
        # the same tone phase-opposed, A's song ending at A's end, B's starting at B's start
        (tone(2.0), tone(2.0, phase=np.pi), (RATE, 2 * RATE), (0, RATE)),
        # loud and quiet, both mid-song
        (tone(3.0, 220.0, 0.6), tone(3.0, 660.0, 0.05), (RATE, 2 * RATE), (RATE, 2 * RATE)),
        # a song that starts at full level on its first sample after one that stops at full level
        (np.full(2 * RATE, 0.5), np.full(2 * RATE, -0.5), (RATE, 2 * RATE), (0, RATE)),
    ],
    ids=["dc-offsets", "phase-opposed", "levels", "full-scale-edges"],
)
def test_joins_do_not_click(tmp_path, a_wav, b_wav, a_span, b_span):
    a = write_song(tmp_path / "a.wav", a_wav)
    b = write_song(tmp_path / "b.wav", b_wav)
    out, cuts = render([seg(a, *a_span), seg(b, *b_span, 1), seg(a, *a_span, 2)])
    assert np.isfinite(out).all()
    m = seam_metrics(out, cuts, RATE, onsets=False)
    assert len(m["positions"]) == 2
    assert np.all(m["click_ratio"] <= CLICK_GATE), m["click_ratio"]


def test_hard_transient_at_the_cut_is_not_made_worse(tmp_path):
    """A step in A's song right after A's end fades out with A: the join clicks less than the song did."""
    wav = tone(2.0, amp=0.1)
    wav[RATE:] += 0.6  # a hard step where A ends
    a = write_song(tmp_path / "a.wav", wav)
    b = write_song(tmp_path / "b.wav", tone(2.0, 440.0, 0.1))
    out, cuts = render([seg(a, 0, RATE), seg(b, RATE // 2, RATE + RATE // 2, 1)])
    own = seam_metrics(wav, np.array([RATE]), RATE, onsets=False)["click_ratio"][0]
    joined = seam_metrics(out, cuts, RATE, onsets=False)["click_ratio"][0]
    assert own > 10 * CLICK_GATE and joined < own / 3


@pytest.mark.parametrize("length", [1, 10, 100, 2000])
def test_chunks_shorter_than_the_crossfade_render(tmp_path, length):
    """Chunks of 1..2000 samples (the crossfade is 2646), of 1-sample and silent songs: no crash, no click."""
    a = write_song(tmp_path / "a.wav", tone(1.0))
    short = write_song(tmp_path / "short.wav", tone(length / RATE, 550.0))
    silent = write_song(tmp_path / "silent.wav", np.zeros(RATE))
    one = write_song(tmp_path / "one.wav", np.array([0.01]))
    segs = [seg(a, 0, RATE // 2), seg(short, 0, length, 1), seg(one, 0, 1, 2), seg(silent, 0, RATE, 3)]
    segs += [seg(short, 0, length, 4), seg(a, RATE // 2, RATE, 5)]
    out, cuts = render(segs)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    total = RATE // 2 + 2 * length + 1 + RATE + RATE // 2
    fade = int(0.12 * RATE)
    # chunks shorter than the crossfade leave A's fade-out running on; overlaps only where neither side had room
    assert total - 5 * fade <= len(out) <= total + 3 * fade + 5 * int(0.03 * RATE)
    m = seam_metrics(out, cuts, RATE, onsets=False)
    assert np.all(m["click_ratio"] <= CLICK_GATE), m["click_ratio"]


@settings(max_examples=200, deadline=None)
@given(
    half=st.integers(0, 3000),
    lag=st.integers(0, 200),
    a_held=st.integers(0, 10_000),
    a_room=st.integers(0, 10_000),
    b_room=st.integers(0, 10_000),
)
def test_plan_join_stays_on_real_audio(half, lag, a_held, a_room, b_room):
    p = plan_join(half, lag, a_held, a_room, b_room)
    assert 0 <= p.a_after <= a_room and 0 <= p.b_before and p.b_before + p.lag <= b_room
    assert 0 <= p.overlap and p.length <= 2 * half and p.length <= a_held + p.a_after
    if a_room >= half and b_room >= half + lag and a_held >= half:
        assert (p.a_after, p.b_before, p.length) == (half, half, 2 * half)  # centred on the cut


def test_crossfade_curves_keep_power_for_the_correlation():
    out, inn = crossfade_curves(200, 0.0)
    assert np.allclose(out**2 + inn**2, 1.0, atol=1e-5)
    out, inn = crossfade_curves(200, 1.0)
    assert np.allclose(out + inn, 1.0, atol=1e-5)  # identical sides: no swell
    x = tone(0.1)
    mixed, _, shift = crossfade(x[:1000], np.concatenate([np.zeros(5), x, np.zeros(5)]).astype(np.float32), 5)
    assert shift == 0 and np.allclose(mixed, x[:1000], atol=1e-4)


def test_crossfade_of_any_length_never_fails():
    for n in (0, 1, 7):
        mixed, after, _ = crossfade(np.ones(n, np.float32), np.ones(3, np.float32), 4)
        assert len(mixed) == n and np.isfinite(mixed).all()


def test_onset_anomaly_finds_a_hit_in_steady_sound():
    rng = np.random.default_rng(0)
    x = 0.05 * rng.standard_normal(3 * RATE)
    hit = int(1.5 * RATE)
    x[hit : hit + 200] += 0.8 * np.exp(-np.arange(200) / 40.0) * np.sign(rng.standard_normal(200))
    z = onset_anomaly(x, np.array([hit, int(0.7 * RATE), int(2.3 * RATE)]), RATE)
    # the strongest of the +-50 ms frames of steady noise sits a few spreads above its median; a hit, far more
    assert z[0] > 15 and z[1] < 5 and z[2] < 5
