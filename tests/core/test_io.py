import numpy as np
import pytest
import soundfile as sf

from soundloom.core import AudioError, audio_info, load_audio, read_audio, write_audio

from .conftest import harmonic_tone


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_every_format(tmp_path, fmt, channels):
    sr = 22050
    mono = harmonic_tone(sr, 1.0) * 1.5
    wav = np.stack([mono, -0.5 * mono]) if channels == 2 else mono[None]
    path = write_audio(tmp_path / f"x.{fmt}", wav, sr)
    back, rate = read_audio(path)
    info = audio_info(path)
    assert rate == sr and info.sample_rate == sr
    assert back.shape[0] == channels == info.channels
    # Lossy codecs may add a few ms of padding; lengths agree within 50 ms.
    assert abs(back.shape[1] - wav.shape[1]) < 0.05 * sr
    n = min(back.shape[1], wav.shape[1])
    if fmt in ("wav", "flac"):
        np.testing.assert_allclose(back[:, :n], wav[:, :n], atol=1e-4)
    else:  # lossy: same waveform up to the codec's delay
        ref, got = wav[0, :n], back[0, :n]
        lag = np.argmax(np.correlate(got[: sr // 2], ref[: sr // 4], mode="valid"))
        corr = np.corrcoef(got[lag : lag + sr // 2], ref[: sr // 2])[0, 1]
        assert corr > 0.98


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    write_audio(tmp_path / "a.wav", np.zeros(100, np.float32) + 0.1, 8000)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]


def test_write_rejects_non_finite_and_unknown_format(tmp_path):
    with pytest.raises(AudioError, match="non-finite"):
        write_audio(tmp_path / "a.wav", np.array([0.0, np.nan], np.float32), 8000)
    with pytest.raises(AudioError, match="format"):
        write_audio(tmp_path / "a.xyz", np.zeros(10, np.float32), 8000)
    assert not list(tmp_path.iterdir())


def test_load_resamples_and_downmixes(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    left = 0.5 * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, left], axis=1).astype(np.float32), sr)
    wav, rate = load_audio(tmp_path / "s.wav", sample_rate=16000)
    assert rate == 16000 and wav.ndim == 1 and abs(wav.size - 16000) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(wav))) * 16000 / wav.size
    assert abs(peak_hz - 1000) < 2
    assert abs(np.abs(wav[1000:-1000]).max() - 0.5) < 0.01


def _bad_files(tmp_path):
    (tmp_path / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "zero.wav").write_bytes(b"")
    sf.write(tmp_path / "header_only.wav", np.zeros((0,), np.float32), 8000)
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 1000, np.float32), 8000, subtype="FLOAT")
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 8000)
    sf.write(tmp_path / "short.wav", 0.5 * np.ones(80, np.float32), 8000)
    return {
        "garbage.wav": "not a decodable audio file (format not recognised)",
        "zero.wav": "empty (0-byte file)",
        "header_only.wav": "empty",
        "nan.wav": "non-finite",
        "silent.wav": "silent",
        "short.wav": "too short",
    }


def test_bad_files_raise_audio_error_naming_file_and_reason(tmp_path):
    for name, reason in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as err:
            load_audio(tmp_path / name, min_seconds=0.05)
        assert name in str(err.value) and reason in err.value.reason, (name, str(err.value))


def test_audio_info_reads_header_only(tmp_path):
    write_audio(tmp_path / "a.flac", 0.1 * np.ones((2, 12345), np.float32), 16000)
    info = audio_info(tmp_path / "a.flac")
    assert (info.sample_rate, info.channels, info.frames) == (16000, 2, 12345)
    assert info.duration_s == pytest.approx(12345 / 16000)


def test_read_segment_by_offset(tmp_path):
    x = np.arange(1000, dtype=np.float32) / 1000
    write_audio(tmp_path / "r.flac", x, 8000, subtype="PCM_24")
    seg, _ = read_audio(tmp_path / "r.flac", start=200, stop=300)
    np.testing.assert_allclose(seg[0], x[200:300], atol=1e-5)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("channels", [1, 2])
def test_read_head_small_wav_matches_libsndfile(tmp_path, subtype, channels):
    """The stdlib-wave fast path for small WAVs decodes exactly what soundfile decodes."""
    from soundloom.core.io import _read_small_wav, read_head

    sr = 16000
    mono = harmonic_tone(sr, 0.5) * 1.8
    wav = np.stack([mono, -0.7 * mono]) if channels == 2 else mono[None]
    path = tmp_path / "x.wav"
    sf.write(path, wav.T, sr, subtype=subtype)
    ref = sf.read(path, dtype="float32", always_2d=True)[0].T
    fast = _read_small_wav(str(path), None, 0)
    assert (fast is not None) == subtype.startswith("PCM")  # integer PCM takes the fast path
    got, rate, frames = read_head(path)
    assert (rate, frames) == (sr, ref.shape[1]) and got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)
    head, _, frames = read_head(path, seconds=0.1, extra_frames=7)
    assert frames == ref.shape[1] and head.shape == (channels, 1607)
    np.testing.assert_array_equal(head, ref[:, :1607])
    big, _, _ = read_head(path, seconds=0.1, small_bytes=100)  # too big for the fast path: soundfile reads
    np.testing.assert_array_equal(big, ref[:, :1600])


def test_read_head_other_formats_and_bad_files(tmp_path):
    from soundloom.core.io import read_head

    sr = 22050
    wav = harmonic_tone(sr, 0.4)
    write_audio(tmp_path / "a.flac", wav, sr)
    got, rate, frames = read_head(tmp_path / "a.flac", seconds=0.2)
    assert rate == sr and frames == wav.size and got.shape == (1, int(np.ceil(0.2 * sr)))
    np.testing.assert_allclose(got[0], wav[: got.shape[1]], atol=1e-4)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        read_head(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    with pytest.raises(AudioError, match="junk.wav: not a decodable audio file"):
        read_head(tmp_path / "junk.wav")
