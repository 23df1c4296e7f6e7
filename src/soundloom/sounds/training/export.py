"""Export a trained run: ``model.safetensors`` (weights + fitted sampling prior), ``model.json``, ``stats.json``.

What "fitted sampling prior" means is the kind's (its registry ``fit_prior`` hook). For the VAE family it is
a full-covariance Gaussian of the posterior means of the training items, one per class for a conditioned
model (one in all otherwise). Sampling from it instead of N(0, I) avoids the "holes" between the aggregate
posterior and the prior (Ghosh et al. 2020, ex-post density estimation); the generator still offers the
standard prior.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ...core.atomic import write_json
from ..models import get_kind, save_safetensors
from ..models.protocol import encode_latent
from ..runfiles import CONFIG_FILE, MODEL_FILE, RUN_FORMAT_VERSION, STATS_FILE


@torch.no_grad()
def posterior_means(
    model: nn.Module, dataset: Dataset, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents ``(N, latent_size)`` (``encode_latent``), label indices ``(N,)`` and pitches ``(N,)`` of a dataset."""
    model.eval()
    zs, labs, pits = [], [], []
    for start in range(0, len(dataset), batch_size):
        batch = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x = torch.stack([b[0] for b in batch])
        lab = torch.tensor([b[1] for b in batch])
        pit = torch.tensor([b[2] for b in batch])
        mu = encode_latent(model, x, lab if model.label_conditioned else None, pit if model.pitch_conditioned else None)
        zs.append(mu.numpy())
        labs.append(lab.numpy())
        pits.append(pit.numpy())
    return np.concatenate(zs), np.concatenate(labs), np.concatenate(pits)


def fit_prior(z: np.ndarray, labels: np.ndarray, n_classes: int, ridge: float = 1e-4) -> dict[str, torch.Tensor]:
    """Per-class Gaussian of latents: ``prior.mean (K, D)``, ``prior.chol (K, D, D)``, ``prior.count (K,)``.

    Row ``K - 1`` (or the only row when ``n_classes == 0``) is the pooled fit over all items;
    classes with fewer than two items fall back to it.
    """
    d = z.shape[1]
    k = n_classes + 1

    def gaussian(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = z[sel].astype(np.float64)
        mean = pts.mean(axis=0)
        cov = np.cov(pts, rowvar=False) if len(pts) > 1 else np.eye(d)
        cov = np.atleast_2d(cov) + ridge * np.eye(d)
        return mean, np.linalg.cholesky(cov)

    pooled = gaussian(np.ones(len(z), dtype=bool))
    means, chols, counts = np.zeros((k, d)), np.zeros((k, d, d)), np.zeros(k)
    for c in range(k):
        sel = labels == c if c < n_classes else np.ones(len(z), dtype=bool)
        counts[c] = sel.sum()
        means[c], chols[c] = gaussian(sel) if sel.sum() > 1 else pooled
    return {
        "prior.mean": torch.tensor(means, dtype=torch.float32),
        "prior.chol": torch.tensor(chols, dtype=torch.float32),
        "prior.count": torch.tensor(counts, dtype=torch.float32),
    }


def fit_gaussian_prior(model: nn.Module, dataset: Dataset) -> dict[str, torch.Tensor]:
    """The VAE family's ``fit_prior`` hook: :func:`fit_prior` of the training set's posterior means."""
    z, labels, _ = posterior_means(model, dataset)
    n_classes = len(model.cfg.labels) if model.label_conditioned else 0
    return fit_prior(z, labels, n_classes)


def export_run(
    run_dir: str | Path, model: nn.Module, train_set: Dataset, run_config: dict, normalizer_dict: dict
) -> Path:
    """Write the three files that :class:`~soundloom.sounds.Generator` loads; returns the weights path."""
    run_dir = Path(run_dir)
    tensors = {k: v for k, v in model.state_dict().items()}
    tensors.update(get_kind(model.cfg.kind).prior_hook()(model, train_set))
    write_json(run_dir / STATS_FILE, normalizer_dict)
    write_json(
        run_dir / CONFIG_FILE,
        {**run_config, "format": "soundloom", "version": RUN_FORMAT_VERSION, "model": model.cfg.to_dict()},
    )
    return save_safetensors(run_dir / MODEL_FILE, tensors, kind=model.cfg.kind)
