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
