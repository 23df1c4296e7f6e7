"""Seamless loops: found or built loops pass the stream seam gates when played twice through."""

import json

import numpy as np
import pytest
import soundfile as sf
from mutagen.oggvorbis import OggVorbis

from soundloom.core.errors import ParameterError
from soundloom.core.levels import true_peak_db
from soundloom.core.loopfiles import read_smpl_loops
from soundloom.streams.loops import equal_power, export_loop, find_loop, loop_with_intro, render_loop
from soundloom.streams.seams import seam_metrics

from .conftest import RATE, make_song


def drone(seconds=5.0, seed=0):
    """A pad: three detuned partials with a slow swell and a little noise, ``(samples,)``."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = (
        0.2 * np.sin(2 * np.pi * 110 * t)
        + 0.1 * np.sin(2 * np.pi * 165.3 * t + 1)
        + 0.05 * np.sin(2 * np.pi * 220.7 * t)
    )
    x *= 1 + 0.2 * np.sin(2 * np.pi * 0.3 * t)
    return (x + 0.002 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def chirp_noise(seconds=5.0):
    """An exponential sweep 200 -> 800 Hz over swelling noise: no two moments a loop apart sound alike,
    while the sweep is slow enough that every moment joins its own next one."""
    t = np.arange(int(seconds * RATE)) / RATE
    f = 200 * np.exp(np.log(4) * t / seconds)
    noise = 0.05 * np.random.default_rng(1).standard_normal(len(t)) * np.linspace(0.2, 1, len(t))
    return (0.3 * np.sin(2 * np.pi * np.cumsum(f) / RATE) + noise).astype(np.float32)


def played_twice(loop, audio):
    """Seam figures of the body played twice, at the wrap (and the crossfade centre when there is one)."""
    body = render_loop(loop, audio)
    mono = body if body.ndim == 1 else body.mean(axis=1)
    pos = [loop.length] + ([loop.length - loop.crossfade // 2] if loop.crossfade else [])
    return seam_metrics(np.concatenate([mono, mono]), np.array(pos), RATE)


def butt_join(audio, start, end):
    m = seam_metrics(np.concatenate([audio[:end], audio[start:]]), np.array([end]), RATE)
    return bool(m["pass"][0])


def test_drone_loops_on_zero_crossings_without_crossfade():
    x = drone()
    loop = find_loop(x, RATE, 2.0)
    assert loop.method == "zero_crossings" and loop.crossfade == 0 and loop.passed
    assert abs(loop.length - 2 * RATE) <= 0.05 * 2 * RATE
    assert x[loop.start - 1] < 0 <= x[loop.start]  # a rising zero crossing
    m = played_twice(loop, x)
    assert m["pass"].all()
    assert m["level_jump_db"][0] == pytest.approx(loop.level_jump_db, abs=1e-6)  # the search judged what plays
    assert m["click_ratio"][0] == pytest.approx(loop.click_ratio, abs=1e-6)


def test_beat_song_loops_on_beats():
    """12 s at 120 BPM: long enough for librosa's tracker (its first call JIT-compiles: a few seconds)."""
    x = make_song(12.0, 120, (220.0, 277.2, 329.6), seed=1)
    loop = find_loop(x, RATE, 4.0)
    assert loop.method == "beats" and loop.passed
    beat = 0.5 * RATE
    assert abs(loop.length - 8 * beat) < 0.01 * RATE  # two whole bars
    assert min(loop.start % beat, beat - loop.start % beat) < 0.01 * RATE  # on a beat
    assert played_twice(loop, x)["pass"].all()


def test_given_beats_are_used_and_stereo_renders_per_channel():
    x = make_song(5.0, 120, (196.0, 246.9), seed=2)
    stereo = np.stack([x, 0.5 * x], axis=1)
    beats = np.arange(0, len(x), RATE // 2)
    loop = find_loop(stereo, RATE, 2.0, beats=beats)
    assert loop.method == "beats" and loop.passed
    body = render_loop(loop, stereo)
    assert body.shape == (loop.length, 2)
    assert np.allclose(body[:, 1], 0.5 * body[:, 0], atol=1e-6)
    assert played_twice(loop, stereo)["pass"].all()


def test_sweep_needs_and_gets_a_crossfade_loop():
    x = chirp_noise()
    loop = find_loop(x, RATE, 2.0)
    assert not butt_join(x, loop.start, loop.end)  # the natural join would fail ...
    assert loop.crossfade == int(0.25 * RATE) and loop.passed  # ... so the loop was built
    m = played_twice(loop, x)
    assert m["pass"].all()
    assert m["spectral_cosine"].min() == pytest.approx(loop.spectral_cosine, abs=1e-6)
    body = render_loop(loop, x)
    # the wrap continues the source exactly: the body's last sample is (nearly) the one before its start
    assert abs(body[-1] - x[loop.start - 1]) < 1e-3


def test_equal_power_curves():
    fo, fi = equal_power(1000)
    assert np.allclose(fo**2 + fi**2, 1.0) and fo[0] > 0.99 and fi[-1] > 0.99


def test_intro_then_loop_positions():
    x = drone()
    loop = find_loop(x, RATE, 2.0)
    wav, start, end = loop_with_intro(loop, x, intro_s=0.5)
    assert start == int(0.5 * RATE) and end - start == loop.length
    assert np.allclose(wav[:start], x[loop.start - start : loop.start])
    assert np.allclose(wav[start:end], render_loop(loop, x))


def test_export_writes_readable_loop_files(tmp_path):
    x = drone()
    loop, paths = export_loop(tmp_path / "theme.wav", x, RATE, 2.0, target="handheld", intro_s=0.25)
    assert set(paths) == {"wav", "ogg", "json"} and paths["json"].name == "theme.loop.json"
    start, end = int(0.25 * RATE), int(0.25 * RATE) + loop.length
    (smpl,) = read_smpl_loops(paths["wav"])
    assert (smpl.start, smpl.stop) == (start, end)
    tags = OggVorbis(str(paths["ogg"]))
    assert tags["LOOPSTART"] == [str(start)] and tags["LOOPLENGTH"] == [str(loop.length)]
    doc = json.loads(paths["json"].read_text())
    assert (doc["loop_start_samples"], doc["loop_end_samples"]) == (start, end)
    assert doc["loudness"]["target_lufs"] == -18.0 and doc["loop_search"]["passed"] is True
    wav, rate = sf.read(str(paths["wav"]), dtype="float32")
    assert rate == RATE and sf.info(str(paths["ogg"])).frames == len(wav) == end
    assert true_peak_db(wav, RATE) <= -1.0 + 0.01  # 16-bit rounding only
    assert true_peak_db(sf.read(str(paths["ogg"]), dtype="float32")[0], RATE) <= -1.0  # after Vorbis, too
    assert doc["loop_search"]["ogg_true_peak_dbtp"] <= -1.0
    m = seam_metrics(np.concatenate([wav[:end], wav[start:end]]), np.array([end]), RATE)
    assert m["pass"].all()  # the file as an engine plays it: intro, loop, loop


def test_bad_requests():
    with pytest.raises(ParameterError, match="usable audio"):
        find_loop(drone(2.0), RATE, 3.0)
    with pytest.raises(ParameterError, match="too short"):
        find_loop(drone(2.0), RATE, 0.05)
    with pytest.raises(ParameterError, match="unknown loudness target"):
        export_loop("/nonexistent/x", drone(), RATE, 2.0, target="loud")
