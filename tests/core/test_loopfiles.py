"""Loop files: WAV smpl chunk, OGG loop comments, JSON sidecar, loudness presets; read back independently."""

import json
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from mutagen.oggvorbis import OggVorbis

from soundloom.core.errors import AudioError, ParameterError
from soundloom.core.levels import loudness_lufs, true_peak_db
from soundloom.core.loopfiles import (
    LOOP_TARGETS,
    TRUE_PEAK_CEILING_DB,
    normalize_loop,
    parse_smpl_loops,
    read_smpl_loops,
    write_loop_ogg,
    write_loop_sidecar,
    write_loop_wav,
)

RATE = 16000
SFC_GET_INSTRUMENT, SFC_SET_INSTRUMENT = 0x10D0, 0x10D1
SF_INSTRUMENT_BYTES = 272  # int gain; 6 chars; int loop_count; 16 x (int mode, uint start, end, count)


def pad(seconds=2.0, channels=0, amp=0.3):
    """A soft chord, ``(samples,)`` or ``(samples, channels)``."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = amp * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) / 1.5
    return (x if channels == 0 else np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1)).astype(np.float32)


def libsndfile_loops(path):
    """Loop (mode, start, end) as libsndfile's SFC_GET_INSTRUMENT reports them (a second, independent reader)."""
    ffi, snd = sf._ffi, sf._snd
    buf = ffi.new("char[]", SF_INSTRUMENT_BYTES)
    with sf.SoundFile(str(path)) as f:
        assert snd.sf_command(f._file, SFC_GET_INSTRUMENT, buf, SF_INSTRUMENT_BYTES) == 1, "libsndfile saw no smpl"
    raw = bytes(ffi.buffer(buf, SF_INSTRUMENT_BYTES))
    n = struct.unpack_from("<i", raw, 12)[0]
    return [struct.unpack_from("<i2I", raw, 16 + 16 * i) for i in range(n)]


@pytest.mark.parametrize("channels", [0, 2])
def test_wav_smpl_round_trip(tmp_path, channels):
    x = pad(2.0, channels)
    path = write_loop_wav(tmp_path / "a.wav", x, RATE, 1234, 30000)
    (loop,) = read_smpl_loops(path)
    assert (loop.start, loop.end, loop.stop) == (1234, 29999, 30000)  # stored end is the last sample played
    assert (loop.type, loop.play_count, loop.cue_id) == (0, 0, 0)
    info = sf.info(str(path))
    assert (info.frames, info.samplerate, info.channels) == (len(x), RATE, max(channels, 1))
    back, _ = sf.read(str(path), dtype="float32")
    assert np.max(np.abs(back - x)) < 1e-4  # 16-bit PCM, samples untouched by the chunk insertion


def test_common_reader_expects_inclusive_end(tmp_path):
    """libsndfile (what Audacity, SoX and many engines' tools use) reads our chunk as the loop we meant,
    and its own writer stores end - 1: both directions agree with our convention."""
    path = write_loop_wav(tmp_path / "a.wav", pad(1.0), RATE, 1000, 5000)
    mode, start, end = libsndfile_loops(path)[0]
    assert (start, end) == (1000, 5000)  # libsndfile adds 1 to the stored inclusive end
    assert mode == 801  # SF_LOOP_FORWARD

    ffi, snd = sf._ffi, sf._snd
    raw = bytearray(SF_INSTRUMENT_BYTES)
    struct.pack_into("<i6bxxi", raw, 0, 0, 60, 0, 0, 127, 0, 127, 1)
    struct.pack_into("<i3I", raw, 16, 801, 1000, 5000, 0)
    buf = ffi.new("char[]", bytes(raw))
    theirs = tmp_path / "libsndfile.wav"
    with sf.SoundFile(str(theirs), "w", RATE, 1, "PCM_16") as f:
        assert snd.sf_command(f._file, SFC_SET_INSTRUMENT, buf, SF_INSTRUMENT_BYTES) == 1
        f.write(pad(1.0))
    (loop,) = read_smpl_loops(theirs)
    assert (loop.start, loop.end, loop.stop) == (1000, 4999, 5000)


def test_wav_header_fields_and_riff_size(tmp_path):
    path = write_loop_wav(tmp_path / "a.wav", pad(0.5), RATE, 0, 8000)
    raw = path.read_bytes()
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    k = raw.index(b"smpl")
    size, manufacturer, product, period, unity, fraction, smpte_fmt, smpte_off, n, extra = struct.unpack_from(
        "<10I", raw, k + 4
    )
    assert size == 36 + 24 and n == 1 and extra == 0
    assert period == round(1e9 / RATE) and unity == 60
    assert (manufacturer, product, fraction, smpte_fmt, smpte_off) == (0, 0, 0, 0, 0)


def test_ogg_loop_comments(tmp_path):
    x = pad(2.0, 2)
    path = write_loop_ogg(tmp_path / "a.ogg", x, RATE, 4000, 28000)
    tags = OggVorbis(str(path))
    assert tags["LOOPSTART"] == ["4000"] and tags["LOOPLENGTH"] == ["24000"]
    info = sf.info(str(path))
    assert (info.frames, info.samplerate, info.channels) == (len(x), RATE, 2)  # positions still mean samples


def test_sidecar(tmp_path):
    x, level = normalize_loop(pad(2.0), RATE, "console", 800, 24800)
    path = write_loop_sidecar(tmp_path / "a.loop.json", RATE, 800, 24800, len(x), level, {"method": "beats"})
    doc = json.loads(path.read_text())
    assert doc["loop_start_samples"] == 800 and doc["loop_end_samples"] == 24800
    assert doc["loop_length_samples"] == 24000 and doc["loop_length_s"] == pytest.approx(1.5)
    assert doc["loop_start_s"] == pytest.approx(0.05) and doc["sample_rate"] == RATE
    assert doc["loudness"]["target"] == "console" and doc["loudness"]["target_lufs"] == -24.0
    assert doc["loop_search"] == {"method": "beats"}
    assert "note" not in doc["loudness"]


@pytest.mark.parametrize("target", sorted(LOOP_TARGETS))
def test_presets_reach_target_under_true_peak_ceiling(target):
    x, level = normalize_loop(pad(2.0, 2, amp=0.05), RATE, target, 1000, 30000)
    assert not level.peak_limited
    assert loudness_lufs(x[1000:30000].T, RATE) == pytest.approx(LOOP_TARGETS[target], abs=0.1)
    assert level.loudness_lufs == pytest.approx(LOOP_TARGETS[target], abs=0.1)
    assert true_peak_db(x.T, RATE) <= TRUE_PEAK_CEILING_DB


def test_true_peak_cap_is_reported(tmp_path):
    """Sparse clicks are quiet by LUFS but peaky: -14 LUFS would clip, so the gain stops at -1 dBTP."""
    x = np.zeros(2 * RATE, np.float32)
    x[:: RATE // 4] = 0.5
    y, level = normalize_loop(x, RATE, "streaming")
    assert level.peak_limited and level.loudness_lufs < LOOP_TARGETS["streaming"] - 1.0
    assert level.true_peak_dbtp <= TRUE_PEAK_CEILING_DB and true_peak_db(y, RATE) <= TRUE_PEAK_CEILING_DB
    doc = json.loads(write_loop_sidecar(tmp_path / "c.json", RATE, 0, len(y), len(y), level).read_text())
    assert "-1 dBTP" in doc["loudness"]["note"]


def test_true_peak_counts_the_wrap():
    """A loop whose end and start are each at -1.5 dBFS but of opposite sign overshoots at the wrap."""
    x = pad(1.0, amp=0.1)
    x[-1], x[0] = 0.8, -0.8
    y, level = normalize_loop(x, RATE, "streaming")
    wrapped = np.concatenate([y, y[:800]])
    assert true_peak_db(wrapped, RATE) <= TRUE_PEAK_CEILING_DB + 1e-3


def test_errors(tmp_path):
    with pytest.raises(ParameterError, match="not inside"):
        write_loop_wav(tmp_path / "a.wav", pad(0.5), RATE, 10, 10**6)
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(ParameterError, match="unknown loudness target"):
        normalize_loop(pad(0.5), RATE, "arcade")
    with pytest.raises(AudioError, match="silence"):
        normalize_loop(np.zeros(RATE, np.float32), RATE)
    (tmp_path / "x.wav").write_bytes(b"OggS" + bytes(40))
    with pytest.raises(AudioError, match="x.wav: not a RIFF WAVE"):
        read_smpl_loops(tmp_path / "x.wav")
    sf.write(str(tmp_path / "plain.wav"), pad(0.2), RATE)
    assert read_smpl_loops(tmp_path / "plain.wav") == []


def test_truncated_smpl_is_an_audio_error(tmp_path):
    raw = write_loop_wav(tmp_path / "a.wav", pad(0.2), RATE, 0, 100).read_bytes()
    with pytest.raises(AudioError, match="smpl"):
        parse_smpl_loops(raw[:-10])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_parser_never_crashes_on_junk(junk, riff_header):
    raw = (b"RIFF" + struct.pack("<I", len(junk) + 4) + b"WAVE" + junk) if riff_header else junk
    try:
        loops = parse_smpl_loops(raw)
    except AudioError:
        return
    assert isinstance(loops, list)
