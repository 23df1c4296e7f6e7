"""A user's `soundloom train` shows our progress and result, not Lightning's banners, tips or warnings."""

from __future__ import annotations

import subprocess
import sys
import warnings

from soundloom.sounds.training import TrainConfig, train


def _cfg(store) -> TrainConfig:
    return TrainConfig(
        features=str(store), epochs=1, batch_size=8, latent_dim=2, channels=[4, 8], sample_items=0, checkpoint_every=2
    )


NOISE = (
    "Tip:",
    "GPU available",
    "TPU available",
    "weights_only",
    "Checkpoint directory",
    "Warning",
    "deprecated",
    "`Trainer.fit` stopped",
)


def test_cli_train_resume_prints_no_lightning_chatter(tiny_store, tmp_path):
    # Resuming shows every kind of chatter (banners, tips, the checkpoint-folder warning, checkpoint
    # loading and saving). A subprocess, as a user runs it: Lightning's log handlers hold the real stderr.
    run = tmp_path / "run"
    train(_cfg(tiny_store), run, progress_bar=False)
    code = "import sys; from soundloom.cli import main; sys.argv[0] = 'soundloom'; main()"
    res = subprocess.run(
        [sys.executable, "-c", code, "train", str(tiny_store), "--out", str(run), "--epochs", "2", "--resume"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = res.stdout + res.stderr
    assert res.returncode == 0 and "trained " in text and " in " in text and "Epoch 1/1" in text, text
    assert [n for n in NOISE if n in text] == [], text


def test_train_raises_no_weights_only_or_noise_warning(tiny_store, tmp_path):
    cfg = TrainConfig(
        features=str(tiny_store),
        epochs=1,
        batch_size=8,
        latent_dim=2,
        channels=[4, 8],
        sample_items=0,
        checkpoint_every=2,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, tmp_path / "run", progress_bar=False)
        train(TrainConfig.for_resume(tmp_path / "run", epochs=2), tmp_path / "run", resume=True, progress_bar=False)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "weights_only" in m or "LeafSpec" in m or "Checkpoint directory" in m], messages
