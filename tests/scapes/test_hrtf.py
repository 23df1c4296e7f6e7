"""The .mhr reader (MinPHR02) on synthetic files of each kind, the installed set, and its errors."""

import struct

import numpy as np
import pytest

from soundloom.core.errors import ModelFileError
from soundloom.scapes.hrtf import SphericalHead, find_mhr, read_mhr


def write_mhr(path, rate=44100, sample_type=0, left_right=False, ir_size=8, az_counts=(1, 4, 1), delays=None):
    """A tiny MinPHR02 file: IR i's first coefficient is (i + 1) / 64 (left) and -(i + 1) / 64 (right)."""
    n_ir = sum(az_counts)
    ears = 2 if left_right else 1
    coeffs = np.zeros((n_ir, ir_size, ears))
    coeffs[:, 0, 0] = (np.arange(n_ir) + 1) / 64
    if left_right:
        coeffs[:, 0, 1] = -(np.arange(n_ir) + 1) / 64
    if sample_type == 0:
        body = (np.round(coeffs.reshape(-1) * 32768)).astype("<i2").tobytes()
    else:
        ints = np.round(coeffs.reshape(-1) * 8388608).astype(np.int64) & 0xFFFFFF
        body = b"".join(int(v).to_bytes(3, "little") for v in ints)
    delays = np.arange(n_ir * ears) % 5 if delays is None else np.asarray(delays)
    header = b"MinPHR02" + struct.pack("<IBBBB", rate, sample_type, int(left_right), ir_size, 1)
    header += struct.pack("<HB", 1400, len(az_counts)) + bytes(az_counts)
    path.write_bytes(header + body + bytes(delays.astype(np.uint8)))
    return path


@pytest.mark.parametrize("sample_type", [0, 1])
def test_left_only_files_are_mirrored(tmp_path, sample_type):
    h = read_mhr(write_mhr(tmp_path / "t.mhr", sample_type=sample_type))
    assert h.sample_rate == 44100 and h.left.shape == (6, 8)
    np.testing.assert_allclose(h.elevation_deg, [-90, 0, 0, 0, 0, 90])
    # File azimuths on the middle ring: 0, 90, 180, 270 clockwise -> AmbiX 0, -90, -180, 90.
    np.testing.assert_allclose(h.azimuth_deg[1:5], [0.0, -90.0, -180.0, 90.0])
    np.testing.assert_allclose(h.left[:, 0], (np.arange(6) + 1) / 64, atol=1e-6)
    # The right ear at azimuth a is the left ear at -a: index 2 (-90) <-> 4 (+90), 1 and 3 themselves.
    np.testing.assert_allclose(h.right[1:5, 0], np.array([2, 5, 4, 3]) / 64, atol=1e-6)
    np.testing.assert_array_equal(h.delay_right[1:5], h.delay_left[[1, 4, 3, 2]])


def test_left_right_files_keep_both_ears(tmp_path):
    h = read_mhr(write_mhr(tmp_path / "t.mhr", sample_type=1, left_right=True))
    np.testing.assert_allclose(h.right[:, 0], -(np.arange(6) + 1) / 64, atol=1e-6)
    np.testing.assert_array_equal(h.delay_right, (np.arange(12) % 5)[1::2])


def test_nearest_direction_and_resampling(tmp_path):
    h = read_mhr(write_mhr(tmp_path / "t.mhr", delays=[4] * 6))
    assert h.azimuth_deg[h.nearest(80.0, 10.0)] == 90.0
    assert h.elevation_deg[h.nearest(0.0, 80.0)] == 90.0
    up = h.resampled(88200)
    assert up.sample_rate == 88200 and up.left.shape[1] == 16 and np.all(up.delay_left == 8)
    assert h.hrir(0.0, 0.0).shape == (2, 8 + 4)


@pytest.mark.parametrize(
    "mangle, reason",
    [
        (lambda b: b"MinPHR01" + b[8:], "MinPHR02"),
        (lambda b: b[:-10], "truncated"),
        (lambda b: b[:12], "truncated"),
    ],
)
def test_bad_files_name_the_file_and_reason(tmp_path, mangle, reason):
    path = write_mhr(tmp_path / "t.mhr")
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(ModelFileError, match=reason) as err:
        read_mhr(path)
    assert str(path) in str(err.value)


def test_missing_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="unreadable"):
        read_mhr(tmp_path / "absent.mhr")


def test_installed_openal_set_reads_as_kemar():
    path = find_mhr(48000)
    if path is None:
        pytest.fail("no OpenAL Soft HRTF installed: apt-get install -y libopenal-data")
    h = read_mhr(path)
    assert h.sample_rate in (44100, 48000) and h.left.shape[0] == h.azimuth_deg.size > 100
    side = h.nearest(90.0, 0.0)  # left
    assert np.sum(h.left[side] ** 2) > 4 * np.sum(h.right[side] ** 2)
    assert h.delay_left[side] < h.delay_right[side]


def test_find_mhr_prefers_the_closest_rate(tmp_path, monkeypatch):
    write_mhr(tmp_path / "a.mhr", rate=44100)
    write_mhr(tmp_path / "b.mhr", rate=96000)
    monkeypatch.setattr("soundloom.scapes.hrtf.HRTF_DIRS", ())
    monkeypatch.setenv("SOUNDLOOM_HRTF_DIR", str(tmp_path))
    assert find_mhr(88200).name == "b.mhr" and find_mhr(32000).name == "a.mhr"
    monkeypatch.setenv("SOUNDLOOM_HRTF_DIR", str(tmp_path / "none"))
    assert find_mhr(48000) is None


def test_spherical_head_delays_the_far_ear():
    ir = SphericalHead(48000).hrir(90.0, 0.0)  # left
    assert np.argmax(np.abs(ir[0])) < np.argmax(np.abs(ir[1]))
    itd_s = (np.argmax(np.abs(ir[1])) - np.argmax(np.abs(ir[0]))) / 48000
    assert 0.5e-3 < itd_s < 0.8e-3  # a 8.75 cm head: about (a / c)(1 + pi / 2) = 0.66 ms
