"""The post-filter's row gains: a per-class gain per row that brings the model's long-term spectrum onto the
recordings' (a decoder's fixed pattern across rows, which the mel inversion turns into holes), added after the other
stages; the calibration takes it per class only where it brings the rendered floor nearer."""

import json
from functools import partial

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError
from soundloom.core.spectral import features
from soundloom.sounds.postfilter import (
    ALL,
    MAX_ROW_GAIN_DB,
    POSTFILTER_FILE,
    PostFilter,
    calibrate_strength,
    fit_quantile_postfilter,
    fit_row_gain,
    long_term_db,
)
from tests.sounds.generate.test_postfilter_strength import SPEC, SR, render

LOW, HIGH = torch.full((129,), -150.0), torch.full((129,), 40.0)


def noise(n: int, seed: int, tilt_db: float = 0.0) -> np.ndarray:
    """``(n, SR // 2)`` white noise bursts, each tilted by ``tilt_db`` from 0 Hz to Nyquist (a linear ramp in dB)."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.normal(size=(n, SR // 2)), axis=1)
    spec *= 10 ** (np.linspace(0.0, tilt_db, spec.shape[1]) / 20)
    wav = np.fft.irfft(spec, n=SR // 2, axis=1) * np.exp(-4 * np.arange(SR // 2) / SR)
    return (0.5 * wav / np.abs(wav).max(axis=1, keepdims=True)).astype(np.float32)


def test_the_gain_undoes_a_fixed_pattern_across_rows_and_keeps_the_power():
    real = features(torch.from_numpy(noise(12, 0)), SPEC)
    pattern = torch.zeros(129)
    pattern[100::2] = -8.0  # every other top row 8 dB down in every item: a decoder's fixed pattern
    pattern[10] = 30.0  # and one row far too loud: the gain is clipped
    model = real + pattern[None, :, None]
    labels = ["burst"] * 12
    gains = fit_row_gain(real, labels, model, labels)
    assert set(gains) == {ALL, "burst"} and gains["burst"].shape == (129,)
    np.testing.assert_allclose(gains["burst"][100::2], 8.0, atol=0.5)
    assert float(gains["burst"][10]) == -MAX_ROW_GAIN_DB
    assert float(gains["burst"][20:90].abs().max()) < 0.5  # where the model is right, no gain
    post = PostFilter({ALL: 1.0}, row_gain=gains)
    out = post.apply(model.double(), labels, LOW, HIGH)
    # the pattern is gone from the long-term spectrum, and each item keeps its power
    lt_out, lt_real = long_term_db(out).median(0).values, long_term_db(real).median(0).values
    assert float((lt_out[95:] - lt_real[95:]).abs().max()) < 1.0
    power = (10 ** (model.double() / 10)).sum((1, 2))
    np.testing.assert_allclose((10 ** (out / 10)).sum((1, 2)), power, rtol=1e-4)
    # a class it was not fitted on takes the all-class gains; a filter without gains adds nothing
    assert torch.equal(post.gain_for(["kick"], 129)[0], gains[ALL].double())
    assert not PostFilter({ALL: 1.0}).gain_for(["burst"], 129).any()


def test_gains_round_trip_and_bad_ones_are_refused(tmp_path):
    post = PostFilter(
        {ALL: 1.0}, {"source": "test"}, row_gain={ALL: torch.zeros(4), "a": torch.tensor([1.0, -2, 0, 3])}
    )
    post.save(tmp_path)
    back = PostFilter.load(tmp_path)
    assert set(back.row_gain) == {ALL, "a"} and back.row_gain["a"].tolist() == [1.0, -2.0, 0.0, 3.0]
    record = json.loads((tmp_path / POSTFILTER_FILE).read_text())
    for bad in ({ALL: [0, 0, 0, 0], "a": [1, 2]}, {"a": [0, 0, 0, 0]}, {ALL: [0, 0, 0, 40]}, {ALL: [0, 0, 0, "x"]}):
        (tmp_path / POSTFILTER_FILE).write_text(json.dumps({**record, "row_gain": bad}))
        with pytest.raises(ModelFileError, match="row gains|malformed"):
            PostFilter.load(tmp_path)


def test_the_calibration_takes_the_gains_only_where_they_bring_the_floor_nearer():
    recorded = np.concatenate([noise(12, 0, tilt_db=-20.0), noise(12, 1, tilt_db=-20.0)])
    real = features(torch.from_numpy(recorded), SPEC)
    # "a": the model's top band is 10 dB duller than the recordings' (too clean a floor); "b": right
    dull = torch.zeros(129)
    dull[90:] = -10.0
    model = torch.cat([real[:12] + dull[None, :, None], real[12:]])
    labels = ["a"] * 12 + ["b"] * 12
    post = fit_quantile_postfilter(real, labels, model, labels, "test", {ALL: 1.0, "a": 1.0, "b": 1.0})
    post = PostFilter(post.ratio, post.info, post.quantiles, row_gain=fit_row_gain(real, labels, model, labels))

    four = partial(render, n_iter=4)
    tuned = calibrate_strength(post, real, model, labels, four, SR, LOW, HIGH, per_class=12, strengths=(0.0, 1.0))
    record = tuned.info["calibration"]["per_class"]
    assert record["a"]["row_gain"] is True and record["b"]["row_gain"] is False
    assert float(tuned.row_gain["a"][95:].mean()) > 8.0  # the dull band brought back up
    assert not tuned.row_gain["b"].any()  # zeros: the class renders without gains
    # the floor with the gains is nearer the recordings' than the best without them
    target = record["a"]["real_db"][0]
    assert min(abs(f[0] - target) for f in record["a"]["floors_db"]) < min(
        abs(f[0] - target) for f in record["a"]["floors_db_other"]
    )
