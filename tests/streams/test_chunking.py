import numpy as np
import pytest

from soundloom.core.errors import ParameterError
from soundloom.streams.chunking import ChunkConfig, chunk_fixed, chunk_silence, chunk_song

from .conftest import RATE, click_track, make_song


def test_fixed_lengths_cover_song():
    bounds = chunk_fixed(11 * RATE + 100, RATE, 3.0)
    assert [e - s for s, e in bounds[:3]] == [3 * RATE] * 3
    assert bounds[0][0] == 0 and bounds[-1][1] == 11 * RATE + 100 and len(bounds) == 4
    assert all(b[0] == a[1] for a, b in zip(bounds[:-1], bounds[1:]))


def test_fixed_short_tail_merges():
    bounds = chunk_fixed(int(3.2 * RATE), RATE, 1.0)
    assert len(bounds) == 3 and bounds[-1][1] == int(3.2 * RATE)


def test_silence_cuts_inside_known_gap():
    a = make_song(2.0, 120, (220.0,), seed=0)
    gap = np.zeros(int(0.6 * RATE), np.float32)
    wav = np.concatenate([a, gap, a])
    bounds = chunk_silence(wav, RATE, silence_db=-40, min_silence_ms=300, keep_silence_ms=100)
    assert len(bounds) == 2
    gap_start, gap_end = len(a), len(a) + len(gap)
    assert abs(bounds[0][1] - (gap_start + int(0.1 * RATE))) < 0.02 * RATE
    assert abs(bounds[1][0] - (gap_end - int(0.1 * RATE))) < 0.02 * RATE


def test_silence_short_gap_does_not_cut():
    a = make_song(2.0, 120, (220.0,), seed=0)
    wav = np.concatenate([a, np.zeros(int(0.1 * RATE), np.float32), a])
    assert len(chunk_silence(wav, RATE, -40, 300, 100)) == 1


def test_beats_joins_fall_on_clicks():
    wav, clicks = click_track(12.0, 120.0)
    tempo, bounds = chunk_song(wav, RATE, ChunkConfig(method="beats", beats=4, min_chunk_s=0.1))
    assert tempo == pytest.approx(120.0, rel=0.05)
    cuts = np.array([s for s, _ in bounds[1:]])
    assert len(cuts) >= 3
    err = np.min(np.abs(cuts[:, None] - clicks[None, :]), axis=1)
    assert np.all(err < 0.015 * RATE), err / RATE
    beat = RATE * 0.5
    assert np.allclose(np.diff(cuts), 4 * beat, atol=0.03 * RATE)


def test_beats_with_a_lead_cut_just_before_the_clicks():
    """--lead-ms: each cut falls that long before a click, so the hit starts just after the chunk does."""
    wav, clicks = click_track(12.0, 120.0)
    _, bounds = chunk_song(wav, RATE, ChunkConfig(method="beats", beats=4, min_chunk_s=0.1, lead_ms=80.0))
    cuts = np.array([s for s, _ in bounds[1:]])
    ahead = clicks[None, :] - cuts[:, None]  # samples from each cut to each click
    nearest = np.min(np.where(ahead >= 0, ahead, 10 * RATE), axis=1)
    assert len(cuts) >= 3 and np.all(np.abs(nearest - 0.08 * RATE) < 0.015 * RATE), nearest / RATE
    with pytest.raises(ParameterError, match="lead before beats"):
        ChunkConfig(method="beats", lead_ms=-5.0)


def test_bad_method_is_named():
    with pytest.raises(ValueError, match="chunk method"):
        ChunkConfig(method="bars")


@pytest.mark.parametrize("method", ["fixed", "silence"])
@pytest.mark.parametrize("n", [1, 100, int(0.09 * RATE)])
def test_no_chunk_shorter_than_the_floor(method, n):
    # a 1-sample song used to become one 1-sample chunk, which no renderer can crossfade
    wav = make_song(1.0, 120, (220.0,), seed=0)[:n]
    assert chunk_song(wav, RATE, ChunkConfig(method=method, seconds=1.0, min_chunk_s=0.0))[1] == []


def test_non_finite_chunk_options_are_refused():
    with pytest.raises(ValueError, match="min_chunk_s"):
        ChunkConfig(min_chunk_s=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        ChunkConfig(seconds=float("inf"))
