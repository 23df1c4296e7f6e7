"""Levelling a rendered sound: "none" clips for a file, "raw" leaves a measurement the sound as rendered."""

import numpy as np
import pytest

from soundloom.core.errors import ParameterError
from soundloom.core.floor import spectral_floor_db
from soundloom.sounds.decode import finish_audio

SR = 8000


def test_raw_is_unclipped_and_keeps_a_loud_sounds_floor():
    t = np.arange(SR // 2) / SR
    loud = (3.0 * np.sin(2 * np.pi * 200 * t) * np.hanning(len(t))).astype(np.float32)  # peaks at 3x full scale
    raw, clipped = finish_audio(loud, SR, None, "raw"), finish_audio(loud, SR, None, "none")
    np.testing.assert_array_equal(raw, loud)
    assert np.abs(clipped).max() == 1.0
    # clipping a clean tone adds harmonics up the spectrum: a floor the rendered sound never had
    assert spectral_floor_db([clipped], SR)[0] > spectral_floor_db([raw], SR)[0] + 20
    peak = finish_audio(loud, SR, None, "peak")
    assert np.abs(peak).max() < 1.0 and np.allclose(peak / np.abs(peak).max(), loud / np.abs(loud).max(), atol=1e-6)
    with pytest.raises(ParameterError, match="level must be one of"):
        finish_audio(loud, SR, None, "loud")
