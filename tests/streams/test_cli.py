"""End to end through the CLI on tiny songs: chunk -> train -> stream -> eval."""

import json

import pytest
import soundfile as sf
from typer.testing import CliRunner

from soundloom.cli import app
from soundloom.cli.app import run_app


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stream", "{tmp}/nope", "--model", "features", "--out", "{tmp}/x.wav"], "{tmp}/nope: not a pool"),
        (["stream", "{pool}", "--model", "{tmp}/no-run", "--out", "{tmp}/x.wav"], "{tmp}/no-run: not a transition run"),
        (["stream", "{pool}", "--model", "features"], "give --out FILE or --endless"),
        (["stream", "{pool}", "--model", "features", "--method", "astar", "--out", "{tmp}/x.wav"], "'astar'"),
        (["train-transitions", "{pool}", "--model", "cnn-lstm", "--width", "8", "--out", "{tmp}/r"], "--width does"),
        (["train-transitions", "{pool}", "--model", "transformer", "--out", "{tmp}/r"], "unknown transition model"),
    ],
)
def test_cli_errors_are_one_line(pool, tmp_path, capsys, args, message):
    """Each user error is a SoundloomError kind that run_app prints as one line (status 2, no traceback)."""
    fill = lambda x: x.format(tmp=tmp_path, pool=pool)  # noqa: E731
    assert run_app([fill(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fill(message) in err and "\n" not in err and "Traceback" not in err


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


def test_train_transitions_prints_no_lightning_chatter(pool, tmp_path):
    """Lightning's banners and tips go to the real stderr through its loggers: only a subprocess sees them."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "soundloom", "train-transitions", str(pool), "--model", "contrastive"]
    cmd += ["--out", str(tmp_path / "run"), "--steps", "3", "--width", "16", "--no-fallback"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    for noise in ("GPU available", "TPU available", "Tip:", "LeafSpec", "weights_only", "Warning", "warn("):
        assert noise not in said, said
