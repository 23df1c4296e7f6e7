"""Matplotlib figures: loss curves, spectrogram grids, latent-space projections (Agg backend, atomic)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path


def _figure_module():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
    _figure_module().close(fig)
    return path


def spectrogram_grid(images: np.ndarray, titles: list[str], path: str | os.PathLike, cols: int = 4) -> Path:
    """Grid of spectrograms ``(N, rows, frames)`` (low rows at the bottom)."""
    plt = _figure_module()
    n = len(images)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img, origin="lower", aspect="auto", vmin=-1, vmax=1, cmap="magma")
        ax.set_title(title, fontsize=8)
    return _save(fig, path)


def loss_curves(metrics_csv: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Plot every ``train/*`` and ``val/*`` column of a metrics CSV against the epoch."""
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    plt = _figure_module()
    parts = ("loss", "recon", "kl", "mse")
    fig, axes = plt.subplots(1, len(parts), figsize=(4 * len(parts), 3))
    epochs = [int(r["epoch"]) for r in rows]
    for ax, part in zip(axes, parts):
        for stage in ("train", "val"):
            key = f"{stage}/{part}"
            ys = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
            ax.plot(epochs, ys, marker=".", label=stage)
        ax.set_title(part)
        ax.set_xlabel("epoch")
        if part != "kl":
            ax.set_yscale("log")
        ax.legend()
    return _save(fig, path)


def latent_scatter(
    z: np.ndarray, labels: list[str], path: str | os.PathLike, title: str = "latent space (PCA)"
) -> Path:
    """2-D PCA of latents ``(N, D)`` coloured by label."""
    plt = _figure_module()
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6, 5))
    names = sorted(set(labels), key=lambda s: (len(s), s))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, name in enumerate(names):
        sel = np.array([lab == name for lab in labels])
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(i % cmap.N), label=name)
    ax.set_title(title)
    if len(names) <= 20:
        ax.legend(markerscale=2, fontsize=7, ncol=2)
    return _save(fig, path)


def curve(
    xs: list[float], series: dict[str, list[float]], xlabel: str, path: str | os.PathLike, title: str = ""
) -> Path:
    """Line plot of several series against ``xs``."""
    plt = _figure_module()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, ys in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)
