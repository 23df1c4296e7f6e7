"""The fixed feature space: rate independence, fit-only statistics, JSON round trip, known distances."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundloom.core.errors import AudioError, ParameterError
from soundloom.sounds.evaluation.fidelity import frechet_distance
from soundloom.sounds.evaluation.fixed_space import FixedFeatureSpace

SR = 8000


def tones(n: int, seed: int, f_lo: float = 200.0, f_hi: float = 400.0, sr: int = SR) -> list[np.ndarray]:
    """Decaying harmonic tones with random pitch in [f_lo, f_hi] Hz and random length, padded with silence."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(sr * rng.uniform(0.25, 0.45))
        t = np.arange(length) / sr
        f0 = rng.uniform(f_lo, f_hi)
        wav = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 5))
        wav = wav * np.exp(-t * rng.uniform(2, 6)) * 0.3
        out.append(np.pad(wav, (int(0.05 * sr), int(0.05 * sr))).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def space() -> FixedFeatureSpace:
    return FixedFeatureSpace().fit(tones(80, seed=0), SR)


def test_shape_names_and_standardisation(space):
    emb = space.transform(tones(80, seed=0), SR)
    assert emb.shape == (80, space.dim) == (80, len(space.feature_names()))
    assert np.isfinite(emb).all()
    assert np.abs(emb.mean(axis=0)).max() < 1e-6  # the fitting set is centred


def test_same_distribution_is_near_and_shifted_is_far(space):
    a = space.transform(tones(80, seed=1), SR)
    b = space.transform(tones(80, seed=2), SR)
    shifted = space.transform(tones(80, seed=3, f_lo=800.0, f_hi=1600.0), SR)
    same, far = frechet_distance(a, b), frechet_distance(a, shifted)
    assert far > 10 * same


def test_statistics_come_only_from_fit(space):
    mean, std = space.mean.copy(), space.std.copy()
    space.transform([np.random.default_rng(0).normal(size=SR).astype(np.float32)], SR)
    assert np.array_equal(space.mean, mean) and np.array_equal(space.std, std)
    with pytest.raises(ParameterError, match="not fitted"):
        FixedFeatureSpace().transform(tones(2, seed=0), SR)


def test_rate_independent_and_trim_invariant(space):
    """The same tones rendered at 16 kHz, or padded with silence, land nearest their 8 kHz selves."""
    at_8k = space.transform(tones(6, seed=5), SR)
    at_16k = space.transform(tones(6, seed=5, sr=16000), 16000)
    padded = space.transform([np.pad(c, (SR // 4, SR // 2)) for c in tones(6, seed=5)], SR)
    for other in (at_16k, padded):
        d = np.linalg.norm(other[:, None] - at_8k[None], axis=-1)
        assert (d.argmin(axis=1) == np.arange(6)).all()
        assert np.diag(d).max() < 0.15 * d.max()


def test_batching_does_not_change_a_clip(space):
    clips = tones(10, seed=6)
    together = space.transform(clips, SR)
    alone = np.concatenate([space.transform([c], SR) for c in clips])
    assert np.allclose(together, alone, atol=1e-3)


def test_json_round_trip(space):
    again = FixedFeatureSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    clips = tones(3, seed=7)
    assert np.allclose(again.transform(clips, SR), space.transform(clips, SR))
    bad = space.to_dict() | {"version": "fixed-space/0"}
    with pytest.raises(ParameterError, match="version"):
        FixedFeatureSpace.from_dict(bad)


def test_bad_clip_is_named():
    clip = np.ones(400, dtype=np.float32)
    clip[10] = np.nan
    with pytest.raises(AudioError, match="clip 1"):
        FixedFeatureSpace().raw_features([np.ones(400, dtype=np.float32), clip], SR)
