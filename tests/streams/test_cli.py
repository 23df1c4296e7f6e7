"""End to end through the CLI on tiny songs: chunk -> train -> stream -> eval."""

import json

import soundfile as sf
from typer.testing import CliRunner

from soundloom.cli import app


def test_cli_end_to_end(songs_dir, tmp_path):
    r = CliRunner()
    pool = tmp_path / "pool"
    res = r.invoke(app, ["chunk", str(songs_dir), "--out", str(pool), "--seconds", "1"])
    assert res.exit_code == 0, res.output
    assert "added 4 songs" in res.output
    res = r.invoke(app, ["chunk", str(songs_dir), "--out", str(pool), "--seconds", "1"])
    assert "added 0 songs" in res.output

    run = tmp_path / "run"
    res = r.invoke(
        app,
        ["train-transitions", str(pool), "--model", "contrastive", "--out", str(run), "--steps", "3", "--width", "16"],
    )
    assert res.exit_code == 0, res.output
    assert (run / "model.safetensors").exists() and json.loads((run / "config.json").read_text())["split"]["test"]

    out = tmp_path / "s.ogg"
    res = r.invoke(
        app, ["stream", str(pool), "--model", str(run), "--minutes", "0.2", "--out", str(out), "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    assert out.exists() and (tmp_path / "s.ogg.cue.json").exists() and (tmp_path / "s.ogg.timeline.png").exists()
    assert abs(sf.info(str(out)).duration - 12.0) < 1.0

    res = r.invoke(
        app,
        [
            "eval-transitions",
            str(pool),
            "--model",
            "features",
            "--model",
            str(run),
            "--json",
            "--stream-minutes",
            "0.1",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert [m["model"] for m in report["models"]] == ["features", "contrastive"]
    for m in report["models"]:
        # one test song in a 4-song pool: no other-song negatives, so that AUC is undefined
        assert report["test_songs"] == 1 and m["auc_other_song"] != m["auc_other_song"]
        assert 0.0 <= m["auc_same_song"] <= 1.0 and 0.0 < m["mrr"] <= 1.0 and m["anchors"] == 5
        assert m["seams"]["stream"]["n"] > 0 and "random_in_song" in m["seams"]


def test_cli_endless_writes_wav_stream(pool, features_run, tmp_path):
    from soundloom.streams.catalog import ChunkCatalog
    from soundloom.streams.endless import write_endless
    from soundloom.streams.index import load_pool_embeddings
    from soundloom.streams.render import RenderConfig
    from soundloom.streams.search import SearchConfig

    out = tmp_path / "live.wav"
    with ChunkCatalog(pool, create=False) as c, open(out, "wb") as f:
        emb = load_pool_embeddings(c, features_run)
        secs = write_endless(f, c, emb, SearchConfig(reuse_window=5), RenderConfig(), max_seconds=40)
    assert secs >= 40  # longer than the pool's distinct chunks allow without reuse: it keeps going
    data = out.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert (len(data) - 44) // 2 >= 40 * 22050


def test_cli_errors_are_clear(tmp_path):
    res = CliRunner().invoke(
        app, ["stream", str(tmp_path / "nope"), "--model", "features", "--out", str(tmp_path / "x.wav")]
    )
    assert res.exit_code != 0
    assert "not a pool" in str(res.exception) or "not a pool" in res.output


def test_cli_endless_stdout_is_pure_wav(pool, features_run):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "soundloom", "stream", str(pool), "--model", str(features_run), "--endless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    data = proc.stdout.read(200_000)
    proc.kill()
    proc.wait()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) == 200_000
