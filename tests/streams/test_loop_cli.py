"""`soundloom loop`: a song file or a pool + model -> WAV (smpl), OGG (LOOPSTART/LOOPLENGTH), JSON at a preset."""

import json

import numpy as np
import pyloudnorm
import soundfile as sf
from mutagen.oggvorbis import OggVorbis

from soundloom.cli import run_app
from soundloom.core.levels import true_peak_db
from soundloom.core.loopfiles import read_smpl_loops

from .conftest import RATE, make_song


def test_song_file_to_console_loop(tmp_path, capsys):
    song = tmp_path / "song.wav"
    sf.write(song, make_song(6.0, 120, (220.0, 277.2, 329.6), seed=3), RATE)
    code = run_app(
        ["loop", str(song), "--seconds", "2", "--out", str(tmp_path / "out" / "theme"), "--target", "console"]
    )
    assert code == 0, capsys.readouterr().err
    assert "passes the gates" in capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "theme.loop.json").read_text())
    start, end = doc["loop_start_samples"], doc["loop_end_samples"]
    assert abs((end - start) / RATE - 2.0) < 0.6  # the loop points move to beats, not far
    (smpl,) = read_smpl_loops(tmp_path / "out" / "theme.wav")
    assert (smpl.start, smpl.stop) == (start, end)
    tags = OggVorbis(str(tmp_path / "out" / "theme.ogg"))
    assert tags["LOOPSTART"] == [str(start)] and tags["LOOPLENGTH"] == [str(end - start)]
    wav, rate = sf.read(tmp_path / "out" / "theme.wav", dtype="float32")
    assert rate == RATE and doc["loudness"]["target_lufs"] == -24.0
    body = np.tile(wav[start:end], 3)  # loudness of the loop as a game plays it
    assert abs(pyloudnorm.Meter(RATE).integrated_loudness(body) - (-24.0)) < 1.0
    assert true_peak_db(wav, RATE) <= -1.0 + 0.01


def test_pool_with_model_renders_a_stream_then_loops_it(pool, features_run, tmp_path, capsys):
    out = tmp_path / "pool-loop"
    code = run_app(
        ["loop", str(pool), "--model", str(features_run), "--seconds", "3", "--out", str(out), "--formats", "wav,json"]
    )
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "pool-loop.wav").is_file() and not (tmp_path / "pool-loop.ogg").exists()
    doc = json.loads((tmp_path / "pool-loop.loop.json").read_text())
    assert doc["loudness"]["target_lufs"] == -14.0
    assert doc["loop_end_samples"] > doc["loop_start_samples"]


def test_pool_without_model_and_bad_target_are_one_line_errors(pool, tmp_path, capsys):
    assert run_app(["loop", str(pool), "--seconds", "3", "--out", str(tmp_path / "x")]) == 2
    assert "needs --model" in capsys.readouterr().err
    song = tmp_path / "s.wav"
    sf.write(song, make_song(4.0, 100, (196.0, 246.9), seed=1), RATE)
    assert run_app(["loop", str(song), "--seconds", "1", "--out", str(tmp_path / "y"), "--target", "cinema"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "console" in err and len(err.strip().splitlines()) == 1
