"""Evaluate a trained run: held-out reconstruction and classifier-scored generation.

    soundloom eval runs/digits --classifier runs/digits-classifier --json

Reference for generation: real recordings of the held-out speakers passed through the same front
end and Griffin-Lim, so generated sounds are judged against what the pipeline can render at best.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ...core.convert import fit_length
from ...core.errors import ParameterError
from ...core.io import AudioError, load_audio
from ...core.progress import ProgressCallback, null_progress
from ...core.spectral import features, features_to_magnitude
from ...data.store import FeatureStore
from ..decode import features_to_audio
from ..generator import Generator
from ..losses import mr_stft_distance
from ..models import ClassifierConfig, ModelFileError, SpectrogramClassifier, load_safetensors, load_state
from ..plots import latent_scatter, spectrogram_grid
from ..training.classifier import CLASSIFIER_CONFIG, CLASSIFIER_FILE, predict
from ..training.data import StoreDataset
from ..training.export import posterior_means
from . import metrics as M


def load_classifier(path: str | os.PathLike) -> tuple[SpectrogramClassifier, dict]:
    """Classifier and its JSON record from a directory written by ``train-classifier``."""
    path = Path(path)
    cfg_file = path / CLASSIFIER_CONFIG
    if not cfg_file.is_file():
        raise ModelFileError(cfg_file, "missing: train one with `soundloom train-classifier FEATURES --out DIR`")
    record = json.loads(cfg_file.read_text())
    model = SpectrogramClassifier(ClassifierConfig.from_dict(record["classifier"]))
    load_state(model, load_safetensors(path / CLASSIFIER_FILE, kind="classifier"), path / CLASSIFIER_FILE)
    return model.eval(), record


class _Scorer:
    """Audio ``(N, samples)`` at the model rate -> classifier probabilities and features."""

    def __init__(self, clf: SpectrogramClassifier, gen: Generator) -> None:
        self.clf, self.gen = clf, gen

    def audio(self, wav: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        feat = self.gen.normalizer.normalize(features(wav, self.gen.spec)).float()
        return self.features(feat)

    def features(self, feat: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        probs, emb = predict(self.clf, feat)
        return probs.numpy(), emb.numpy()


def _render(gen: Generator, feat: torch.Tensor, iters: int, chunk: int = 128) -> torch.Tensor:
    """Batched Griffin-Lim of normalised features ``(N, rows, frames)`` -> ``(N, samples)`` (no levelling)."""
    return torch.cat(
        [
            features_to_audio(feat[i : i + chunk], gen.normalizer, gen.spec, gen.n_samples, iters)
            for i in range(0, len(feat), chunk)
        ]
    )


@torch.no_grad()
def reconstruction_report(
    gen: Generator,
    store: FeatureStore,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    label_key: str | None,
    iters: int,
    max_items: int = 300,
) -> dict:
    """Held-out reconstruction: MSE vs the dataset-mean baseline, LSD (dB), SC, MR-STFT."""
    model = gen.model
    labels = gen.labels
    x_val = torch.from_numpy(store.normalized(np.sort(val_rows)))
    ds = StoreDataset(store, np.sort(val_rows), label_key, labels, use_pitch=bool(model.cfg.n_pitches))
    lab = torch.tensor([ds[i][1] for i in range(len(ds))])
    pit = torch.tensor([ds[i][2] for i in range(len(ds))])
    use_lab = lab if model.label_conditioned else None
    use_pit = pit if model.pitch_conditioned else None
    recon = torch.cat(
        [
            model(
                x_val[i : i + 256],
                None if use_lab is None else use_lab[i : i + 256],
                None if use_pit is None else use_pit[i : i + 256],
                sample=False,
            )[0]
            for i in range(0, len(x_val), 256)
        ]
    )
    mean_spec = torch.from_numpy(store.normalized(np.sort(train_rows)).mean(axis=0))
    mse = float(M.mse(recon, x_val).mean())
    baseline = float(M.mse(mean_spec.expand_as(x_val), x_val).mean())
    db_ref, db_rec = gen.normalizer.denormalize(x_val), gen.normalizer.denormalize(recon)
    lsd = float(M.log_spectral_distance(db_ref, db_rec).mean())
    mag_ref, mag_rec = features_to_magnitude(db_ref, gen.spec), features_to_magnitude(db_rec, gen.spec)
    sc = float(M.spectral_convergence(mag_ref, mag_rec).mean())
    # MR-STFT against the original recordings (when their files are readable), for a subset.
    pick = np.sort(val_rows)[:max_items]
    originals = []
    for row in pick:
        try:
            wav, _ = load_audio(store.items[int(row)]["path"], store.sample_rate)
            originals.append(fit_length(wav, store.n_samples))
        except (AudioError, KeyError, OSError):
            originals = []
            break
    out = {
        "items": int(len(val_rows)),
        "mse": mse,
        "mse_dataset_mean_baseline": baseline,
        "mse_ratio_to_baseline": mse / baseline,
        "lsd_db": lsd,
        "spectral_convergence": sc,
    }
    if originals:
        orig = torch.from_numpy(np.stack(originals))
        wav_rec = _render(gen, recon[: len(pick)], iters)
        wav_ref = _render(gen, x_val[: len(pick)], iters)
        out["mr_stft"] = float(mr_stft_distance(orig, wav_rec, store.sample_rate).mean())
        out["mr_stft_phase_reconstruction_floor"] = float(mr_stft_distance(orig, wav_ref, store.sample_rate).mean())
    return out


def _per_label(feats: np.ndarray, labels: np.ndarray, n_labels: int) -> list[float]:
    return [M.mean_pairwise_distance(feats[labels == c]) for c in range(n_labels)]


def evaluate_run(
    run_dir: str | os.PathLike,
    classifier_dir: str | os.PathLike,
    features_path: str | None = None,
    temperatures: tuple[float, ...] = (1.0,),
    prior: str = "fitted",
    n_per_label: int | None = None,
    griffin_lim_iters: int = 32,
    seed: int = 0,
    plots: bool = True,
    progress: ProgressCallback = null_progress,
) -> dict:
    """The full report as a dict (what ``soundloom eval --json`` prints)."""
    gen = Generator.from_run(run_dir, griffin_lim_iters=griffin_lim_iters, level="none")
    clf, clf_record = load_classifier(classifier_dir)
    info = gen.info
    store = FeatureStore.open(features_path or info["store"])
    label_key = info.get("label_key")
    groups = info.get("group_key")
    val_groups = set(info.get("val_groups", []))
    if groups:
        g = np.array([str(v) for v in store.labels(groups)])
        val_rows, train_rows = (
            np.flatnonzero(np.isin(g, list(val_groups))),
            np.flatnonzero(~np.isin(g, list(val_groups))),
        )
    else:
        from ..training.data import split_store

        t = info["train"]
        sp = split_store(store, t["val_fraction"], t["seed"], None)
        train_rows, val_rows = sp.train, sp.val
    report: dict = {
        "run": str(Path(run_dir).resolve()),
        "model": gen.model.cfg.kind,
        "store": str(store.path),
        "heldout_groups": sorted(val_groups),
    }
    progress("eval: reconstruction", 0, 3)
    report["reconstruction"] = reconstruction_report(gen, store, train_rows, val_rows, label_key, griffin_lim_iters)
    clf_labels = list(clf.cfg.labels)
    if set(clf_record.get("val_groups", [])) != val_groups:
        report["warning"] = "the classifier held out other groups than the model; its scores are optimistic"
    scorer = _Scorer(clf, gen)
    lab_of = {name: i for i, name in enumerate(clf_labels)}
    y_all = np.array([lab_of.get(str(v), -1) for v in store.labels(label_key)]) if label_key else None
    x_val = torch.from_numpy(store.normalized(val_rows))
    probs_val, _ = scorer.features(x_val)
    _, emb_train = scorer.features(torch.from_numpy(store.normalized(train_rows)))
    # Reference: held-out recordings through the front end and phase reconstruction.
    progress("eval: reference", 1, 3)
    ref_probs, ref_emb = scorer.audio(_render(gen, x_val, griffin_lim_iters))
    y_val = y_all[val_rows]
    ref = {
        "items": int(len(val_rows)),
        "classifier_accuracy_real": float((probs_val.argmax(1) == y_val).mean()),
        "classifier_accuracy_phase_reconstructed": float((ref_probs.argmax(1) == y_val).mean()),
        "inception_score": M.inception_score(ref_probs),
        "frechet_distance_to_train": M.frechet_distance(ref_emb, emb_train),
    }
    ref_div = _per_label(ref_emb, y_val, len(clf_labels))
    ref["mean_pairwise_distance_per_label"] = ref_div
    report["classifier"] = {
        "dir": str(Path(classifier_dir).resolve()),
        "heldout_accuracy": clf_record.get("heldout_accuracy"),
        "heldout_groups": clf_record.get("val_groups"),
    }
    report["reference"] = ref
    report["generation"] = []
    if gen.labels != clf_labels and gen.model.label_conditioned:
        raise ParameterError(f"model labels {gen.labels} differ from the classifier's {clf_labels}")
    counts = np.bincount(y_val, minlength=len(clf_labels))
    for ti, temp in enumerate(temperatures):
        progress("eval: generation", ti, len(temperatures))
        report["generation"].append(
            _generation_at(
                gen,
                scorer,
                temp,
                prior,
                counts,
                n_per_label,
                seed,
                emb_train,
                ref,
                ref_div,
                griffin_lim_iters,
                clf_labels,
            )
        )
    if plots:
        out = Path(run_dir) / "eval"
        _plots(gen, store, train_rows, label_key, out, temperatures[0], prior, seed)
        report["plots"] = str(out)
    progress("eval: done", 3, 3)
    return report


@torch.no_grad()
def _generation_at(
    gen: Generator,
    scorer: _Scorer,
    temp: float,
    prior: str,
    counts: np.ndarray,
    n_per_label: int | None,
    seed: int,
    emb_train: np.ndarray,
    ref: dict,
    ref_div: list[float],
    iters: int,
    clf_labels: list[str],
) -> dict:
    conditioned = gen.model.label_conditioned
    feats, ys = [], []
    for c, name in enumerate(clf_labels):
        n = int(n_per_label or max(2, counts[c]))
        if not conditioned:
            continue
        z = torch.from_numpy(gen.draw_latents(n, name, temp, seed=seed + 1000 * c, prior=prior))
        lab = torch.full((n,), c) if gen.model.cfg.labels else None
        pit = torch.full((n,), 60) if gen.model.cfg.n_pitches else None
        feats.append(gen.model.decode(z, lab, pit))
        ys.append(np.full(n, c))
    if not conditioned:
        n = int(n_per_label * len(clf_labels) if n_per_label else counts.sum())
        z = torch.from_numpy(gen.draw_latents(n, None, temp, seed=seed, prior=prior))
        feats.append(gen.model.decode(z, None, None))
    probs, emb = scorer.audio(_render(gen, torch.cat(feats), iters))
    out = {
        "temperature": temp,
        "prior": prior,
        "items": int(len(probs)),
        "inception_score": M.inception_score(probs),
        "frechet_distance_to_train": M.frechet_distance(emb, emb_train),
    }
    out["frechet_ratio_to_reference"] = out["frechet_distance_to_train"] / ref["frechet_distance_to_train"]
    ndb, k = M.number_of_statistically_different_bins(emb_train, emb, k=20, seed=seed)
    out["ndb"], out["ndb_bins"] = ndb, k
    if conditioned:
        y = np.concatenate(ys)
        out["conditioned_accuracy"] = float((probs.argmax(1) == y).mean())
        div = _per_label(emb, y, len(clf_labels))
        ratios = [d / r if r > 0 else float("nan") for d, r in zip(div, ref_div)]
        out["diversity_ratio_per_label"] = ratios
        out["diversity_ratio_min"] = float(np.nanmin(ratios))
        out["diversity_ratio_mean"] = float(np.nanmean(ratios))
    else:
        out["diversity"] = M.mean_pairwise_distance(emb)
    return out


@torch.no_grad()
def _plots(
    gen: Generator,
    store: FeatureStore,
    train_rows: np.ndarray,
    label_key: str | None,
    out: Path,
    temp: float,
    prior: str,
    seed: int,
) -> None:
    rows = np.sort(train_rows)[:: max(1, len(train_rows) // 1000)]
    ds = StoreDataset(store, rows, label_key, gen.labels, use_pitch=bool(gen.model.cfg.n_pitches))
    z, _, _ = posterior_means(gen.model, ds)
    names = [str(v) for v in (store.labels(label_key) if label_key else ["all"] * len(store))]
    latent_scatter(z, [names[int(r)] for r in rows], out / "latent_pca.png")
    imgs, titles = [], []
    for name in gen.labels or [None]:
        zz = torch.from_numpy(gen.draw_latents(4, name, temp, seed=seed, prior=prior))
        lab, pit = gen.conditions(name, None)
        lab = lab.expand(4) if lab is not None else None
        pit = pit.expand(4) if pit is not None else None
        imgs.append(gen.model.decode(zz, lab, pit).numpy())
        titles += [f"{name if name is not None else 'sample'} #{i}" for i in range(4)]
    spectrogram_grid(np.concatenate(imgs), titles, out / "samples_grid.png", cols=8)
