"""The post-filter's floor guard: rows the recordings hold steady (a band left to their noise) keep their recorded
floor under the sharpening; rows with content are left free."""

import json

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError
from soundloom.sounds.postfilter import ALL, POSTFILTER_FILE, PostFilter, fit_row_floor

ROWS, FRAMES = 8, 40
LOW, HIGH = torch.full((ROWS,), -200.0), torch.full((ROWS,), 40.0)


def spectra(n: int, seed: int) -> torch.Tensor:
    """``(n, ROWS, FRAMES)`` dB: rows 0-3 a decaying tone with partials (content, 60 dB of range), rows 4-7 steady
    noise 90 dB under the peak (within +-1.5 dB)."""
    rng = np.random.default_rng(seed)
    decay = np.linspace(0.0, -60.0, FRAMES)
    content = rng.uniform(-30.0, 0.0, (n, 4, 1)) + decay + rng.normal(0.0, 3.0, (n, 4, FRAMES))
    content[:, 0] = decay  # every item's loudest value is 0 dB, in row 0, frame 0
    steady = -90.0 + rng.uniform(-1.5, 1.5, (n, 4, FRAMES))
    return torch.from_numpy(np.concatenate([content, steady], axis=1))


def test_only_steady_rows_get_a_floor_at_their_tenth_percentile():
    real = spectra(20, 0)
    floors = fit_row_floor(real, ["a"] * 10 + ["b"] * 10)
    assert set(floors) == {"a", "b", ALL}
    for f in floors.values():
        assert torch.isinf(f[:4]).all() and (f[:4] < 0).all()  # content rows: no floor
        assert np.allclose(f[4:].numpy(), -90.0 - 1.2, atol=0.3)  # the 10th percentile of -90 +- 1.5


def test_the_guard_stops_sharpening_at_the_floor_and_leaves_content_rows_alone():
    real = spectra(20, 0)
    post = PostFilter({ALL: 3.0}, envelope_rows=3)  # a strong stretch: pushes everything under its envelope down
    guarded = PostFilter({ALL: 3.0}, envelope_rows=3, row_floor=fit_row_floor(real, [None] * 20))
    db = spectra(4, 1)
    free, kept = post.apply(db, [None] * 4, LOW, HIGH), guarded.apply(db, [None] * 4, LOW, HIGH)
    floor = db.amax(dim=(1, 2), keepdim=True) + guarded.floor_for([None] * 4, ROWS)[:, :, None]
    assert (free[:, 4:] < floor[:, 4:] - 5).any()  # without the guard the noise band sinks well under its floor
    assert (kept[:, 4:] >= torch.minimum(db[:, 4:], floor[:, 4:]) - 1e-9).all()
    assert torch.equal(kept[:, :4], free[:, :4])
    lower = db[:, 4:] - 10.0  # a decoder that put the band under the floor itself: the guard does not lift it
    db2 = torch.cat([db[:, :4], lower], dim=1)
    assert (guarded.apply(db2, [None] * 4, LOW, HIGH)[:, 4:] <= lower.amax() + 1e-9).all()


def test_floors_round_trip_with_unguarded_rows_as_null_and_bad_ones_are_refused(tmp_path):
    floors = fit_row_floor(spectra(10, 0), ["a"] * 10)
    post = PostFilter({ALL: 1.2, "a": 1.1}, row_floor=floors)
    post.save(tmp_path)
    d = json.loads((tmp_path / POSTFILTER_FILE).read_text())
    assert d["row_floor"]["a"][:4] == [None] * 4 and all(v < 0 for v in d["row_floor"]["a"][4:])
    back = PostFilter.load(tmp_path)
    db = spectra(2, 3)
    assert torch.equal(back.apply(db, ["a", "a"], LOW, HIGH), post.apply(db, ["a", "a"], LOW, HIGH))
    for bad in ({"a": d["row_floor"]["a"]}, {**d["row_floor"], "a": [3.0] * ROWS}, {**d["row_floor"], "a": [0.0]}):
        (tmp_path / POSTFILTER_FILE).write_text(json.dumps({**d, "row_floor": bad}))
        with pytest.raises(ModelFileError, match="row floors"):
            PostFilter.load(tmp_path)
