"""Spatial rendering: one azimuth convention (AmbiX, +90 = left) in stereo, binaural and FOA."""

import numpy as np
import pytest

from soundloom.core.errors import ParameterError
from soundloom.scapes.hrtf import find_mhr
from soundloom.scapes.spatial import (
    FoaRenderer,
    Position,
    StereoRenderer,
    air_cutoff_hz,
    distance_gain,
    equal_power_gains,
    make_renderer,
)

SR = 48000


def noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(SR * seconds))).astype(np.float32)


def band_energy(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1.0 / SR)
    return float(spec[(f >= lo_hz) & (f < hi_hz)].sum())


def ild_db(stereo: np.ndarray) -> float:
    """Left minus right level (dB) in the 4-8 kHz band."""
    left, right = (band_energy(ch, 4000.0, 8000.0) for ch in stereo)
    return 10.0 * np.log10((left + 1e-20) / (right + 1e-20))


def two_channel_renderers():
    path = find_mhr(SR)
    if path is None:
        pytest.fail("no OpenAL Soft HRTF installed: apt-get install -y libopenal-data")
    return {
        "stereo": make_renderer("stereo", SR),
        "binaural-hrtf": make_renderer("binaural", SR, hrtf=path),
        "binaural-spherical-head": make_renderer("binaural", SR, hrtf=None),
    }


@pytest.mark.parametrize("name", ["stereo", "binaural-hrtf", "binaural-spherical-head"])
def test_interaural_level_difference_has_the_right_sign(name):
    renderer = two_channel_renderers()[name]
    x = noise()
    left_side = ild_db(renderer.render(x, Position(azimuth_deg=90.0)))
    right_side = ild_db(renderer.render(x, Position(azimuth_deg=-90.0)))
    assert left_side > 6.0, left_side
    assert right_side < -6.0, right_side


@pytest.mark.parametrize("name", ["stereo", "binaural-hrtf", "binaural-spherical-head"])
def test_straight_ahead_is_centred(name):
    out = two_channel_renderers()[name].render(noise(0.5), Position(azimuth_deg=0.0))
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)


def test_renderers_say_what_they_used():
    renderers = two_channel_renderers()
    assert renderers["binaural-hrtf"].method.startswith("hrtf:")
    assert "MinPHR02" in renderers["binaural-hrtf"].method
    assert "spherical-head" in renderers["binaural-spherical-head"].method
    assert make_renderer("binaural", SR, hrtf="spherical-head").method == renderers["binaural-spherical-head"].method


def test_equal_power_keeps_power_across_azimuth():
    az = np.linspace(-180, 180, 73)
    left, right = equal_power_gains(az)
    np.testing.assert_allclose(left**2 + right**2, 1.0, atol=1e-12)
    assert equal_power_gains(90.0)[1] == pytest.approx(0.0, abs=1e-12)  # +90 is hard left
    assert equal_power_gains(-90.0)[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("az, el", [(90.0, 0.0), (-90.0, 0.0), (30.0, 20.0), (-135.0, -10.0), (0.0, 90.0)])
def test_foa_is_ambix_acn_sn3d(az, el):
    sr = 32000  # air absorption at 1 m (20 kHz) lies above 0.45 x rate: W is the mono signal itself
    x = noise(0.2)
    out = FoaRenderer(sr).render(x, Position(azimuth_deg=az, elevation_deg=el, distance_m=1.0))
    w, y, z, xx = out
    np.testing.assert_allclose(w, x, atol=1e-6)
    a, e = np.radians(az), np.radians(el)
    np.testing.assert_allclose(y, x * np.sin(a) * np.cos(e), atol=1e-6)
    np.testing.assert_allclose(z, x * np.sin(e), atol=1e-6)
    np.testing.assert_allclose(xx, x * np.cos(a) * np.cos(e), atol=1e-6)


def test_foa_y_sign_matches_the_side():
    x = noise(0.2)
    r = FoaRenderer(SR)
    left, right = r.render(x, Position(90.0)), r.render(x, Position(-90.0))
    assert np.dot(left[1], left[0]) > 0 and np.dot(right[1], right[0]) < 0


def test_distance_lowers_level_and_brightness():
    assert distance_gain(0.3) == 1.0 and distance_gain(10.0) == pytest.approx(0.1)
    assert distance_gain(1000.0) == pytest.approx(0.01)
    assert air_cutoff_hz(1.0, SR) > air_cutoff_hz(10.0, SR) > air_cutoff_hz(50.0, SR)
    r, x = StereoRenderer(SR), noise()
    near, far = r.render(x, Position(0.0, distance_m=1.0)), r.render(x, Position(0.0, distance_m=20.0))
    assert np.sum(far**2) < 0.01 * np.sum(near**2)
    tilt = lambda s: band_energy(s[0], 8000, 16000) / band_energy(s[0], 200, 1000)  # noqa: E731
    assert tilt(far) < 0.5 * tilt(near)


def test_a_moving_event_pans_across():
    x = noise(2.0)
    out = StereoRenderer(SR).render(x, Position(azimuth_deg=90.0, drift_deg_per_s=-90.0))  # left to right
    first, last = out[:, : SR // 4], out[:, -SR // 4 :]
    assert np.sum(first[0] ** 2) > 10 * np.sum(first[1] ** 2)
    assert np.sum(last[1] ** 2) > 10 * np.sum(last[0] ** 2)


def test_a_moving_binaural_event_crossfades_between_sides():
    x = noise(2.0)
    out = make_renderer("binaural", SR, hrtf=None).render(x, Position(azimuth_deg=90.0, drift_deg_per_s=-90.0))
    assert ild_db(out[:, : SR // 4]) > 6.0 and ild_db(out[:, -SR // 4 :]) < -6.0


def test_unknown_layout_raises():
    with pytest.raises(ParameterError):
        make_renderer("5.1", SR)
