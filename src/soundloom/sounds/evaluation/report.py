"""Evaluate a trained run: held-out reconstruction and generation judged in two spaces.

    soundloom eval runs/digits --classifier runs/digits-classifier --json

Reference for generation: real recordings of the held-out speakers passed through the same front
end and Griffin-Lim, so generated sounds are judged against what the pipeline can render at best.
The judge (:mod:`.judge`) scores them in a fixed feature space fitted on that reference only and,
given a classifier, in its embedding; :func:`describe` says in one line what each number means.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ...core.convert import fit_length
from ...core.errors import ParameterError
from ...core.progress import ProgressCallback, null_progress
from ...core.spectral import features, features_to_magnitude
from ...data.prepare import recorded_clips
from ...data.store import FeatureStore
from ..generator import Generator
from ..losses import mr_stft_distance
from ..models import ClassifierConfig, ModelFileError, SpectrogramClassifier, load_safetensors, load_state, protocol
from ..plots import latent_scatter, spectrogram_grid
from ..training.classifier import CLASSIFIER_CONFIG, CLASSIFIER_FILE, predict
from ..training.data import StoreDataset
from ..training.export import posterior_means
from . import metrics as M
from .fixed_space import FixedFeatureSpace
from .judge import (
    Reference,
    build_reference,
    continuation_contour,
    generate_like,
    judge,
    render_features,
)


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


def _originals(store: FeatureStore, rows: np.ndarray) -> list[np.ndarray] | None:
    """The recordings of store ``rows`` cut as the store cut them, or None when any is unreadable."""
    clips = recorded_clips(store, rows)
    return None if clips is None else list(clips)


def _reconstruct(
    gen: Generator, x: torch.Tensor, originals: list[np.ndarray] | None, lab: torch.Tensor, pit: torch.Tensor
) -> torch.Tensor:
    """The model's reconstruction of items as normalised features ``(N, rows, frames)``, through its latent
    (:mod:`..models.protocol`, so any kind); a waveform kind encodes the recordings and its output is analysed."""
    model = gen.model
    waveform = protocol.output(model) == "waveform"
    inputs = torch.stack([gen.model_input(w, gen.spec.sample_rate) for w in originals]) if waveform else x
    use_lab = lab if model.label_conditioned else None
    use_pit = pit if model.pitch_conditioned else None
    parts = []
    for i in range(0, len(inputs), 256):
        cut = slice(i, i + 256)
        cond = (None if use_lab is None else use_lab[cut], None if use_pit is None else use_pit[cut])
        parts.append(protocol.decode_latent(model, protocol.encode_latent(model, inputs[cut], *cond), *cond))
    out = torch.cat(parts)
    if waveform:
        out = gen.normalizer.normalize(features(out[:, : gen.n_samples].float(), gen.spec)).float()
    return out


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
    """Held-out reconstruction: MSE vs the dataset-mean baseline, LSD (dB), SC, MR-STFT.

    A waveform kind is measured on the first ``max_items`` held-out recordings (it encodes audio,
    so unreadable recordings leave nothing to measure: then ``{"items": 0, "skipped": reason}``).
    """
    model = gen.model
    rows = np.sort(val_rows)
    # MR-STFT against the original recordings (when their files are readable), for a subset.
    pick = rows[:max_items]
    originals = _originals(store, pick)
    if protocol.output(model) == "waveform":
        if originals is None:
            return {"items": 0, "skipped": "a waveform model needs the held-out recordings, and some are unreadable"}
        rows = pick
    x_val = torch.from_numpy(store.normalized(rows))
    ds = StoreDataset(store, rows, label_key, gen.labels, use_pitch=bool(model.cfg.n_pitches))
    lab = torch.tensor([ds[i][1] for i in range(len(ds))])
    pit = torch.tensor([ds[i][2] for i in range(len(ds))])
    recon = _reconstruct(gen, x_val, originals, lab, pit)
    mean_spec = torch.from_numpy(store.normalized(np.sort(train_rows)).mean(axis=0))
    mse = float(M.mse(recon, x_val).mean())
    baseline = float(M.mse(mean_spec.expand_as(x_val), x_val).mean())
    db_ref, db_rec = gen.normalizer.denormalize(x_val), gen.normalizer.denormalize(recon)
    lsd = float(M.log_spectral_distance(db_ref, db_rec).mean())
    mag_ref, mag_rec = features_to_magnitude(db_ref, gen.spec), features_to_magnitude(db_rec, gen.spec)
    sc = float(M.spectral_convergence(mag_ref, mag_rec).mean())
    out = {
        "items": int(len(rows)),
        "mse": mse,
        "mse_dataset_mean_baseline": baseline,
        "mse_ratio_to_baseline": mse / baseline,
        "lsd_db": lsd,
        "spectral_convergence": sc,
    }
    if originals:
        orig = torch.from_numpy(np.stack(originals))  # waveform kinds: their reconstruction is rendered again
        wav_rec = render_features(gen, recon[: len(pick)], iters)
        wav_ref = render_features(gen, x_val[: len(pick)], iters)
        out["mr_stft"] = float(mr_stft_distance(orig, wav_rec, store.sample_rate).mean())
        out["mr_stft_phase_reconstruction_floor"] = float(mr_stft_distance(orig, wav_ref, store.sample_rate).mean())
    return out


def split_rows(store: FeatureStore, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """The run's ``(train_rows, val_rows)``: its held-out groups, else its item split."""
    groups, val_groups = info.get("group_key"), set(info.get("val_groups", []))
    if groups:
        g = np.array([str(v) for v in store.labels(groups)])
        held = np.isin(g, list(val_groups))
        return np.flatnonzero(~held), np.flatnonzero(held)
    from ..training.data import split_store

    t = info["train"]
    sp = split_store(store, t["val_fraction"], t["seed"], None)
    return sp.train, sp.val


def classifier_scorer(classifier_dir: str | os.PathLike, gen: Generator) -> tuple[_Scorer, dict, list[str]]:
    """Scorer of audio at the run's rate by the classifier in ``classifier_dir``, its record and classes."""
    clf, record = load_classifier(classifier_dir)
    labels = list(clf.cfg.labels)
    if gen.labels != labels and gen.model.label_conditioned:
        raise ParameterError(f"model labels {gen.labels} differ from the classifier's {labels}")
    return _Scorer(clf, gen), record, labels


def classifier_record(classifier_dir: str | os.PathLike, record: dict, run_groups: list[str]) -> dict:
    """What the report says of the classifier: where, its held-out accuracy and groups, and a warning
    when it held out other groups than the run (then it has heard the reference speakers)."""
    out = {
        "dir": str(Path(classifier_dir).resolve()),
        "heldout_accuracy": record.get("heldout_accuracy"),
        "group_key": record.get("group_key"),
        "heldout_groups": record.get("val_groups"),
    }
    if sorted(record.get("val_groups", [])) != sorted(run_groups):
        out["warning"] = "the classifier held out other groups than the model; its scores are optimistic"
    return out


def evaluate_run(
    run_dir: str | os.PathLike,
    classifier_dir: str | os.PathLike | None,
    features_path: str | None = None,
    temperatures: tuple[float, ...] = (1.0,),
    prior: str = "fitted",
    n_per_label: int | None = None,
    griffin_lim_iters: int | None = None,
    seed: int = 0,
    plots: bool = True,
    progress: ProgressCallback = null_progress,
    continuation_items: int = 8,
) -> dict:
    """The full report as a dict (what ``soundloom eval --json`` prints).

    Per temperature, generated sounds are judged against the reference (held-out real items through
    the front end and Griffin-Lim) in the fixed feature space and, with ``classifier_dir``, in the
    classifier's embedding; pitch-conditioned runs also get pitch accuracy, and the f0 contour error of
    continuations of ``continuation_items`` held-out recordings (``report["continuation"]``). See :mod:`.judge`.
    """
    gen = Generator.from_run(run_dir, griffin_lim_iters=griffin_lim_iters, level="raw")
    info = gen.info
    store = FeatureStore.open(features_path or info["store"])
    label_key, group_key = info.get("label_key"), info.get("group_key")
    val_groups = sorted(info.get("val_groups", []))
    train_rows, val_rows = split_rows(store, info)
    report: dict = {
        "run": str(Path(run_dir).resolve()),
        "model": gen.model.cfg.kind,
        "store": str(store.path),
        "group_key": group_key,
        "heldout_groups": val_groups,
    }
    steps = 2 + len(temperatures)
    progress("eval: reconstruction", 0, steps)
    report["reconstruction"] = reconstruction_report(gen, store, train_rows, val_rows, label_key, griffin_lim_iters)
    progress("eval: reference", 1, steps)
    ref = build_reference(gen, store, val_rows, label_key, group_key, griffin_lim_iters, val_groups)
    space = FixedFeatureSpace().fit(list(ref.clips), ref.sample_rate)
    report["reference"] = reference_record(ref, space)
    scorer = ref_scores = None
    classes: list[str] = []
    if classifier_dir is not None:
        scorer, record, classes = classifier_scorer(classifier_dir, gen)
        report["classifier"] = classifier_record(classifier_dir, record, val_groups)
        if "warning" in report["classifier"]:
            report["warning"] = report["classifier"]["warning"]  # where readers of older reports look
        ref_scores = scorer.audio(torch.from_numpy(ref.clips))
        probs_real, _ = scorer.features(ref.features)
        report["reference"]["classifier_accuracy_real"] = _accuracy(probs_real, ref.labels, classes)
        report["reference"]["classifier_accuracy_phase_reconstructed"] = _accuracy(ref_scores[0], ref.labels, classes)
    if ref.pitches is not None:
        # Continuations of the first few held-out recordings: does the model keep the prompt's pitch going?
        picks = np.sort(val_rows)[:continuation_items]
        recordings = None if ref.raw is None else list(ref.raw[: len(picks)])  # the reference's rows are sorted too
        if recordings is not None and len(recordings):
            report["continuation"] = continuation_contour(
                gen, recordings, store.sample_rate, ref.labels[: len(picks)], ref.pitches[: len(picks)], seed=seed
            )
    report["generation"] = []
    for ti, temp in enumerate(temperatures):
        progress("eval: generation", 2 + ti, steps)
        made = generate_like(gen, ref, n_per_label, temp, seed, prior)
        result = judge(ref, made, space, scorer and scorer.audio, classes, ref_scores, seed)
        report["generation"].append({"temperature": temp, "prior": prior, **result})
    if plots:
        out = Path(run_dir) / "eval"
        _plots(gen, store, train_rows, label_key, out, temperatures[0], prior, seed)
        report["plots"] = str(out)
    progress("eval: done", steps, steps)
    return report


def _accuracy(probs: np.ndarray, labels: list[str], classes: list[str]) -> float:
    return float(np.mean([classes[i] == y for i, y in zip(probs.argmax(1), labels)]))


def reference_record(ref: Reference, space: FixedFeatureSpace) -> dict:
    """How the reference was made: items, classes, groups and the fixed space fitted on it."""
    settings = {k: v for k, v in space.to_dict().items() if k not in ("mean", "std")}
    return {
        "items": int(len(ref.clips)),
        "sample_rate": ref.sample_rate,
        "classes": sorted(set(ref.labels)),
        "group_key": ref.group_key,
        "heldout_groups": ref.heldout_groups,
        # Baselines split the reference by whole groups only when two or more are held out.
        "baseline_split": "by group" if ref.groups is not None else "by item",
        "pitched": ref.pitches is not None,
        "fixed_space": settings,
        # The spectral floor's real side: up to FLOOR_PER_CLASS items a class, held-out ones first.
        "floor_items": None if ref.floor is None else len(ref.floor.labels),
        "floor_heldout_items": None if ref.floor is None else ref.floor.heldout,
    }


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
    """``latent_pca.png`` (Gaussian feature kinds: their latents of training items) and ``samples_grid.png``
    (4 sounds per label from :meth:`Generator.sample`, shown as normalised features)."""
    if protocol.output(gen.model) == "features" and not protocol.discrete(gen.model):
        rows = np.sort(train_rows)[:: max(1, len(train_rows) // 1000)]
        ds = StoreDataset(store, rows, label_key, gen.labels, use_pitch=bool(gen.model.cfg.n_pitches))
        z, _, _ = posterior_means(gen.model, ds)
        names = [str(v) for v in (store.labels(label_key) if label_key else ["all"] * len(store))]
        latent_scatter(z, [names[int(r)] for r in rows], out / "latent_pca.png")
    imgs, titles = [], []
    options = {} if prior == "fitted" else {"prior": prior}
    for name in (gen.labels if gen.model.label_conditioned else None) or [None]:
        sounds = gen.sample(4, label=name, temperature=temp, seed=seed, **options)
        wav = torch.from_numpy(np.stack([fit_length(s.audio, gen.n_samples) for s in sounds]))
        imgs.append(gen.normalizer.normalize(features(wav, gen.spec)).float().numpy())
        titles += [f"{name if name is not None else 'sample'} #{i}" for i in range(4)]
    spectrogram_grid(np.concatenate(imgs), titles, out / "samples_grid.png", cols=8)


def _class(w: dict | None, key: str = "value") -> str:
    return "" if not w else f"; weakest {str(w['class'])!r} {w[key]:.2f}"


def describe(report: dict) -> list[str]:
    """The report of :func:`evaluate_run` as lines of text, each saying what its numbers mean."""
    r, ref = report["reconstruction"], report["reference"]
    lines = [
        f"reconstruction: MSE {r['mse']:.4f} vs {r['mse_dataset_mean_baseline']:.4f} for the dataset mean "
        f"(ratio {r['mse_ratio_to_baseline']:.3f}, < 1 beats the mean), LSD {r['lsd_db']:.2f} dB, "
        f"SC {r['spectral_convergence']:.3f} (held-out items through the model; lower is better)",
        f"reference: {ref['items']} held-out real items rendered through the front end + Griffin-Lim"
        + (f" ({ref['group_key']} held out: {', '.join(ref['heldout_groups'])})" if ref["heldout_groups"] else "")
        + f"; fixed space fitted on them only; real-vs-real baselines split {ref['baseline_split']}",
    ]
    clf = report.get("classifier")
    if clf:
        groups = clf.get("heldout_groups") or []
        lines.append(
            f"classifier: trained without {clf.get('group_key') or 'the held-out items (a random item split)'}"
            + (f" {', '.join(groups)}" if groups else "")
            + f", accuracy there {clf['heldout_accuracy']:.3f}; on the reference "
            f"{ref['classifier_accuracy_real']:.3f} real, {ref['classifier_accuracy_phase_reconstructed']:.3f} "
            "after resynthesis (the ceiling for generated sounds)"
            + (f"  WARNING: {clf['warning']}" if clf.get("warning") else "")
        )
    cont = report.get("continuation")
    if cont and "skipped" not in cont:
        median = "-" if cont["median_cents"] is None else f"{cont['median_cents']:.0f}"
        lines.append(
            f"continuation f0 error {median} cents (median over {cont['items'] - cont['no_overlap']} of "
            f"{cont['items']} continuations voiced with their truth): the first {cont['prompt_fraction']:.0%} of a "
            "held-out recording prompts the model; pYIN compares what it adds with the rest of the recording"
        )
    for g in report["generation"]:
        s = g["summary"]
        f = g["fixed_space"]
        base = f["precision_recall"]["baseline"]
        lines.append(
            f"T={g['temperature']} ({g['items']} sounds, {g['audio_s_per_cpu_s']:.1f} s of audio per CPU second):"
        )
        if s.get("accuracy") is not None:
            lines.append(
                f"  accuracy {s['accuracy']:.3f}: the classifier hears the asked class{_class(s['accuracy_weakest'])}"
            )
        lines += [
            f"  fixed FD ratio {s['fixed_fd_ratio']:.2f}: FD(generated, real) / FD(real, real) at equal sizes "
            "(1 = as close as unseen real data)",
            f"  fixed precision {s['fixed_precision']:.2f} / recall {s['fixed_recall']:.2f} (real vs real "
            f"{base['precision']:.2f} / {base['recall']:.2f}): generated inside real neighbourhoods / real covered "
            f"by generated{_class(s['fixed_recall_weakest'], 'recall')}",
            f"  fixed within-class diversity {s['fixed_diversity_within_class']:.2f}: generated / real spread per "
            f"class (< 1 collapse, > 1 noise){_class(s['fixed_diversity_weakest'], 'ratio')}",
            f"  NDB {f['ndb']['different']}/{f['ndb']['bins']} bins (real vs real "
            f"{s['fixed_ndb_baseline_fraction']:.2f} of bins): k-means bins of real sounds "
            "whose share differs (p < 0.05)",
        ]
        floor = s.get("spectral_floor_weakest")
        if floor:
            lines.append(
                f"  spectral floor, worst class {str(floor['class'])!r} ({floor['n_real']} real clips): "
                f"{floor['real_db']:.1f} dB real -> "
                f"{floor['generated_db']:.1f} dB generated ({floor['delta_db']:+.1f} dB; > 0 = noise under the sound)"
            )
        raw = s.get("spectral_floor_raw_weakest")
        if raw:
            lines.append(
                f"  spectral floor against the recorded clips, furthest class {str(raw['class'])!r}: "
                f"{raw['raw_db']:.1f} dB recorded -> {raw['generated_db']:.1f} dB generated "
                f"({raw['delta_raw_db']:+.1f} dB; the front end alone puts the reference at {raw['real_db']:.1f})"
            )
        if g["classifier_space"]:
            lines.append(
                f"  classifier space: FD ratio {s['classifier_fd_ratio']:.2f}, precision "
                f"{s['classifier_precision']:.2f} / recall {s['classifier_recall']:.2f}, within-class diversity "
                f"{s['classifier_diversity_within_class']:.2f} (same measures in the classifier's embedding)"
            )
        if g["pitch"]:
            p = g["pitch"]
            lines.append(
                f"  pitch accuracy {p['accuracy']:.3f} (reference {p['reference_accuracy']:.3f}; {p['unvoiced']} "
                f"unvoiced): pYIN median f0 within {p['tolerance_cents']:.0f} cents of the asked pitch"
                f"{_class(p['weakest'])}"
            )
    return lines
