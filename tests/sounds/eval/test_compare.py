"""The judge wired into runs: `eval` in two spaces, `compare` across runs, pitch accuracy of a pitched run.

Runs are tiny cvaes trained here on synthetic tones; a "broken" run is the same model trained for
0 epochs (its decoder never learned), which the fixed space must rank below the trained one.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from soundloom.core.io import write_audio
from soundloom.core.spectral import SpectrogramConfig, features
from soundloom.data.stats import Normalizer
from soundloom.data.store import write_store
from soundloom.sounds.evaluation.compare import compare_runs, table_lines, training_progress
from soundloom.sounds.evaluation.judge import _conditions
from soundloom.sounds.training import TrainConfig, train
from soundloom.sounds.training.classifier import train_classifier
from tests.sounds.models.synth_store import make_store


def _train(store, out, epochs: int):
    cfg = TrainConfig(
        features=str(store),
        model="cvae",
        epochs=epochs,
        batch_size=8,
        latent_dim=3,
        channels=[4, 8],
        warmup_steps=4,
        sample_items=0,
        val_fraction=0.25,
    )
    return train(cfg, out, progress_bar=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained and a broken (0 epochs) cvae on 8 speakers x 3 takes x 3 tones, and a classifier."""
    root = tmp_path_factory.mktemp("compare")
    store = make_store(root, speakers=8, kind="mel")
    trained = _train(store, root / "trained", epochs=8)
    broken = _train(store, root / "broken", epochs=0)
    train_classifier(store, root / "clf", epochs=6, batch_size=8, val_fraction=0.25)
    return SimpleNamespace(store=store, trained=trained, broken=broken, clf=root / "clf")


def test_compare_has_a_row_per_run_and_ranks_the_broken_run_below(runs):
    result = compare_runs([runs.trained, runs.broken], runs.clf, griffin_lim_iters=8, speed_items=4)
    rows = result["rows"]
    assert [r["name"] for r in rows] == ["trained", "broken"]
    good, bad = rows
    # The same reference for both: held-out speakers of the first run, split by speaker for baselines.
    assert result["reference"]["baseline_split"] == "by group" and len(result["reference"]["heldout_groups"]) == 2
    assert good["fixed_fd_ratio"] < bad["fixed_fd_ratio"]
    assert good["fixed_precision"] >= bad["fixed_precision"]
    assert good["parameters"] == bad["parameters"] > 0
    assert good["train_seconds"] > 0 and good["train_steps"] > 0
    assert bad["train_seconds"] is None and bad["train_steps"] is None  # 0 epochs wrote no metrics row
    assert all(r["audio_s_per_cpu_s"] > 0 and 0 <= r["accuracy"] <= 1 for r in rows)
    assert all(r["classifier_fd_ratio"] is not None and r["pitch_accuracy"] is None for r in rows)
    assert good["items"] == 18  # as many per label as held-out real (2 speakers x 3 takes)
    lines = table_lines(result)
    assert lines[0].split()[:3] == ["run", "kind", "params"] and "pitch" not in lines[0]
    assert lines[2].startswith("trained") and lines[3].startswith("broken")


def test_compare_cli_json_and_table(runs):
    runner = CliRunner()
    from soundloom.cli import app

    common = ["--classifier", str(runs.clf), "--griffin-lim-iters", "4", "--speed-items", "2", "--n-per-label", "4"]
    res = runner.invoke(app, ["compare", str(runs.trained), str(runs.broken), "--json", *common])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["rows"]
    assert len(rows) == 2 and rows[0]["items"] == 12 and rows[0]["model"] == "cvae"
    res = runner.invoke(app, ["compare", str(runs.trained), *common])
    assert res.exit_code == 0, res.output
    assert "FD ratio" in res.output and "trained" in res.output and "reference:" in res.output


def test_eval_reports_both_spaces_weakest_classes_and_meanings(runs):
    from soundloom.cli import app
    from soundloom.sounds.evaluation.report import describe, evaluate_run

    report = evaluate_run(runs.trained, runs.clf, temperatures=(0.5, 1.0), griffin_lim_iters=4, n_per_label=4)
    assert [g["temperature"] for g in report["generation"]] == [0.5, 1.0]
    assert report["classifier"]["heldout_groups"] == report["heldout_groups"] and "warning" not in report["classifier"]
    g = report["generation"][0]
    s = g["summary"]
    assert g["items"] == 12 and g["labels_from"] == "asked" and 0 <= s["accuracy"] <= 1
    assert s["accuracy_weakest"]["class"] in {"a", "b", "c"}
    for key in ("fixed_diversity_weakest", "fixed_recall_weakest", "spectral_floor_weakest"):
        assert s[key]["class"] in {"a", "b", "c"}, key
    assert set(g["fixed_space"]["spectral_floor"]["per_class"]) == {"a", "b", "c"}
    assert g["fixed_space"]["frechet"]["grouped"] and g["classifier_space"]["frechet"]["grouped"]
    assert np.isfinite(s["fixed_fd_ratio"]) and np.isfinite(s["classifier_fd_ratio"]) and g["pitch"] is None
    text = "\n".join(describe(report))
    assert "fixed FD ratio" in text and "classifier space" in text and "spectral floor" in text
    assert s["spectral_floor_raw_weakest"]["class"] in {"a", "b", "c"}  # the files are read again as prepare cut them
    assert "against the recorded clips" in text
    # The floor rests on every item of each class (24 a class here, fewer than FLOOR_PER_CLASS), held-out ones too.
    assert report["reference"]["floor_items"] == 72 and report["reference"]["floor_heldout_items"] == 18
    assert all(v["n_real"] == 24 for v in g["fixed_space"]["spectral_floor"]["per_class"].values())
    assert "(24 real clips)" in text
    assert "np.str_" not in text
    assert all(grp in text for grp in report["heldout_groups"])  # says which groups were held out
    res = CliRunner().invoke(app, ["eval", str(runs.trained), "--griffin-lim-iters", "2", "--n-per-label", "3"])
    assert res.exit_code == 0, res.output
    assert "no classifier" in res.output and "classifier space" not in res.output  # no RUN/classifier
    assert "fixed FD ratio" in res.output


def test_train_classifier_cli_names_the_held_out_groups(runs, tmp_path):
    from soundloom.cli import app

    args = ["train-classifier", str(runs.store), "--out", str(tmp_path / "c"), "--epochs", "1", "--batch-size", "8"]
    res = CliRunner().invoke(app, [*args, "--val-fraction", "0.25"])
    assert res.exit_code == 0, res.output
    groups = json.loads((tmp_path / "c" / "classifier.json").read_text())["val_groups"]
    assert len(groups) == 2 and all(g in res.output for g in groups) and "speaker" in res.output
    res = CliRunner().invoke(app, [*args, "--group-key", "none", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0 and "random item split" in res.output, res.output


def test_every_registered_kind_is_judged_through_its_generator(runs, tmp_path):
    """Each kind at tiny capacity (1 epoch; the matrix's settings) in one compare, and eval on a code kind
    and a waveform kind: the judge reaches every kind through the Generator, never its internals.
    Slow (~20 CPU-s) because it trains every kind; it is the one guard of eval/compare over the zoo."""
    from soundloom.sounds.evaluation.report import evaluate_run
    from soundloom.sounds.models import kind_names
    from tests.sounds.test_config_matrix import MATRIX

    made: dict = {"cvae": runs.trained}

    def run_of(kind: str):
        if kind not in made:
            overrides, needs, option = MATRIX[kind]
            options = dict(overrides.get("model_options", {}))
            if needs:
                options[option] = str(run_of(needs))
            cfg = TrainConfig(
                features=str(runs.store),
                model=kind,
                epochs=1,
                batch_size=8,
                warmup_steps=2,
                sample_items=0,
                val_fraction=0.25,
                **{**overrides, "model_options": options},
            )
            made[kind] = train(cfg, tmp_path / kind, progress_bar=False)
        return made[kind]

    kinds = ["cvae"] + sorted(set(kind_names()) - {"cvae"})
    result = compare_runs([run_of(k) for k in kinds], runs.clf, n_per_label=3, griffin_lim_iters=2, speed_items=2)
    assert [r["model"] for r in result["rows"]] == kinds
    for r in result["rows"]:
        assert np.isfinite(r["fixed_fd_ratio"]) and r["audio_s_per_cpu_s"] > 0 and r["parameters"] > 0, r["model"]
    for kind in ("vqvae", "wave-vae"):
        report = evaluate_run(run_of(kind), runs.clf, griffin_lim_iters=2, n_per_label=3)
        assert report["reconstruction"]["items"] > 0 and np.isfinite(report["reconstruction"]["mse"]), kind
        assert np.isfinite(report["generation"][0]["summary"]["fixed_fd_ratio"]), kind
        assert (run_of(kind) / "eval" / "samples_grid.png").is_file(), kind


def test_the_floor_set_takes_held_out_items_first_and_caps_each_class():
    from soundloom.sounds.evaluation.judge import floor_rows

    store = type("S", (), {"labels": lambda self, key: ["a"] * 10 + ["b"] * 3, "__len__": lambda self: 13})()
    picked = floor_rows(store, np.array([8, 9, 12]), "label", per_class=4, seed=1)
    a, b = [r for r in picked if r < 10], [r for r in picked if r >= 10]
    assert len(a) == 4 and {8, 9} <= set(a) and b == [10, 11, 12]  # held out first; a small class whole
    assert list(picked) == sorted(picked) and list(floor_rows(store, np.array([8, 9, 12]), "label", 4, 1)) == list(
        picked
    )
    assert len(floor_rows(store, np.array([0]), None, per_class=5)) == 5  # one class without labels


def test_conditions_follow_the_reference_labels_and_pitches():
    gen = SimpleNamespace(labels=["a", "b"], model=SimpleNamespace(label_conditioned=True))
    ref = SimpleNamespace(labels=["a", "a", "a", "b"], pitches=np.array([60, 62, 60, 70]))
    assert sorted(_conditions(gen, ref, None)) == [("a", 60, 2), ("a", 62, 1), ("b", 70, 2)]
    assert sorted(_conditions(gen, ref, 4)) == [("a", 60, 3), ("a", 62, 1), ("b", 70, 4)]
    plain = SimpleNamespace(labels=[], model=SimpleNamespace(label_conditioned=False))
    assert _conditions(plain, SimpleNamespace(labels=["a", "b", "b"], pitches=None), None) == [(None, None, 3)]


def test_training_progress_reads_the_last_metrics_row(tmp_path):
    assert training_progress(tmp_path) == (None, None)
    (tmp_path / "metrics.csv").write_text("epoch,step,elapsed_s\n0,3,1.5\n1,6,2.75\n")
    assert training_progress(tmp_path) == (2.75, 6)


SR, N = 8000, 2048
PITCHES = (57, 64, 69, 76)


def _note(midi: int, speaker: int, take: int) -> np.ndarray:
    """A harmonic note exactly at ``midi``; the speaker sets the brightness, the take the decay."""
    t = np.arange(N) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    wav = sum(np.sin(2 * np.pi * h * f0 * t) * (0.5 + 0.1 * speaker) ** (h - 1) for h in (1, 2, 3))
    return (0.3 * wav * np.exp(-t * (2 + take))).astype(np.float32)


def test_pitched_run_reports_pitch_accuracy(tmp_path):
    from soundloom.sounds.evaluation.report import describe, evaluate_run

    cfg = SpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=64, kind="db")
    wavs, items = [], []
    for family in ("x", "y"):
        for s in range(4):
            for k in range(2):
                for p in PITCHES:
                    wav = _note(p, s + (4 if family == "y" else 0), k)
                    path = write_audio(tmp_path / "audio" / f"{family}_{s}_{k}_{p}.wav", wav, SR)
                    wavs.append(wav)
                    labels = {"label": family, "instrument": f"{family}{s}", "pitch": str(p)}
                    items.append({"id": path.stem, "path": str(path), "labels": labels})
    feats = features(torch.from_numpy(np.stack(wavs)), cfg).numpy()
    store = write_store(
        tmp_path / "store",
        feats,
        items,
        {"sample_rate": SR, "n_samples": N, "spectrogram": cfg.to_dict()},
        Normalizer.fit(feats),
    )
    run = _train(store, tmp_path / "run", epochs=1)
    report = evaluate_run(run, None, griffin_lim_iters=16, n_per_label=4, plots=False, continuation_items=3)
    assert report["reference"]["pitched"] and "classifier" not in report
    g = report["generation"][0]
    p = g["pitch"]
    assert p["n"] == g["items"] == 8 and 0 <= p["accuracy"] <= 1
    assert p["reference_accuracy"] >= 0.9  # resynthesised real notes keep their pitch: the judge can tell
    assert g["summary"]["pitch_accuracy"] == p["accuracy"] and p["weakest"]["class"] in {"x", "y"}
    cont = report["continuation"]
    assert cont["items"] == 3 and len(cont["per_pair"]) == 3 and 0 <= cont["no_overlap"] <= 3
    assert cont["median_cents"] is None or cont["median_cents"] >= 0
    text = "\n".join(describe(report))
    assert "pitch accuracy" in text and "continuation f0 error" in text


def test_classifier_record_warns_when_the_classifier_heard_the_reference_groups(tmp_path):
    from soundloom.sounds.evaluation.report import classifier_record

    record = {"heldout_accuracy": 0.9, "group_key": "speaker", "val_groups": ["s-1", "s-2"]}
    assert "warning" not in classifier_record(tmp_path, record, ["s-2", "s-1"])
    assert "optimistic" in classifier_record(tmp_path, record, ["s-1", "s-3"])["warning"]
