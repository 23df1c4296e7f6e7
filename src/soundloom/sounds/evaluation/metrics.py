"""Metrics of reconstruction (MSE, LSD, SC) and of generation (IS, Fréchet distance, NDB, diversity).

Spectrogram arguments are ``(N, rows, frames)``; feature sets are ``(N, D)``; probabilities ``(N, classes)``.
"""

from __future__ import annotations

import numpy as np
import torch


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per item ``(N,)``."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


def log_spectral_distance(db_a: torch.Tensor, db_b: torch.Tensor) -> torch.Tensor:
    """LSD in dB per item ``(N,)``: RMS over rows of the dB difference, averaged over frames."""
    return (db_a - db_b).pow(2).mean(dim=-2).sqrt().mean(dim=-1)


def spectral_convergence(mag_ref: torch.Tensor, mag_est: torch.Tensor) -> torch.Tensor:
    """``||S - S_est||_F / ||S||_F`` per item ``(N,)`` of linear magnitudes."""
    return (mag_ref - mag_est).flatten(1).norm(dim=1) / mag_ref.flatten(1).norm(dim=1).clamp_min(1e-12)


def inception_score(probs: np.ndarray) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))``: high when each sound is confidently one class and all classes occur."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp((p * (np.log(p) - np.log(marginal))).sum(axis=1).mean()))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(len(mu_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    return float(max(0.0, ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)))


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all distinct pairs of rows of ``(N, D)`` (diversity)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return 0.0
    sq = (x**2).sum(axis=1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Centroids ``(k, D)`` by Lloyd's algorithm with k-means++ seeding."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
    c = np.array(centres)
    for _ in range(iters):
        assign = _nearest(x, c)
        new = np.array([x[assign == j].mean(axis=0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def _nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d2 = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]
    return d2.argmin(axis=1)


def number_of_statistically_different_bins(
    real: np.ndarray, generated: np.ndarray, k: int = 20, alpha: float = 0.05, seed: int = 0
) -> tuple[int, int]:
    """NDB (Richardson & Weiss 2018): k-means bins of ``real``; count bins whose share of
    ``generated`` differs from the real share by a two-proportion z-test at level ``alpha``.

    Returns ``(ndb, k)``; ``ndb / k`` near ``alpha`` means no detectable mode dropping.
    """
    from scipy.stats import norm

    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    k = min(k, len(real))
    centres = kmeans(real, k, seed)
    p_real = np.bincount(_nearest(real, centres), minlength=k) / len(real)
    p_gen = np.bincount(_nearest(generated, centres), minlength=k) / len(generated)
    n1, n2 = len(real), len(generated)
    pooled = (p_real * n1 + p_gen * n2) / (n1 + n2)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n1 + 1 / n2), 1e-12))
    z = np.abs(p_real - p_gen) / se
    return int((z > norm.ppf(1 - alpha / 2)).sum()), k
