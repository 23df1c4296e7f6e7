"""The long-term spectrum term: each row's time-averaged power (not its mean dB) against the target's."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from soundloom.data.stats import Normalizer
from soundloom.sounds.losses import long_term_spectrum_error

SCALE = torch.tensor([60.0, 30.0, 45.0])  # dB per unit of each row


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-0.3, 0.3))
def test_a_row_shifted_by_d_costs_frames_times_d_squared_whatever_the_frame_order(seed, shift):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 10, generator=gen) * 1.2 - 0.6  # inside [-1, 1] with room for the shift
    y = x.clone()
    y[:, 1] += shift
    got = long_term_spectrum_error(y, x, SCALE)
    assert torch.allclose(got, torch.full((2,), 10 * shift**2), atol=1e-5)
    shuffled = y[..., torch.randperm(10, generator=gen)]  # time-averaged power ignores where the frames are
    assert torch.allclose(long_term_spectrum_error(shuffled, x, SCALE), got, atol=1e-5)


def test_a_blurred_attack_loses_the_power_of_its_loud_frame():
    """One loud frame (0 dB) and seven at -60 dB, against every frame at their mean dB (-52.5): the row's
    time-averaged power falls from -9.0 dB to -52.5, and the term charges those 43.5 dB."""
    x = torch.full((1, 1, 8), -1.0)
    x[..., 0] = 1.0  # 30 dB per unit: the quiet frames are 60 dB below the loud one
    blurred = torch.full_like(x, float(x.mean()))
    scale = torch.tensor([30.0])
    want_db = 10 * math.log10((1 + 7 * 10**-6) / 8) - (-52.5)  # the lost power, dB
    got = long_term_spectrum_error(blurred, x, scale)
    assert torch.allclose(got, torch.tensor([8 * (want_db / 30.0) ** 2]), rtol=1e-4)
    assert 43 < want_db < 44


def test_db_per_unit_is_the_normaliser_slope():
    rng = np.random.default_rng(0)
    feats = rng.normal(-50, 10, (4, 5, 6)) * rng.uniform(0.5, 2, (1, 5, 1))
    for norm in (Normalizer.fit(feats), Normalizer.fit(feats, mode="range", min_db=-90, max_db=10)):
        y = rng.uniform(-0.8, 0.8, (5, 6)).astype(np.float32)
        slope = (norm.denormalize(y + 0.1) - norm.denormalize(y)) / 0.1
        assert np.allclose(slope, norm.db_per_unit()[:, None], rtol=1e-3)
