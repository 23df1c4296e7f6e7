"""The soundscape commands: synth-ambient, soundscape (a tiny run's events over the ambient pool), eval-soundscape."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from soundloom.scapes.bed import Bed
from soundloom.scapes.events import SynthEvents
from soundloom.scapes.soundscape import Soundscape
from soundloom.scapes.synthetic import CHIME_LABELS, chime
from tests.sounds.cli import run_cli

SR = 16000


def test_synth_ambient_writes_songs_and_class_folders(tmp_path):
    code, out = run_cli("synth-ambient", tmp_path, "--songs", 2, "--song-seconds", 3, "--per-class", 1)
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "songs").glob("*.wav")) == [
        "ambient_000_pad.wav",
        "ambient_001_drone.wav",
    ]
    assert sorted(p.parent.name for p in (tmp_path / "oneshots").glob("*/*.wav")) == ["bird", "chime", "drop"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--minutes", "1", "--endless"], "--minutes M (with --out FILE) or --endless"),
        (["--minutes", "1"], "--minutes needs --out FILE"),
        (["--minutes", "1", "--out", "x.wav", "--mood", "furious"], "unknown mood"),
    ],
)
def test_soundscape_usage_errors_are_one_line(tmp_path, args, message):
    code, out = run_cli("soundscape", "--bed", tmp_path, "--events", tmp_path, *args)
    assert code == 2 and message in out and out.count("\n") == 1, out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A two-epoch cvae on a 36-item store of labels a/b/c (the generate tests' recipe): about 10 CPU-s."""
    from soundloom.sounds.training import TrainConfig, train
    from tests.sounds.models.synth_store import make_store

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen")
    cfg = TrainConfig(
        features=str(make_store(root)),
        model="cvae",
        epochs=2,
        batch_size=8,
        latent_dim=3,
        channels=[4, 8],
        warmup_steps=4,
        sample_items=0,
        val_fraction=0.25,
    )
    return train(cfg, root / "run", progress_bar=False)


def test_soundscape_command_renders_a_file_and_score_from_a_run(ambient_pool, tiny_run, tmp_path):
    out = tmp_path / "scape.ogg"
    code, text = run_cli(
        "soundscape", "--bed", ambient_pool, "--events", f"{tiny_run}:a,c", "--mood", "energetic",
        "--minutes", "0.5", "--out", out, "--sample-rate", SR, "--layout", "binaural", "--seed", 3,
    )  # fmt: skip
    assert code == 0, text
    info = sf.info(out)
    assert (info.samplerate, info.channels) == (SR, 2) and abs(info.duration - 30.0) < 0.05
    score = json.loads((tmp_path / "scape.ogg.score.json").read_text())
    assert score["events"] and {e["label"] for e in score["events"]} <= {"a", "c"}
    assert score["layout"] == "binaural" and score["bed"]["joins"]


def test_eval_soundscape_reports_the_measures_and_the_bed_seams(ambient_pool, tmp_path):
    bed = Bed.open(ambient_pool, "features", mood="calm", sample_rate=SR)
    try:
        with Soundscape(bed, [SynthEvents("chimes", CHIME_LABELS, chime, SR)], "calm", "stereo", SR) as scape:
            written = scape.render(0.5, tmp_path / "calm.wav")
    finally:
        bed.close()
    code, text = run_cli("eval-soundscape", written["audio"], "--json", "--reference", 50)
    assert code == 0, text
    result = json.loads(text)
    assert result["duration_s"] == 30.0 and result["collisions"] == 0 and result["mood_energy"] == 0.0
    assert result["true_peak_dbtp"] <= -1.0
    seams = result["bed_seams"]
    assert seams["joins"] >= 15 and 0.0 <= seams["pass_rate"] <= 1.0
    assert seams["reference_positions"] == 50 and 0.0 <= seams["random_in_song_pass_rate"] <= 1.0
    code, text = run_cli("eval-soundscape", tmp_path / "missing.wav")
    assert code == 2 and text.startswith("error:")
