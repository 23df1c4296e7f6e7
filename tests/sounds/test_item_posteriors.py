"""A small class's prior row made of its items' own posteriors (latent_prior.with_item_posteriors)."""

import numpy as np
import torch

from soundloom.sounds import latent_prior
from soundloom.sounds.training.export import fit_prior


def test_small_class_draws_stay_on_its_items_and_large_classes_keep_their_mixture():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 3.0, (100, 3))
    labels = np.array([0] * 90 + [1] * 6 + [2] * 4)
    logvar = np.full(z.shape, np.log(0.01))  # posterior sigma 0.1
    prior = fit_prior(z, labels, n_classes=3)
    out = latent_prior.with_item_posteriors(
        prior, torch.tensor(z), torch.tensor(logvar), torch.tensor(labels), max_items=80
    )
    mean, chol, weight = latent_prior.mixture(out)
    assert mean.shape == (4, 10, 3) and chol.shape == (4, 10, 3, 3)
    assert torch.allclose(weight.sum(1), torch.ones(4))
    for row in (0, 3):  # the large class and the all-items row are untouched
        assert torch.equal(mean[row], prior["prior.mean"][row]) and torch.equal(weight[row], prior["prior.weight"][row])
    assert torch.allclose(weight[1, :6], torch.full((6,), 1 / 6)) and not weight[1, 6:].any()
    assert torch.allclose(mean[1, :6], torch.tensor(z[90:96], dtype=torch.float32))
    assert torch.allclose(chol[1, 0], torch.eye(3) * (0.01 + 1e-4) ** 0.5)
    draws = latent_prior.draw(out, 1, 300, 1.0, torch.Generator().manual_seed(0))
    nearest = torch.cdist(draws, torch.tensor(z[90:96], dtype=torch.float32)).min(1).values
    assert nearest.max() < 0.7  # within ~4 posterior sigmas (3-d) of one of the class's own items
    got = torch.cdist(draws, torch.tensor(z[90:96], dtype=torch.float32)).argmin(1)
    assert len(set(got.tolist())) == 6  # every item drawn


def test_more_items_than_components_widen_every_row():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(30, 2))
    labels = np.array([0] * 20 + [1] * 10)
    prior = fit_prior(z, labels, n_classes=2)  # at most 30 // 8 = 3 components a row
    m = prior["prior.mean"].shape[1]
    out = latent_prior.with_item_posteriors(
        prior, torch.tensor(z), torch.zeros(30, 2), torch.tensor(labels), max_items=80
    )
    mean, _, weight = latent_prior.mixture(out)
    assert mean.shape == (3, 20, 2)
    assert int((weight[0] > 0).sum()) == 20 and int((weight[1] > 0).sum()) == 10
    assert torch.allclose(weight[2, :m], prior["prior.weight"][2]) and not weight[2, m:].any()
