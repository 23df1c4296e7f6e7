"""Metrics on inputs with known answers, and the full report on a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundloom.sounds.evaluation import metrics as M


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert M.frechet_distance(a, a) < 1e-6
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    assert M.frechet_distance(a, a + shift) == pytest.approx(5.0, rel=1e-6)
    assert M.frechet_distance(a, 2 * a) == pytest.approx(
        np.trace(np.cov(a, rowvar=False)) + (a.mean(0) ** 2).sum(), rel=1e-6
    )


def test_inception_score_bounds():
    onehot = np.eye(5)[np.arange(100) % 5]
    assert M.inception_score(onehot) == pytest.approx(5.0, rel=1e-6)
    assert M.inception_score(np.full((10, 5), 0.2)) == pytest.approx(1.0)
    assert M.inception_score(np.eye(5)[np.zeros(50, int)]) == pytest.approx(1.0, abs=1e-6)


def test_ndb_same_vs_shifted_distribution():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 3))
    same, _ = M.number_of_statistically_different_bins(real, rng.normal(size=(2000, 3)), k=10)
    shifted, k = M.number_of_statistically_different_bins(real, rng.normal(size=(2000, 3)) + 1.5, k=10)
    assert same <= 2 and shifted >= 6 and k == 10


def test_pairwise_lsd_sc_mse():
    assert M.mean_pairwise_distance(np.array([[0.0], [1.0]])) == pytest.approx(1.0)
    assert M.mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])) == pytest.approx(10 / 3)
    db = torch.randn(2, 8, 5) * 10
    assert torch.allclose(M.log_spectral_distance(db, db), torch.zeros(2))
    assert torch.allclose(M.log_spectral_distance(db, db + 3.0), torch.full((2,), 3.0))
    mag = torch.rand(2, 8, 5) + 0.1
    assert torch.allclose(M.spectral_convergence(mag, 0.5 * mag), torch.full((2,), 0.5))
    assert torch.allclose(M.mse(db, db + 2.0), torch.full((2,), 4.0))
