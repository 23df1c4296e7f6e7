"""Export a trained run: ``model.safetensors`` (weights + fitted sampling prior), ``model.json``, ``stats.json``
and, for spectrogram kinds, ``postfilter.json`` (:mod:`soundloom.sounds.postfilter`).

What "fitted sampling prior" means is the kind's (its registry ``fit_prior`` hook). For the VAE family it is
a full-covariance Gaussian mixture of the posterior means of the training items, one per class for a
conditioned model (one in all otherwise). Sampling from it instead of N(0, I) avoids the "holes" between the aggregate
posterior and the prior (Ghosh et al. 2020, ex-post density estimation); the generator still offers the
standard prior.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ...core.atomic import write_json
from ...core.errors import ParameterError
from ...data.prepare import recorded_clips
from ...data.stats import Normalizer
from .. import latent_prior
from ..decode import db_to_audio
from ..models import get_kind, save_safetensors
from ..models.protocol import decode_latent, encode_latent, output
from ..postfilter import (
    CALIBRATION_DRAWS,
    DEFAULT_KIND,
    KINDS,
    LIFT_BELOW,
    PostFilter,
    calibrate_strength,
    clip_range,
    envelope_rows_for,
    fit_postfilter,
    fit_quantile_postfilter,
    fit_row_floor,
    fit_row_gain,
)
from ..runfiles import CONFIG_FILE, MODEL_FILE, RUN_FORMAT_VERSION, STATS_FILE

# Prior draws per training item fitted on at most: a small class gets more than one, so that its calibration sees
# CALIBRATION_DRAWS of the model's items (the built-in one-shots: 34-38 training items a class, 3 draws each).
MAX_DRAWS_PER_ITEM = 4
# Whether export fits the post-filter's row gains (postfilter.fit_row_gain; the calibration keeps them per class).
ROW_GAIN = True


def _batches(dataset: Dataset, batch_size: int):
    """``(x, label indices, pitches)`` tensors of ``dataset``'s items in order, ``batch_size`` at a time."""
    for start in range(0, len(dataset), batch_size):
        batch = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        labels, pitches = torch.tensor([b[1] for b in batch]), torch.tensor([b[2] for b in batch])
        yield torch.stack([b[0] for b in batch]), labels, pitches


@torch.no_grad()
def posterior_means(
    model: nn.Module, dataset: Dataset, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents ``(N, latent_size)`` (``encode_latent``), label indices ``(N,)`` and pitches ``(N,)`` of a dataset."""
    model.eval()
    zs, labs, pits = [], [], []
    for x, lab, pit in _batches(dataset, batch_size):
        mu = encode_latent(model, x, lab if model.label_conditioned else None, pit if model.pitch_conditioned else None)
        zs.append(mu.numpy())
        labs.append(lab.numpy())
        pits.append(pit.numpy())
    return np.concatenate(zs), np.concatenate(labs), np.concatenate(pits)


PRIOR_COMPONENTS = 10  # as Ghosh et al. 2020 (ex-post density estimation): a 10-component GMM
MIN_ITEMS_PER_COMPONENT = 8


def components_for(n_items: int, max_components: int = PRIOR_COMPONENTS) -> int:
    """Mixture components for a class of ``n_items``: up to ``max_components``, at least
    :data:`MIN_ITEMS_PER_COMPONENT` items each (one Gaussian for a small class)."""
    return int(max(1, min(max_components, n_items // MIN_ITEMS_PER_COMPONENT)))


def fit_prior(
    z: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    ridge: float = 1e-4,
    max_components: int = PRIOR_COMPONENTS,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per-class Gaussian mixture of latents ``z (N, D)``: ``prior.mean (K, M, D)``, ``prior.chol (K, M, D, D)``,
    ``prior.weight (K, M)`` and ``prior.count (K,)``; read by :mod:`soundloom.sounds.latent_prior`.

    Row ``K - 1`` (or the only row when ``n_classes == 0``) is the fit over all items; classes with fewer
    than two items fall back to it. Each class gets :func:`components_for` full-covariance components (EM,
    k-means start, ``ridge`` added to every covariance's diagonal); rows with fewer repeat a component with
    weight 0, so every row has ``M = max_components`` (fewer when no class is that large).

    Why a mixture: one Gaussian per class spreads its mass between the clusters of a class (voices,
    instruments) where the decoder never learned to go; on the dev digits a 10-component mixture brought the
    fixed-space FD ratio at T = 0.9 from 0.88-1.23x to 0.83-1.14x over five seeds, diversity 0.96 -> 1.00.
    """
    from sklearn.mixture import GaussianMixture  # training only: sampling needs just the tensors

    d = z.shape[1]
    k = n_classes + 1
    selections = [labels == c for c in range(n_classes)] + [np.ones(len(z), dtype=bool)]
    sizes = [components_for(int(sel.sum()), max_components) for sel in selections]
    m = max(sizes)

    def mixture(pts: np.ndarray, n_comp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if n_comp == 1:
            cov = np.cov(pts, rowvar=False) if len(pts) > 1 else np.eye(d)
            return pts.mean(axis=0)[None], (np.atleast_2d(cov) + ridge * np.eye(d))[None], np.ones(1)
        gmm = GaussianMixture(n_comp, covariance_type="full", reg_covar=ridge, random_state=seed, n_init=2)
        gmm.fit(pts)
        return gmm.means_, gmm.covariances_, gmm.weights_

    means, chols, weights, counts = np.zeros((k, m, d)), np.zeros((k, m, d, d)), np.zeros((k, m)), np.zeros(k)
    fits: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
    for sel, n_comp in zip(selections, sizes):
        pts = z[sel].astype(np.float64)
        fits.append(mixture(pts, n_comp) if len(pts) > 1 else None)
    for c, (sel, fit) in enumerate(zip(selections, fits)):
        counts[c] = sel.sum()
        mu, cov, w = fit if fit is not None else fits[-1]
        j = len(w)
        means[c, :j], chols[c, :j], weights[c, :j] = mu, np.linalg.cholesky(cov), w
        means[c, j:], chols[c, j:] = mu[0], np.linalg.cholesky(cov[0])  # padding, never drawn (weight 0)
    return {
        "prior.mean": torch.tensor(means, dtype=torch.float32),
        "prior.chol": torch.tensor(chols, dtype=torch.float32),
        "prior.weight": torch.tensor(weights / weights.sum(axis=1, keepdims=True), dtype=torch.float32),
        "prior.count": torch.tensor(counts, dtype=torch.float32),
    }


def fit_gaussian_prior(model: nn.Module, dataset: Dataset) -> dict[str, torch.Tensor]:
    """The VAE family's ``fit_prior`` hook: :func:`fit_prior` of the training set's posterior means."""
    z, labels, _ = posterior_means(model, dataset)
    n_classes = len(model.cfg.labels) if model.label_conditioned else 0
    return fit_prior(z, labels, n_classes)


def draws_for(labels: np.ndarray, most: int = MAX_DRAWS_PER_ITEM) -> int:
    """Prior draws per training item for the post-filter's fit, given the items' label indices ``(N,)`` (-1: none):
    enough that the smallest class has :data:`~soundloom.sounds.postfilter.CALIBRATION_DRAWS` of the model's items
    to calibrate on, at least 1 and at most ``most``."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64) + 1)[1:]
    smallest = int(counts[counts > 0].min()) if (counts > 0).any() else len(labels)
    return int(min(most, max(1, -(-CALIBRATION_DRAWS // max(smallest, 1)))))


@torch.no_grad()
def fit_run_postfilter(
    model: nn.Module,
    prior: dict[str, torch.Tensor],
    dataset: Dataset,
    normalizer: Normalizer,
    batch_size: int = 64,
    seed: int = 0,
    kind: str = DEFAULT_KIND,
    calibrate: bool = True,
    draws: int | None = None,
    row_gain: bool = ROW_GAIN,
) -> PostFilter | None:
    """The post-filter of a spectrogram model (None for a waveform kind), fitted on ``dataset`` (the training
    split): its items' spread against the model's output for the same items' labels and pitches. That output
    is ``draws`` draws per item from the fitted Gaussian prior at temperature 1 (seeded; None: :func:`draws_for`), or
    the item's reconstruction when the kind has no Gaussian prior (code models). ``kind``: one of
    :data:`~soundloom.sounds.postfilter.KINDS` (default: the one export fits). ``calibrate``: then choose each
    class's strength (:func:`~soundloom.sounds.postfilter.calibrate_strength`): the model's output through the
    front end of the dataset's store (mel inversion and the default Griffin-Lim, as a run renders) against the
    items' recordings, read again as ``prepare`` cut them (rendered through the front end when unreadable)."""
    if kind not in KINDS:
        raise ParameterError(f"post-filter kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if output(model) == "waveform" or len(dataset) == 0:
        return None
    model.eval()
    gaussian = "prior.mean" in prior
    n_classes = len(model.cfg.labels) if model.label_conditioned else 0
    gen = torch.Generator().manual_seed(seed)
    if draws is None:
        rows, table = getattr(dataset, "rows", None), getattr(dataset, "labels", None)
        known = rows is not None and table is not None and n_classes
        draws = draws_for(np.asarray(table)[np.asarray(rows)] if known else np.full(len(dataset), -1))
    real, made, labels, model_labels = [], [], [], []
    for x, lab, pit in _batches(dataset, batch_size):
        lab_in = lab if model.label_conditioned else None
        pit_in = pit if model.pitch_conditioned else None
        names = [model.cfg.labels[int(v)] if n_classes and int(v) >= 0 else None for v in lab]
        if gaussian:
            # Row -1 is the prior's fit over all items (an unconditioned model's only row; an unlabelled item's).
            rows = [int(v) if n_classes and int(v) >= 0 else -1 for v in lab]
            for _ in range(draws):
                z = torch.cat([latent_prior.draw(prior, r, 1, 1.0, gen) for r in rows])
                made.append(decode_latent(model, z, lab_in, pit_in).float())
                model_labels += names
        else:
            made.append(decode_latent(model, encode_latent(model, x, lab_in, pit_in), lab_in, pit_in).float())
            model_labels += names
        real.append(x.float())
        labels += names
    real_db, model_db = normalizer.denormalize(torch.cat(real)), normalizer.denormalize(torch.cat(made))
    source = f"samples of the fitted prior, temperature 1, {draws} a training item" if gaussian else "reconstructions"
    envelope = envelope_rows_for(real_db.shape[1])
    post = fit_postfilter(real_db, labels, model_db, model_labels, source, envelope_rows=envelope)
    if kind != "gv":
        ratios = post.ratio if kind == "gv+quantile" else None
        post = fit_quantile_postfilter(
            real_db, labels, model_db, model_labels, source, ratios, envelope_rows=envelope, lift_below=LIFT_BELOW
        )
    if row_gain:
        post = replace(post, row_gain=fit_row_gain(real_db, labels, model_db, model_labels))
    post = replace(post, row_floor=fit_row_floor(real_db, labels))
    store = getattr(dataset, "store", None)
    if not calibrate or store is None:
        return post
    spec, n_samples = store.spectrogram, store.n_samples

    def render(db: torch.Tensor) -> np.ndarray:
        return db_to_audio(db, spec, n_samples).numpy()

    low, high = clip_range(normalizer)
    rows = getattr(dataset, "rows", None)
    recordings = None if rows is None else (lambda idx: recorded_clips(store, np.asarray(rows)[idx]))
    return calibrate_strength(
        post,
        real_db,
        model_db,
        labels,
        render,
        spec.sample_rate,
        low,
        high,
        seed=seed,
        recordings=recordings,
        model_labels=model_labels,
        draws_per_class=CALIBRATION_DRAWS,
    )


def export_run(
    run_dir: str | Path, model: nn.Module, train_set: Dataset, run_config: dict, normalizer_dict: dict
) -> Path:
    """Write the three files that :class:`~soundloom.sounds.Generator` loads; returns the weights path."""
    run_dir = Path(run_dir)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}  # channels_last training
    prior = get_kind(model.cfg.kind).prior_hook()(model, train_set)
    tensors.update(prior)
    write_json(run_dir / STATS_FILE, normalizer_dict)
    post = fit_run_postfilter(model, prior, train_set, Normalizer.from_dict(normalizer_dict))
    if post is not None:
        post.save(run_dir)
    write_json(
        run_dir / CONFIG_FILE,
        {**run_config, "format": "soundloom", "version": RUN_FORMAT_VERSION, "model": model.cfg.to_dict()},
    )
    return save_safetensors(run_dir / MODEL_FILE, tensors, kind=model.cfg.kind)
