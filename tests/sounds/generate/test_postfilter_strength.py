"""The post-filter's per-class strength: 1 renders as fitted, larger cleans more, and the calibration at export
chooses each class's strength from the floor its rendered output has against real items through the same front
end (more for a class the fitted filter leaves noisy, less for one it over-cleans)."""

import json
from functools import partial

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError, ParameterError
from soundloom.core.floor import spectral_floor_db
from soundloom.core.spectral import SpectrogramConfig, features, features_to_magnitude, griffin_lim
from soundloom.sounds.postfilter import (
    ALL,
    CALIBRATION_QUANTILES,
    POSTFILTER_FILE,
    PostFilter,
    _balanced,
    calibrate_strength,
    fit_quantile_postfilter,
)
from tests.sounds.generate.test_postfilter import partials, smear

torch.set_num_threads(1)
SR = 8000
SPEC = SpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=64, kind="db")
LOW, HIGH = torch.full((129,), -100.0), torch.full((129,), 20.0)


def render(db: torch.Tensor, n_iter: int = 8) -> np.ndarray:
    """dB spectra ``(B, 129, frames)`` of :data:`SPEC` -> half-second waveforms (Griffin-Lim of ``n_iter``)."""
    return griffin_lim(features_to_magnitude(db, SPEC), SPEC, n_iter=n_iter, length=SR // 2).numpy()


def test_strength_one_is_the_fitted_filter_and_more_cleans_more():
    real = partials(8, seed=0)
    labels = ["bell"] * 8
    post = fit_quantile_postfilter(real, labels, smear(real), labels, "test", {ALL: 1.3, "bell": 1.3})
    low, high = torch.full((48,), -300.0), torch.full((48,), 50.0)
    blurred = smear(partials(4, seed=1))
    fitted = post.apply(blurred, ["bell"] * 4, low, high)
    same = PostFilter(post.ratio, post.info, post.quantiles, {ALL: 1.0, "bell": 1.0})
    np.testing.assert_allclose(same.apply(blurred, ["bell"] * 4, low, high), fitted, atol=1e-4)
    off = PostFilter(post.ratio, post.info, post.quantiles, {ALL: 1.0, "bell": 0.0})
    np.testing.assert_allclose(off.apply(blurred, ["bell"] * 4, low, high), blurred, atol=1e-4)  # 0: no filter
    strong = PostFilter(post.ratio, post.info, post.quantiles, {ALL: 1.0, "bell": 2.0})
    assert float(strong.apply(blurred, ["bell"] * 4, low, high).min()) < float(fitted.min()) - 5.0
    assert strong.strength_for("kick") == 1.0 and post.strength_for("bell") == 1.0  # unknown class, no table


def test_strengths_round_trip_and_bad_ones_are_refused(tmp_path):
    post = PostFilter({ALL: 1.2, "a": 1.5}, {"source": "test"}, None, {ALL: 1.0, "a": 1.7})
    post.save(tmp_path)
    assert PostFilter.load(tmp_path).strength == {ALL: 1.0, "a": 1.7}
    record = json.loads((tmp_path / POSTFILTER_FILE).read_text())
    record["strength"]["a"] = float("nan")
    (tmp_path / POSTFILTER_FILE).write_text(json.dumps(record))
    with pytest.raises(ModelFileError, match="strengths must be finite"):
        PostFilter.load(tmp_path)


def test_the_strength_matches_the_clip_average_first_then_the_frames():
    grid = (0.0, 1.0, 2.0)
    assert _balanced(grid, [([-40.0, -60.0, -80.0], -50.0)]) == pytest.approx(0.5)
    assert _balanced(grid, [([-40.0, -60.0, -80.0], -50.0)], slack_db=0.0) == pytest.approx(0.5)
    assert _balanced(grid, [([-40.0, -60.0, -80.0], -30.0)]) == 0.0  # cleaner than real already unfiltered
    assert _balanced(grid, [([-40.0, -60.0, -80.0], -95.0)]) == 2.0  # never reached: the nearest
    assert _balanced(grid, [([-50.0, -55.0, -52.0], -60.0)]) == 1.0  # a stronger filter that leaks: the nearest
    # the clip average wants 0.5, the frames 1.5: the clip average decides, the frames choose within its slack
    # (1 dB = 0.05 of strength on a 20 dB/strength curve), so the strength moves toward 1.5 by the slack alone
    both = [([-40.0, -60.0, -80.0], -50.0), ([-20.0, -30.0, -40.0], -35.0)]
    assert _balanced(grid, both, slack_db=0.0) == pytest.approx(0.5)
    assert 0.5 < _balanced(grid, both) <= 0.55
    # a frame floor no strength reaches (about 40 dB off everywhere) never drags the clip average off its target;
    # a clip average that is flat within the slack leaves the choice to the frames
    stuck = [([-20.0, -30.0, -40.0], -30.0), ([-40.5, -40.0, -39.8], -80.0)]
    assert _balanced(grid, stuck) == pytest.approx(1.0, abs=0.11)  # the slack: 1 dB on a 10 dB/strength curve
    flat = [([-30.2, -30.0, -29.9], -30.0), ([-20.0, -30.0, -40.0], -40.0)]
    assert _balanced(grid, flat) == pytest.approx(2.0)


def tones(n: int, seed: int, noise_db: float | None) -> np.ndarray:
    """``(n, SR // 2)`` decaying two-partial tones, optionally over white noise ``noise_db`` below the peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    out = []
    for _ in range(n):
        f = rng.uniform(300, 900)
        wav = (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * 2.7 * f * t)) * np.exp(-3 * t)
        if noise_db is not None:
            wav = wav + 10 ** (noise_db / 20) * rng.normal(size=len(t))
        out.append(0.5 * wav / np.abs(wav).max())
    return np.stack(out).astype(np.float32)


def test_calibration_matches_the_rendered_floor_per_class():
    recorded = np.concatenate([tones(12, s, None) for s in (0, 1)])
    real = features(torch.from_numpy(recorded), SPEC)
    noisy = features(torch.from_numpy(tones(12, 2, -30.0)), SPEC)  # "a": the model is noisier than real
    clean = features(torch.from_numpy(tones(12, 3, None)), SPEC).clamp_min(-100.0)  # "b": about as real
    labels = ["a"] * 12 + ["b"] * 12
    model = torch.cat([noisy, clean])
    post = fit_quantile_postfilter(real, labels, model, labels, "test", {ALL: 1.0, "a": 1.0, "b": 1.0})

    tuned = calibrate_strength(post, real, model, labels, render, SR, LOW, HIGH, per_class=12)
    assert set(tuned.strength) == {ALL, "a", "b"} and tuned.info["calibration"]["target"] == "front end"
    record = tuned.info["calibration"]["per_class"]
    assert record["a"]["items"] == 12 and record["a"]["floors_db"][0][0] > record["a"]["real_db"][0] + 10
    assert tuned.strength["a"] > 1.0
    # "b" needs no filter: its floor is nearest the real one unfiltered (stronger filters leak through inversion)
    assert tuned.strength["b"] < 0.5
    # the calibrated filter brings the noisy class's rendered floor near real, from far above it
    floor = lambda wav: np.median(spectral_floor_db(list(wav), SR, CALIBRATION_QUANTILES).mean(1))  # noqa: E731
    target = floor(render(real[:12]))
    before = floor(render(noisy))
    after = floor(render(tuned.apply(noisy.double(), ["a"] * 12, LOW, HIGH).float()))
    assert before - target > 10 and abs(after - target) < 0.5 * (before - target)
    # against the recordings: their floor is the target, read once for every item picked
    asked = []
    by_ear = calibrate_strength(
        post,
        real,
        model,
        labels,
        render,
        SR,
        LOW,
        HIGH,
        per_class=12,
        recordings=lambda i: asked.append(i) or recorded[i],
    )
    assert by_ear.info["calibration"]["target"] == "recorded" and len(asked) == 1 and len(asked[0]) == 24
    assert by_ear.info["calibration"]["per_class"]["a"]["real_db"][0] == pytest.approx(floor(recorded[:12]), abs=0.01)
    unreadable = calibrate_strength(
        post, real, model, labels, render, SR, LOW, HIGH, per_class=12, recordings=lambda i: None
    )
    assert unreadable.strength == tuned.strength and unreadable.info["calibration"]["target"] == "front end"
    with pytest.raises(ParameterError, match="increasing"):
        calibrate_strength(post, real, model, labels, render, SR, LOW, HIGH, strengths=(1.0, 0.5))


def test_calibration_takes_more_of_the_models_items_than_real_ones():
    recorded = np.concatenate([tones(12, s, None) for s in (0, 1)])
    real = features(torch.from_numpy(recorded), SPEC)
    labels = ["a"] * 12 + ["b"] * 12
    # three draws an item for "a" (noisier than real), one for "b", in the order export makes them
    model = torch.cat([features(torch.from_numpy(tones(36, 2, -30.0)), SPEC), real[12:].clamp_min(-100.0)])
    model_labels = ["a"] * 36 + ["b"] * 12
    post = fit_quantile_postfilter(real, labels, model, model_labels, "test", {ALL: 1.0, "a": 1.0, "b": 1.0})

    args = (post, real, model, labels, partial(render, n_iter=4), SR, LOW, HIGH)
    tuned = calibrate_strength(*args, per_class=12, model_labels=model_labels, draws_per_class=30)
    record = tuned.info["calibration"]["per_class"]
    assert (record["a"]["items"], record["a"]["draws"]) == (12, 30)
    assert (record["b"]["items"], record["b"]["draws"]) == (12, 12)  # all the class has
    assert tuned.strength["a"] > 1.0
    # "b" is the real items' own features: every strength renders its floor (the fitted map is the identity)
    assert np.ptp(np.array(record["b"]["floors_db"])[:, 0]) < 1.0
    with pytest.raises(ParameterError, match="one label per"):
        calibrate_strength(*args, per_class=12, model_labels=model_labels[:-1])


def test_small_classes_get_more_draws_an_item():
    from soundloom.sounds.postfilter import CALIBRATION_DRAWS
    from soundloom.sounds.training.export import MAX_DRAWS_PER_ITEM, draws_for

    assert draws_for(np.repeat(np.arange(3), 500)) == 1  # every class has CALIBRATION_DRAWS items already
    small = np.repeat(np.arange(3), [500, 500, CALIBRATION_DRAWS // 3])
    assert draws_for(small) == 3  # the smallest class sets it
    assert draws_for(np.array([0, 0, 1, -1])) == MAX_DRAWS_PER_ITEM  # capped
    assert draws_for(np.full(10, -1)) == MAX_DRAWS_PER_ITEM  # unlabelled: the whole set is one class of 10
