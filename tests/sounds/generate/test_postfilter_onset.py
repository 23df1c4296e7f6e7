"""The fade-in a class's recordings start with: measured at calibration, given to the class's renders, so that a
one-shot whose first frame the model blurs louder does not start with a click (whose splatter is its floor)."""

import json

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError
from soundloom.core.floor import spectral_floor_db
from soundloom.core.spectral import features, features_to_magnitude, griffin_lim
from soundloom.sounds.generator import Generator
from soundloom.sounds.postfilter import (
    ALL,
    MAX_FADE_IN_S,
    POSTFILTER_FILE,
    PostFilter,
    calibrate_strength,
    fade_in,
    fit_quantile_postfilter,
    onset_seconds,
)
from tests.sounds.generate.test_postfilter_strength import HIGH, LOW, SPEC, SR

torch.set_num_threads(1)


def sweeps(n: int, seed: int, fade_s: float) -> np.ndarray:
    """``(n, SR // 2)`` rising tones whose first ``fade_s`` seconds swell in (sin²; 0: full level at sample 0)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    out = []
    for _ in range(n):
        f0 = rng.uniform(200, 400)
        wav = np.sin(2 * np.pi * np.cumsum(f0 * 2 ** (2 * t)) / SR + rng.uniform(0, 2 * np.pi))
        if fade_s > 0:
            wav = wav * np.sin(0.5 * np.pi * np.clip(t / fade_s, 0, 1)) ** 2
        out.append(0.5 * wav * np.exp(-2 * t))
    return np.stack(out).astype(np.float32)


def test_onsets_are_where_the_waveform_first_reaches_a_tenth_of_its_peak():
    swell, abrupt = sweeps(1, 0, 0.02)[0], sweeps(1, 0, 0.0)[0]
    got = onset_seconds([swell, abrupt, np.zeros(100)], SR)
    # sin²(pi/2 t / 20 ms) reaches 0.1 at about 4.1 ms; a tone at full level from its first samples within a cycle
    assert got[0] == pytest.approx(0.0041, abs=0.0006) and got[1] < 0.002 and got[2] == 0.0
    wav = np.ones((2, 50), np.float32)
    faded = fade_in(wav, [10, 0])
    assert faded[0, 0] < 0.03 and faded[0, 9] > 0.97 and (faded[0, 10:] == 1).all() and (faded[1] == 1).all()
    assert (wav == 1).all()  # a copy


def test_a_click_at_the_first_sample_is_the_floor_and_the_recordings_fade_removes_it():
    recorded = sweeps(8, 0, 0.02)
    clicked = sweeps(8, 0, 0.0)  # the same tones starting at full level: a step at sample 0
    floor = lambda wav: float(np.median(spectral_floor_db(list(wav), SR)))  # noqa: E731
    assert floor(clicked) - floor(recorded) > 10
    onset = float(np.median(onset_seconds(list(recorded), SR)))
    assert abs(floor(fade_in(clicked, [round(onset * SR)] * 8)) - floor(recorded)) < 3


def test_calibration_fits_each_class_its_recordings_fade_in(tmp_path):
    recorded = np.concatenate([sweeps(8, 0, 0.02), sweeps(8, 1, 0.0), sweeps(8, 2, 0.2)])
    labels = ["swell"] * 8 + ["pluck"] * 8 + ["slow"] * 8
    real = features(torch.from_numpy(recorded), SPEC)
    model = features(torch.from_numpy(np.concatenate([sweeps(8, 3, 0.0)] * 3)), SPEC)  # every class clicks
    post = fit_quantile_postfilter(real, labels, model, labels, "test", {ALL: 1.0})

    def render(db: torch.Tensor) -> np.ndarray:
        return griffin_lim(features_to_magnitude(db, SPEC), SPEC, n_iter=8, length=SR // 2).numpy()

    tuned = calibrate_strength(
        post, real, model, labels, render, SR, LOW, HIGH, per_class=8, recordings=lambda i: recorded[i]
    )
    fades = tuned.fade_in_s
    assert fades["swell"] == pytest.approx(0.0041, abs=0.001) and fades["pluck"] < 0.002
    assert fades["slow"] == MAX_FADE_IN_S  # a swell longer than the cap is the sound itself, not a click
    assert tuned.fade_in_for("nothing") == fades[ALL] and PostFilter({ALL: 1.0}).fade_in_for("swell") == 0.0
    # through the front end alone (no recordings) nothing is faded
    assert calibrate_strength(post, real, model, labels, render, SR, LOW, HIGH, per_class=8).fade_in_s is None
    tuned.save(tmp_path)
    assert PostFilter.load(tmp_path).fade_in_s == fades
    record = json.loads((tmp_path / POSTFILTER_FILE).read_text())
    record["fade_in_s"]["swell"] = -1.0
    (tmp_path / POSTFILTER_FILE).write_text(json.dumps(record))
    with pytest.raises(ModelFileError, match="fade-ins must be finite"):
        PostFilter.load(tmp_path)


def test_the_generator_fades_in_what_it_renders(prior_run):
    gen = Generator.from_run(prior_run, level="raw")
    plain = PostFilter({ALL: 1.0})
    gen.postfilter = plain
    before = gen.sample(2, temperature=1.0, seed=3)
    gen.postfilter = PostFilter({ALL: 1.0}, fade_in_s={ALL: 0.01})
    after = gen.sample(2, temperature=1.0, seed=3)
    n = round(0.01 * gen.spec.sample_rate)
    for a, b in zip(before, after):
        x, y = np.asarray(a.audio).ravel(), np.asarray(b.audio).ravel()
        assert np.abs(x[:4]).max() > 0 and np.abs(y[:4]).max() < 0.01 * np.abs(x[:4]).max() + 1e-9
        np.testing.assert_array_equal(x[n:], y[n:])


def test_the_evaluation_renders_its_reference_with_the_same_fade_in(prior_run):
    from soundloom.sounds.evaluation.judge import render_features

    gen = Generator.from_run(prior_run, level="raw")
    gen.postfilter = PostFilter({ALL: 1.0}, fade_in_s={ALL: 0.01})
    feat = gen.decode_many([gen.draw_latents(1, "low", 1.0, s)[0] for s in range(2)], ["low", "low"])
    plain = render_features(gen, feat, None).numpy()
    faded = render_features(gen, feat, None, labels=["x", "x"]).numpy()
    n = round(0.01 * gen.spec.sample_rate)
    assert np.abs(faded[:, :4]).max() < 0.01 * np.abs(plain[:, :4]).max()
    np.testing.assert_array_equal(plain[:, n:], faded[:, n:])
