"""Mood: named points, continuous interpolation, the calm/energetic contract."""

import numpy as np
import pytest

from soundloom.core.errors import ParameterError
from soundloom.scapes.mood import NAMED_MOODS, Mood


def test_named_points_match_their_energy():
    for name, energy in NAMED_MOODS.items():
        assert Mood.of(name) == Mood.of(energy)
    assert Mood.of("  Energetic ").energy == 1.0
    assert Mood.of("0.25").energy == 0.25


def test_energetic_doubles_the_rate_and_adds_level():
    calm, energetic = Mood.of("calm"), Mood.of("energetic")
    assert energetic.event_rate_per_min >= 2 * calm.event_rate_per_min
    assert np.mean(energetic.gain_db_range) - np.mean(calm.gain_db_range) >= 3.0
    assert energetic.bed_loudness_lufs > calm.bed_loudness_lufs
    assert energetic.min_spacing_s < calm.min_spacing_s
    assert energetic.event_lowpass_hz > calm.event_lowpass_hz


def test_fields_move_continuously_and_monotonically():
    grid = [Mood.of(float(e)) for e in np.linspace(0, 1, 101)]
    rates = np.array([m.event_rate_per_min for m in grid])
    assert np.all(np.diff(rates) > 0)
    assert np.max(np.abs(np.diff(rates))) < 0.2  # no jumps at the named points
    spacing = np.array([m.min_spacing_s for m in grid])
    assert np.all(np.diff(spacing) < 0)
    near = np.array([m.distance_range_m[0] for m in grid])
    assert np.all(np.diff(near) <= 0)
    for m in grid:
        assert m.gain_db_range[0] < m.gain_db_range[1]
        assert m.distance_range_m[0] < m.distance_range_m[1]


def test_half_way_rate_is_the_geometric_mean():
    calm, neutral = Mood.of("calm"), Mood.of("neutral")
    quarter = Mood.of(0.25)
    assert quarter.event_rate_per_min == pytest.approx(np.sqrt(calm.event_rate_per_min * neutral.event_rate_per_min))


@pytest.mark.parametrize("bad", ["sleepy", -0.1, 1.5, "2"])
def test_bad_moods_raise_parameter_error(bad):
    with pytest.raises(ParameterError):
        Mood.of(bad)


def test_dict_forms_are_json_ready():
    d = Mood.of("neutral").to_dict()
    assert isinstance(d["gain_db_range"], list)
    assert set(Mood.of(0.3).bed_weights()) == {"loudness_lufs", "onsets_per_min", "centroid_hz", "tempo_bpm"}
