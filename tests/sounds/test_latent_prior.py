"""The fitted sampling prior: a Gaussian mixture per class, fitted at export and drawn by the Generator."""

import numpy as np
import pytest
import torch

from soundloom.core.errors import ModelFileError
from soundloom.sounds import latent_prior
from soundloom.sounds.training.export import components_for, fit_prior


def _two_clusters(n: int = 80, d: int = 4, gap: float = 6.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 0.3, (n, d))
    z[: n // 2, 0] -= gap / 2
    z[n // 2 :, 0] += gap / 2
    return z


def test_mixture_keeps_draws_on_the_clusters_where_one_gaussian_fills_the_gap():
    z = _two_clusters()
    labels = np.zeros(len(z), dtype=int)
    prior = fit_prior(z, labels, n_classes=1)
    assert prior["prior.mean"].shape == (2, components_for(80), 4)
    draws = latent_prior.draw(prior, 0, 400, 1.0, torch.Generator().manual_seed(0)).numpy()
    between = np.mean(np.abs(draws[:, 0]) < 1.5)  # the empty middle between the clusters at -3 and +3
    assert between < 0.02
    assert 0.3 < np.mean(draws[:, 0] > 0) < 0.7  # both clusters drawn
    one = fit_prior(z, labels, n_classes=1, max_components=1)
    draws_one = latent_prior.draw(one, 0, 400, 1.0, torch.Generator().manual_seed(0)).numpy()
    assert np.mean(np.abs(draws_one[:, 0]) < 1.5) > 0.2  # what a single Gaussian does


def test_small_classes_get_one_gaussian_and_rows_are_padded_with_weight_zero():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(100, 3))
    labels = np.array([0] * 90 + [1] * 6 + [2] * 4)
    prior = fit_prior(z, labels, n_classes=3)
    weight = prior["prior.weight"]
    assert weight.shape == (4, 10) and torch.allclose(weight.sum(1), torch.ones(4))
    assert int((weight[1] > 0).sum()) == 1 and int((weight[2] > 0).sum()) == 1
    assert torch.allclose(prior["prior.mean"][1, 0], torch.tensor(z[90:96].mean(0), dtype=torch.float32), atol=1e-5)
    draws = latent_prior.draw(prior, 1, 50, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(draws, prior["prior.mean"][1, 0].expand(50, 3))  # weight-0 padding never drawn


def test_one_gaussian_runs_saved_before_mixtures_draw_as_before():
    mean = torch.tensor([[1.0, -2.0], [0.0, 0.0]])
    chol = torch.tensor([[[2.0, 0.0], [0.5, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    old = {"prior.mean": mean, "prior.chol": chol}
    got = latent_prior.draw(old, 0, 5, 0.7, torch.Generator().manual_seed(3))
    eps = torch.randn(5, 2, generator=torch.Generator().manual_seed(3)) * 0.7
    assert torch.allclose(got, mean[0] + eps @ chol[0].T, atol=1e-6)


def test_prior_tensors_that_do_not_fit_together_are_refused():
    bad = {"prior.mean": torch.zeros(2, 3, 4), "prior.chol": torch.zeros(2, 3, 4, 5)}
    with pytest.raises(ModelFileError, match="do not fit together"):
        latent_prior.draw(bad, 0, 1, 1.0, torch.Generator())
