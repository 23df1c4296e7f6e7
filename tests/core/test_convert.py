import numpy as np
import pytest

from soundloom.core import convert_audio, fade, fit_length, resample, to_mono


def test_to_mono_averages_channels():
    x = np.stack([np.ones(10), -np.ones(10) * 0.5]).astype(np.float32)
    np.testing.assert_allclose(to_mono(x), 0.25)
    assert to_mono(x[0]).shape == (10,)


@pytest.mark.parametrize("src,dst", [(8000, 22050), (44100, 16000), (22050, 22050)])
def test_resample_preserves_frequency_and_level(src, dst):
    t = np.arange(src) / src
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = resample(x, src, dst)
    assert abs(y.size - dst) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * dst / y.size
    assert abs(peak_hz - 440) < 1.5
    rms = np.sqrt(np.mean(y[dst // 10 : -dst // 10] ** 2))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_resample_multichannel_layout():
    x = np.random.default_rng(0).standard_normal((2, 4410)).astype(np.float32)
    assert resample(x, 44100, 8000).shape == (2, 800)
    assert convert_audio(x, 44100, 8000, 1).shape == (1, 800)


def test_fit_length_pads_and_trims_with_fades():
    x = np.ones(1000, np.float32)
    padded = fit_length(x, 1500)
    assert padded.shape == (1500,) and padded[999] == 1 and not padded[1000:].any()
    trimmed = fit_length(x, 600, fade_samples=50)
    assert trimmed.shape == (600,) and trimmed[0] == 1.0  # head kept as is
    assert trimmed[-1] == pytest.approx(0.0, abs=1e-6) and trimmed[-60] == 1.0
    centred = fit_length(np.arange(10, dtype=np.float32), 4, align="center")
    np.testing.assert_array_equal(centred, [3, 4, 5, 6])


def test_fade_is_raised_cosine():
    y = fade(np.ones(100, np.float32), fade_in=11, fade_out=11)
    assert y[0] == 0 and y[5] == pytest.approx(0.5) and y[-1] == 0 and y[50] == 1
