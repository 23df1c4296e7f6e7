"""Models that generalise: leave one package out, augmentation, the fallback to ``features``."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from soundloom.core.errors import DataError
from soundloom.streams.catalog import ChunkCatalog, find_songs
from soundloom.streams.chunking import ChunkConfig
from soundloom.streams.pairs import open_split, song_packages
from soundloom.streams.transitions import load_scorer
from soundloom.streams.transitions.features import FeatureScorer
from soundloom.streams.transitions.training import MelAugmentation, song_augmentation, train_transitions

from .conftest import RATE, make_song

TINY = {"contrastive": {"width": 8, "dim": 4, "frames": 8}}


@pytest.fixture(scope="module")
def package_pool(tmp_path_factory):
    """Six 4 s songs in three packages, listed in an index.csv beside them."""
    d = tmp_path_factory.mktemp("pkg")
    songs = d / "songs"
    songs.mkdir()
    rows = []
    for i in range(6):
        name = f"s{i}.wav"
        sf.write(songs / name, make_song(4.0, 90 + 9 * i, (200.0 + 40 * i, 300.0, 410.0), seed=10 + i), RATE)
        rows.append({"file": name, "package": ["alpha-music", "beta-music", "gamma"][i % 3], "title": name})
    with open(songs / "index.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["file", "package", "title"])
        w.writeheader()
        w.writerows(rows)
    with ChunkCatalog(d / "pool") as c:
        c.add_songs(find_songs(songs), ChunkConfig(method="fixed", seconds=1.0))
    return d / "pool"


def test_leave_one_package_out_split(package_pool):
    with ChunkCatalog(package_pool, create=False) as c:
        packages = song_packages(c.songs())
        split = open_split(c, holdout="beta")
        assert split["package"] == "beta-music"
        assert sorted(packages[s] for s in split["test"]) == ["beta-music", "beta-music"]
        assert not set(split["test"]) & set(split["train"] + split["val"])
        assert {packages[s] for s in split["train"] + split["val"]} == {"alpha-music", "gamma"}
        with pytest.raises(DataError, match="matches 0 of"):
            open_split(c, holdout="delta")


def test_augmentation_keeps_shape_and_neutral_is_identity():
    mel = torch.randn(64, 40) * 10 - 40
    neutral = MelAugmentation(tilt_db=0.0, shift_bands=0.0, tempo=1.0, noise_below_db=300.0)
    assert torch.allclose(neutral.apply(mel[:, :24], 24), mel[:, :24], atol=1e-3)
    aug = song_augmentation(np.random.default_rng(0), 64)
    out = aug.apply(mel[:, : aug.span(24)], 24)
    assert out.shape == (64, 24) and torch.isfinite(out).all()
    assert not torch.allclose(out, mel[:, :24], atol=0.5)


def test_fallback_to_features_is_recorded_and_loaded(package_pool, tmp_path):
    """A 1-step model: the run records whether it beat features on the validation songs and loads accordingly;
    a run marked as falling back loads the saved features scorer. (One training run: about 10 s, most of
    it Lightning's start-up; --no-fallback is covered by test_registry's toy run.)"""
    run = tmp_path / "run"
    cfg = train_transitions(package_pool, "contrastive", run, steps=1, model_kwargs=TINY["contrastive"])
    m = cfg["metrics"]
    assert {"val_mrr", "val_mrr_features"} <= set(m)
    fell_back = m["val_mrr"] <= m["val_mrr_features"]
    assert (cfg.get("fallback") == "features") == fell_back == (run / "features" / "config.json").exists()
    assert isinstance(load_scorer(run), FeatureScorer) == fell_back
    if not fell_back:  # mark it as training does when the learned model loses
        from soundloom.streams.transitions import build_scorer

        build_scorer("features", sample_rate=RATE).save(run / "features")
        (run / "config.json").write_text(json.dumps({**cfg, "fallback": "features"}))
        assert isinstance(load_scorer(run), FeatureScorer)


def test_holdout_run_and_eval_use_the_package(package_pool, tmp_path):
    from soundloom.streams.transitions.evaluation import evaluate_runs

    cfg = train_transitions(
        package_pool, "features", tmp_path / "f", holdout_package="gamma", model_kwargs={}, fallback=True
    )
    assert cfg["holdout_package"] == "gamma"
    report = evaluate_runs(package_pool, ["features", str(tmp_path / "f")], stream_minutes=0.0)
    assert report["holdout_package"] == "gamma" and report["test_songs"] == 2


def test_cpu_budget_stops_training_and_is_recorded(package_pool, tmp_path):
    """--cpu-minutes: a run with room for 100000 steps and an hour of wall clock stops once the process
    has used its CPU budget (0.6 s), is saved, and records its steps and CPU seconds."""
    cfg = train_transitions(
        package_pool,
        "contrastive",
        tmp_path / "run",
        steps=100_000,
        max_minutes=60.0,
        cpu_minutes=0.01,
        model_kwargs=TINY["contrastive"],
        fallback=False,
    )
    m = cfg["metrics"]
    assert 1 <= m["steps"] < 100_000
    assert 0.6 <= m["cpu_seconds"] < 30.0 and m["cpu_minutes_budget"] == 0.01
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_fusion_takes_the_contrastive_part_of_a_run_that_never_saw_its_test_songs(package_pool, tmp_path):
    """--contrastive-from: the part is taken as trained (its steps recorded); a run that trained on the
    new run's test songs is refused."""
    from soundloom.core.errors import ParameterError

    src = train_transitions(
        package_pool, "contrastive", tmp_path / "c", steps=2, holdout_package="gamma", model_kwargs=TINY["contrastive"]
    )
    cfg = train_transitions(
        package_pool, "fusion", tmp_path / "f", holdout_package="gamma", contrastive_from=tmp_path / "c", fallback=False
    )
    assert cfg["metrics"]["contrastive_from"] == str(tmp_path / "c")
    assert cfg["metrics"]["steps"] == src["metrics"]["steps"]
    fusion, part = load_scorer(tmp_path / "f"), load_scorer(tmp_path / "c")
    for k, v in part.state_dict().items():
        assert torch.equal(fusion.contrastive.state_dict()[k], v)
    with pytest.raises(ParameterError, match="was trained on 2 of this run's test songs"):
        train_transitions(
            package_pool, "fusion", tmp_path / "g", holdout_package="beta", contrastive_from=tmp_path / "c"
        )
