"""The ``partials`` cue and the fusion's fitted weights: the notes sounding at the cut, not the timbre."""

import json

import numpy as np
import pytest
import torch

from soundloom.streams.transitions import build_scorer, load_scorer
from soundloom.streams.transitions.fusion import FusionScorer

from .conftest import RATE

TINY_C = {"width": 8, "dim": 4, "frames": 8}


def chord(freqs, seconds: float = 0.4, gain: float = 0.2, tilt: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A chord of harmonic tones (partials k * f with amplitude 1 / k, times (k * f / 1000) ** tilt) plus noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    wav = np.zeros_like(t)
    for f in freqs:
        for k in range(1, 6):
            wav += np.sin(2 * np.pi * k * f * t + k) / k * (k * f / 1000.0) ** tilt
    wav = gain * wav / np.abs(wav).max()
    wav += 1e-3 * np.random.default_rng(seed).standard_normal(len(t))
    return torch.tensor(wav, dtype=torch.float32)[None]


def test_partials_prefer_the_notes_that_go_on_whatever_their_level_and_eq():
    m = build_scorer("partials", sample_rate=RATE).eval()
    tail = chord((220.0, 277.2, 329.6))
    same_notes = chord((220.0, 277.2, 329.6), gain=0.02, tilt=1.0, seed=1)  # 20 dB down, brighter
    other_notes = chord((233.1, 293.7, 349.2), seed=2)  # a semitone up, same level and timbre
    s_same, s_other = float(m.score_pairs(tail, same_notes)), float(m.score_pairs(tail, other_notes))
    assert s_same > 0.8 and s_other < 0.5
    silence = torch.zeros(1, m.edge_samples)
    assert float(m.score_pairs(tail, silence)) == pytest.approx(0.0, abs=1e-6)  # no peaks, no score


def test_fusion_scores_are_the_weighted_parts_and_survive_a_round_trip(tmp_path):
    m = build_scorer("fusion", sample_rate=RATE, contrastive=TINY_C).eval()
    assert m.partials is not None
    m.set_weights(contrastive=0.5, features=0.3, partials=7.0)
    g = torch.Generator().manual_seed(0)
    t, h = 0.1 * torch.randn(3, m.edge_samples, generator=g), 0.1 * torch.randn(3, m.edge_samples, generator=g)
    parts = {n: getattr(m, n).score_pairs(t, h) for n in ("contrastive", "features", "partials")}
    want = 0.5 * parts["contrastive"] + 0.3 * parts["features"] + 7.0 * parts["partials"]
    assert torch.allclose(m.score_pairs(t, h), want, atol=1e-4)
    m.save(tmp_path / "r")
    back = load_scorer(tmp_path / "r")
    assert back.weights() == pytest.approx({"contrastive": 0.5, "features": 0.3, "partials": 7.0})
    assert torch.allclose(back.score_pairs(t, h), want, atol=1e-4)


def test_runs_saved_before_the_partials_cue_still_load(tmp_path):
    """An old fusion run (one features weight, no partials) loads as contrastive + weight x features."""
    m = build_scorer("fusion", sample_rate=RATE, contrastive=TINY_C).eval()
    old = FusionScorer(m.contrastive, m.features, weight=0.25)
    old.save(tmp_path / "old")
    cfg = json.loads((tmp_path / "old" / "config.json").read_text())
    assert "partials" not in cfg["config"]
    back = load_scorer(tmp_path / "old")
    assert back.partials is None and back.weights() == {"contrastive": 1.0, "features": 0.25}


def test_fusion_weights_are_fitted_on_the_given_songs(pool):
    """The fit ranks with all parts on the songs it is given and sets non-negative weights."""
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.pairs import SongAudio
    from soundloom.streams.transitions.training import fit_features, fit_fusion_weights

    m = build_scorer("fusion", sample_rate=RATE, contrastive=TINY_C).eval()
    with ChunkCatalog(pool, create=False) as c:
        audio = SongAudio(c.song_map(), c.sample_rate)
        ids = [s.id for s in c.songs()]
        fit_features(m.features, c, audio, ids, seed=0)
        out = fit_fusion_weights(m, c, audio, ids[:2], seed=0)
    w = out["fusion_weights"]
    assert set(w) == {"contrastive", "features", "partials"} and min(w.values()) >= 0.0
    assert m.weights() == pytest.approx(w)
    assert out["val_mrr_by_part"]["fusion"] >= max(out["val_mrr_by_part"][n] for n in w) - 0.1
