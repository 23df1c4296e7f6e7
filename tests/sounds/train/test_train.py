"""Training on a tiny synthetic store: run-dir artefacts, resume, determinism, split, classifier."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml

from soundloom.core.cputime import process_cpu_seconds
from soundloom.core.errors import ModelFileError, ParameterError
from soundloom.data.store import FeatureStore
from soundloom.sounds.models import load_safetensors
from soundloom.sounds.training import TrainConfig, train
from soundloom.sounds.training.callbacks import CpuShare
from soundloom.sounds.training.classifier import train_classifier
from soundloom.sounds.training.data import split_store
from tests.sounds.cli import run_cli


def _cfg(store, **kw) -> TrainConfig:
    base = dict(
        features=str(store),
        model="cvae",
        epochs=2,
        batch_size=8,
        latent_dim=3,
        channels=[4, 8],
        warmup_steps=4,
        checkpoint_every=3,
        sample_items=1,
        griffin_lim_iters=2,
        val_fraction=0.25,
    )
    return TrainConfig(**{**base, **kw})


def test_run_directory_holds_every_artefact(tiny_store, tmp_path):
    run = train(_cfg(tiny_store), tmp_path / "run", progress_bar=False)
    for name in (
        "config.yaml",
        "metrics.csv",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "plots/loss.png",
        "model.safetensors",
        "model.json",
        "stats.json",
        "samples/epoch_000/spectrograms.png",
        "samples/epoch_001/recon_0.wav",
        "samples/epoch_001/prior_0.wav",
    ):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for key in ("train/recon", "train/kl", "val/recon", "val/kl", "val/elbo"):
        assert np.isfinite(float(rows[-1][key])), key
    info = json.loads((run / "model.json").read_text())
    assert info["model"]["labels"] == ["a", "b", "c"] and info["group_key"] == "speaker"
    assert info["val_groups"] == ["s-3"] or len(info["val_groups"]) == 1
    tensors = load_safetensors(run / "model.safetensors", kind="cvae")
    mean, weight = tensors["prior.mean"], tensors["prior.weight"]
    assert mean.shape[0] == 4 and mean.shape[-1] == 3  # three labels + pooled, latent 3
    assert torch.allclose(weight.sum(dim=1), torch.ones(4)) and tensors["prior.chol"].shape == (*mean.shape, 3)
    ckpt = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["optimizer_states"] and ckpt["global_step"] == int(rows[-1]["step"])
    with pytest.raises(ModelFileError, match="already holds a run"):
        train(_cfg(tiny_store), run, progress_bar=False)


def test_resume_continues_from_last_step(tiny_store, tmp_path):
    run = tmp_path / "run"
    train(_cfg(tiny_store, epochs=1, sample_items=0, checkpoint_every=1000), run, progress_bar=False)
    step1 = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    train(_cfg(tiny_store, epochs=3, sample_items=0, checkpoint_every=1000), run, resume=True, progress_bar=False)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert int(rows[1]["step"]) == 2 * step1 and int(rows[2]["step"]) == 3 * step1
    assert torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 3 * step1


def test_same_seed_same_weights(tiny_store, tmp_path):
    a = train(_cfg(tiny_store, epochs=1, sample_items=0), tmp_path / "a", progress_bar=False)
    b = train(_cfg(tiny_store, epochs=1, sample_items=0), tmp_path / "b", progress_bar=False)
    c = train(_cfg(tiny_store, epochs=1, sample_items=0, seed=1), tmp_path / "c", progress_bar=False)
    wa, wb, wc = (load_safetensors(r / "model.safetensors") for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa if k in wc and wa[k].shape == wc[k].shape)


def test_split_holds_out_whole_speakers(tiny_store):
    store = FeatureStore.open(tiny_store)
    split = split_store(store, 0.25, seed=0)
    speakers = np.array(store.labels("speaker"))
    assert set(speakers[split.val]) == set(split.val_groups) and len(split.val_groups) == 1
    assert not set(speakers[split.train]) & set(split.val_groups)
    assert split_store(store, 0.25, seed=0).val_groups == split.val_groups
    plain = split_store(store, 0.25, seed=0, group_key=None)
    assert len(plain.val) == 9 and len(plain.train) == 27


def test_classifier_learns_tones(tiny_store, tmp_path):
    record = train_classifier(tiny_store, tmp_path / "clf", epochs=15, batch_size=8, val_fraction=0.25)
    assert record["heldout_accuracy"] >= 0.66
    assert (tmp_path / "clf" / "classifier.safetensors").is_file()
    assert record["val_groups"] == split_store(FeatureStore.open(tiny_store), 0.25, 0).val_groups


def test_cli_train_resume_and_classifier(tiny_store, tmp_path):
    from typer.testing import CliRunner

    from soundloom.cli import app

    runner = CliRunner()
    run = tmp_path / "run"
    common = ["--batch-size", "8", "--latent", "2", "--channels", "4,8", "--val-fraction", "0.25", "--quiet"]
    res = runner.invoke(app, ["train", str(tiny_store), "--out", str(run), "--epochs", "1", "--model", "vae"] + common)
    assert res.exit_code == 0, res.output
    assert json.loads((run / "model.json").read_text())["model"]["kind"] == "vae"
    code, output = run_cli("train", tiny_store, "--out", run, "--epochs", "1", *common)
    assert code == 2 and "--resume" in output and output.count("\n") == 1
    res = runner.invoke(app, ["train", str(tiny_store), "--out", str(run), "--epochs", "2", "--resume", "--quiet"])
    assert res.exit_code == 0, res.output
    assert [r["epoch"] for r in csv.DictReader(open(run / "metrics.csv"))] == ["0", "1"]
    res = runner.invoke(
        app,
        [
            "train-classifier",
            str(tiny_store),
            "--out",
            str(tmp_path / "clf"),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--val-fraction",
            "0.25",
        ],
    )
    assert res.exit_code == 0 and "held-out accuracy" in res.output, res.output
    record = json.loads((tmp_path / "clf" / "classifier.json").read_text())
    n_val, groups = record["n_val"], record["val_groups"]
    assert f"on {n_val} held-out items" in res.output and n_val > 0
    assert (f"of {len(groups)} held-out" in res.output) == bool(record["group_key"])


def test_resume_keeps_the_runs_budgets_unless_given(tiny_store, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = _cfg(tiny_store, epochs=1, max_minutes=5.0, sample_items=0, checkpoint_every=1000)
    train(cfg, run, progress_bar=False)
    saved = TrainConfig.for_resume(run)
    cfg.model_options = {"embed_dim": 16}  # the kind's options are saved resolved, defaults included
    assert saved == cfg
    assert (
        TrainConfig.for_resume(run, epochs=3).epochs == 3 and TrainConfig.for_resume(run, epochs=3).max_minutes == 5.0
    )
    assert TrainConfig.for_resume(run, lr=cfg.lr) == cfg  # restating a run's value is fine
    with pytest.raises(ParameterError, match="lr cannot change"):
        TrainConfig.for_resume(run, lr=0.5)
    with pytest.raises(ModelFileError, match="nothing to resume"):
        TrainConfig.for_resume(tmp_path / "nowhere")
    # The CLI's defaults (--epochs 100, no --max-minutes) must not overwrite the run's own.
    seen = []
    monkeypatch.setattr("soundloom.sounds.training.train", lambda c, *a, **k: seen.append(c))
    assert run_cli("train", tiny_store, "--out", run, "--resume", "--quiet")[0] == 0
    assert seen[-1].epochs == 1 and seen[-1].max_minutes == 5.0
    assert run_cli("train", tiny_store, "--out", run, "--resume", "--epochs", "4", "--quiet")[0] == 0
    assert seen[-1].epochs == 4 and seen[-1].max_minutes == 5.0 and seen[-1].batch_size == 8
    code, output = run_cli("train", tiny_store, "--out", run, "--resume", "--lr", "0.5")
    assert code == 2 and "lr cannot change" in output
    # A run started before the long-term spectrum term existed resumes without it, whatever today's default.
    config = run / "config.yaml"
    info = yaml.safe_load(config.read_text())
    del info["train"]["spectrum_weight"]
    config.write_text(yaml.safe_dump(info, sort_keys=False))
    assert TrainConfig.for_resume(run).spectrum_weight == 0.0


def _burn(seconds: float) -> None:
    t0 = process_cpu_seconds()
    while process_cpu_seconds() - t0 < seconds:
        sum(i * i for i in range(1000))


def test_cpu_share_draws_each_job_once_then_within_its_share():
    share = CpuShare(0.5)
    assert share.due("samples") and share.due("loss")
    share.run("samples", _burn, 0.1)
    assert share.due("loss")  # a job not yet run is due whatever the others took
    assert not share.due("samples")  # 0.1 s drawn of ~0.1 s spent: over half
    _burn(0.2)
    assert share.due("samples")  # 0.1 s of ~0.3 s


def test_cli_class_weighting_is_kept_in_the_run_and_on_resume(tiny_store, tmp_path):
    run = tmp_path / "run"
    common = ["--batch-size", "8", "--latent", "2", "--channels", "4,8", "--val-fraction", "0.25", "--quiet"]
    code, output = run_cli(
        "train", tiny_store, "--out", run, "--epochs", "1", "--model", "cvae", "--class-weighting", *common
    )
    assert code == 0, output
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["class_weighting"] is True
    code, output = run_cli("train", tiny_store, "--out", run, "--epochs", "2", "--resume", "--quiet")
    assert code == 0, output
    assert (
        yaml.safe_load((run / "config.yaml").read_text())["train"]["class_weighting"] is True
    )  # not reset by the default
    plain = tmp_path / "plain"
    code, output = run_cli("train", tiny_store, "--out", plain, "--epochs", "1", "--model", "cvae", *common)
    assert code == 0 and yaml.safe_load((plain / "config.yaml").read_text())["train"]["class_weighting"] is False


def test_cli_spectrum_weight_trains_logs_the_term_and_is_kept_in_the_run(tiny_store, tmp_path):
    run = tmp_path / "run"
    common = ["--batch-size", "8", "--latent", "2", "--channels", "4,8", "--val-fraction", "0.25", "--quiet"]
    code, output = run_cli(
        "train", tiny_store, "--out", run, "--epochs", "1", "--model", "cvae", "--spectrum-weight", "0.5", *common
    )
    assert code == 0, output
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["spectrum_weight"] == 0.5
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert float(rows[-1]["train/spectrum"]) > 0 and float(rows[-1]["val/spectrum"]) > 0
    loss, recon, kl, spectrum = (float(rows[-1][f"val/{k}"]) for k in ("loss", "recon", "kl", "spectrum"))
    assert loss == pytest.approx(recon + 0.03 * kl + 0.5 * spectrum, rel=1e-4)  # validation runs at the full beta
    code, output = run_cli("train", tiny_store, "--out", run, "--epochs", "2", "--resume", "--quiet")
    assert code == 0, output  # the run's weight comes back from config.yaml; the scale from the store
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["spectrum_weight"] == 0.5
