"""Fidelity measures on sets with known answers: identical, collapsed, shifted, noise-floored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundloom.core.convert import fade
from soundloom.core.errors import ParameterError
from soundloom.sounds.evaluation import fidelity as F
from soundloom.sounds.evaluation import metrics as M
from soundloom.sounds.evaluation.fixed_space import FixedFeatureSpace

SR = 8000


def labelled_tones(per_class: int, seed: int, noise_db: float | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Two classes of decaying harmonic tones ("low" ~220 Hz, "high" ~660 Hz), optional white noise
    ``noise_db`` below the tone's peak."""
    rng = np.random.default_rng(seed)
    clips, labels = [], []
    for label, base in (("low", 220.0), ("high", 660.0)):
        for _ in range(per_class):
            length = int(SR * rng.uniform(0.25, 0.4))
            t = np.arange(length) / SR
            f0 = base * 2 ** rng.uniform(-0.2, 0.2)
            wav = sum(rng.uniform(0.3, 1.0) / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 4))
            wav = fade(0.3 * wav * np.exp(-t * rng.uniform(2, 5)) / np.abs(wav).max(), SR // 100, SR // 100)
            if noise_db is not None:
                wav = wav + 0.3 * 10 ** (noise_db / 20) * rng.normal(size=length)
            clips.append(wav.astype(np.float32))
            labels.append(label)
    return clips, labels


@pytest.fixture(scope="module")
def real():
    clips, labels = labelled_tones(30, seed=0)
    space = FixedFeatureSpace().fit(clips, SR)
    return clips, labels, space


def test_fast_frechet_agrees_with_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(size=(200, 12)) + 0.5
    assert F.frechet_distance(a, b) == pytest.approx(M.frechet_distance(a, b), rel=1e-6)
    assert F.frechet_distance(a, a) < 1e-6


def test_identical_sets_have_precision_and_recall_one(real):
    clips, labels, space = real
    emb = space.transform(clips, SR)
    pr = F.precision_recall(emb, emb, k=3)
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0


def test_collapsed_set_keeps_precision_and_loses_recall_and_diversity(real):
    clips, labels, space = real
    emb = space.transform(clips, SR)
    # Every "generated" sound is a copy of one real clip of its class.
    first = {c: labels.index(c) for c in set(labels)}
    collapsed = np.stack([emb[first[c]] for c in labels])
    pr = F.precision_recall(emb, collapsed, k=3)
    assert pr["precision"] == 1.0
    assert pr["recall"] < 0.1
    div = F.diversity_by_class(emb, collapsed, labels, labels)
    assert all(v["ratio"] < 1e-6 for v in div.values())


def test_frechet_baseline_ratio_near_one_for_same_distribution_and_large_for_shifted(real):
    clips, labels, space = real
    emb = space.transform(clips, SR)
    other = space.transform(labelled_tones(30, seed=1)[0], SR)
    shifted = other + 3.0  # three real standard deviations in every dimension
    same = F.frechet_with_baseline(emb, other, splits=3)
    far = F.frechet_with_baseline(emb, shifted, splits=3)
    assert 0.5 < same["ratio"] < 2.0
    assert far["ratio"] > 5 * same["ratio"]


def test_grouped_baseline_keeps_groups_whole():
    rng = np.random.default_rng(0)
    part, rest = F._real_split(40, 10, np.repeat(np.arange(8), 5), rng)
    groups = np.repeat(np.arange(8), 5)
    assert len(part) == 10 and not set(groups[part]) & set(groups[rest])


def test_spectral_floor_sees_a_noise_floor():
    clean, _ = labelled_tones(5, seed=2)
    noisy, _ = labelled_tones(5, seed=2, noise_db=-40.0)
    floor_clean, floor_noisy = F.spectral_floor_db(clean, SR), F.spectral_floor_db(noisy, SR)
    assert np.median(floor_clean) < -80
    assert np.all(floor_noisy - floor_clean > 20)


def test_compare_sets_report(real):
    clips, labels, space = real
    gen, gen_labels = labelled_tones(30, seed=3, noise_db=-30.0)
    # the "high" class collapses onto one clip
    high = [i for i, c in enumerate(gen_labels) if c == "high"]
    for i in high:
        gen[i] = gen[high[0]]
    groups = [str(i // 5) for i in range(len(clips))]  # "speakers" of 5 clips, kept whole by the baselines
    result = F.compare_sets(
        clips, gen, labels, gen_labels, space, sample_rate=SR, groups_real=groups, splits=2, ndb_bins=5
    )
    assert result["frechet"]["grouped"]
    json.dumps(result)  # JSON-ready
    summary = result["summary"]
    assert summary["diversity_weakest"]["class"] == "high" and summary["diversity_weakest"]["ratio"] < 1e-6
    assert summary["diversity_within_class"] < 0.75  # the mean of ~1 ("low") and ~0 ("high")
    assert summary["recall_weakest"]["class"] == "high"
    assert summary["spectral_floor_weakest"]["delta_db"] > 20
    assert result["space"]["n_fit"] == len(clips)  # the given, fitted space is the one reported
    assert summary["missing_classes"] == [] and summary["unknown_classes"] == []


def test_the_floor_is_also_judged_against_the_recorded_clips(real):
    clips, labels, space = real
    through_front_end, _ = labelled_tones(len(clips) // 2, seed=2, noise_db=-40.0)  # a front end that adds a floor
    gen, gen_labels = labelled_tones(30, seed=3)
    result = F.compare_sets(
        through_front_end, gen, labels, gen_labels, space, sample_rate=SR, splits=1, ndb_bins=4, real_raw=clips
    )
    per_class = result["spectral_floor"]["per_class"]
    assert all(v["delta_db"] < -20 for v in per_class.values())  # cleaner than the resynthesised reference ...
    assert all(abs(v["delta_raw_db"]) < 10 for v in per_class.values())  # ... and about as clean as recorded
    assert result["summary"]["spectral_floor_raw_weakest"]["class"] in set(labels)
    with pytest.raises(ParameterError, match="real_raw has 2 clips"):
        F.compare_sets(clips, gen, labels, gen_labels, space, sample_rate=SR, splits=1, real_raw=clips[:2])


def test_a_floor_set_replaces_the_held_out_clips_for_the_floor(real):
    clips, labels, space = real
    gen, gen_labels = labelled_tones(30, seed=3)
    noisy, noisy_labels = labelled_tones(5, seed=6, noise_db=-30.0)  # a floor set judged alone: its own labels
    common = dict(sample_rate=SR, splits=1, ndb_bins=4)
    result = F.compare_sets(clips, gen, labels, gen_labels, space, **common, floor_set=(noisy, noisy, noisy_labels))
    floor = result["spectral_floor"]
    assert floor["n_real"] == 10 and all(v["n_real"] == 5 for v in floor["per_class"].values())
    assert all(v["delta_db"] < -20 and v["delta_raw_db"] < -20 for v in floor["per_class"].values())
    assert all(v["delta_frame_raw_db"] < -10 for v in floor["per_class"].values())  # inside the frames too
    without_recordings = F.compare_sets(
        clips, gen, labels, gen_labels, space, **common, floor_set=(noisy, None, noisy_labels)
    )
    assert "delta_raw_db" not in without_recordings["spectral_floor"]["per_class"]["low"]
    with pytest.raises(ParameterError, match="differ in number"):
        F.compare_sets(clips, gen, labels, gen_labels, space, **common, floor_set=(noisy, None, ["low"]))


def test_compare_sets_fits_an_unfitted_space_on_real_only():
    clips, labels = labelled_tones(10, seed=4)
    gen, gen_labels = labelled_tones(10, seed=5, noise_db=-20.0)
    space = FixedFeatureSpace()
    F.compare_sets(clips, gen, labels, gen_labels, space, sample_rate=SR, splits=1, ndb_bins=4)
    refit = FixedFeatureSpace().fit(clips, SR)
    assert np.allclose(space.mean, refit.mean) and np.allclose(space.std, refit.std)


def test_mismatched_labels_are_refused(real):
    clips, labels, space = real
    with pytest.raises(ParameterError, match="labels"):
        F.compare_sets(clips, clips, labels[:-1], labels, space, sample_rate=SR)
