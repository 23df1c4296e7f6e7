import numpy as np
import pytest

from soundloom.streams.seams import seam_metrics, summarise

RATE = 22050


def tone(seconds, amp=0.5, f=440.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return amp * np.sin(2 * np.pi * f * t)


def test_clean_tone_passes_everywhere():
    m = seam_metrics(tone(1.0), np.array([5000, 10000, 15000]), RATE)
    assert m["pass"].all()
    assert np.all(m["level_jump_db"] < 0.2) and np.all(m["spectral_cosine"] > 0.99)


def test_click_is_detected():
    x = tone(1.0, 0.3)
    x[11025:] += 0.4  # a DC step: one huge sample-to-sample jump
    m = seam_metrics(x, np.array([11025, 5000]), RATE)
    assert m["click_ratio"][0] > 3 and not m["pass"][0]
    assert m["click_ratio"][1] < 1.5


def test_level_jump_is_measured():
    x = np.concatenate([tone(0.5, 0.5), tone(0.5, 0.25)])
    m = seam_metrics(x, np.array([len(x) // 2]), RATE)
    assert m["level_jump_db"][0] == pytest.approx(6.02, abs=0.3)


def test_spectral_change_lowers_cosine():
    x = np.concatenate([tone(0.5, 0.3, 220.0), tone(0.5, 0.3, 3520.0)])
    m = seam_metrics(x, np.array([len(x) // 2]), RATE)
    assert m["spectral_cosine"][0] < 0.3 and not m["pass"][0]
    s = summarise(m)
    assert s["n"] == 1 and s["pass_all"] == 0.0


def test_positions_near_edges_are_dropped():
    m = seam_metrics(tone(0.5), np.array([10, 5000, len(tone(0.5)) - 10]), RATE)
    assert list(m["positions"]) == [5000]


def test_seam_distance_is_zero_inside_a_steady_sound_and_large_across_a_change():
    """The same tone goes on: ~0 dB; a low tone then a high one: far apart; too near an end: NaN."""
    from soundloom.streams.seams import seam_distance_db

    steady = tone(1.0, 0.3, 330.0)
    changed = np.concatenate([tone(0.5, 0.3, 220.0), tone(0.5, 0.3, 3520.0)])
    d = seam_distance_db(np.concatenate([steady, changed]), np.array([RATE // 2, RATE + RATE // 2, 100]), RATE)
    assert d[0] < 0.5 and d[1] > 10.0 and np.isnan(d[2])
    noise = 0.1 * np.random.default_rng(0).standard_normal(RATE)
    louder = np.concatenate([noise[: RATE // 2], 2 * noise[RATE // 2 :]])  # every band 6 dB up
    assert seam_distance_db(louder, np.array([RATE // 2]), RATE)[0] == pytest.approx(6.02, abs=0.5)


def test_summary_gives_the_seam_distance_median_and_its_interval():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(3 * RATE)
    s = summarise(seam_metrics(x, rng.integers(RATE // 2, 5 * RATE // 2, size=30), RATE, distance=True))
    lo, hi = s["seam_distance_db_95"]
    assert lo <= s["median_seam_distance_db"] <= hi and hi < 3.0  # white noise: the same spectrum either side
    assert "median_seam_distance_db" not in summarise(seam_metrics(x, np.array([RATE]), RATE))
