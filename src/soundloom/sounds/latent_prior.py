"""Drawing from the fitted sampling prior of a Gaussian-latent run: a Gaussian mixture per class.

The prior is stored with the weights (``prior.*`` tensors, see :mod:`soundloom.sounds.training.export`):
``prior.mean (K, M, D)``, ``prior.chol (K, M, D, D)`` (Cholesky factors of the covariances) and
``prior.weight (K, M)``: row ``k`` is class ``k`` (the last row: every item), ``M`` components.
Runs saved before mixtures hold one Gaussian per row, ``prior.mean (K, D)`` and ``prior.chol (K, D, D)``,
read here as ``M = 1``.
"""

from __future__ import annotations

import torch

from ..core.errors import ModelFileError


def mixture(prior: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean (K, M, D), chol (K, M, D, D), weight (K, M))`` of a stored prior, either format."""
    mean, chol = prior["prior.mean"], prior["prior.chol"]
    if mean.ndim == 2:
        mean, chol = mean.unsqueeze(1), chol.unsqueeze(1)
    weight = prior.get("prior.weight")
    if weight is None:
        weight = torch.full(mean.shape[:2], 1.0 / mean.shape[1])
    if mean.ndim != 3 or chol.shape != (*mean.shape, mean.shape[-1]) or weight.shape != mean.shape[:2]:
        raise ModelFileError(
            f"prior tensors do not fit together: mean {tuple(mean.shape)}, chol {tuple(chol.shape)}, "
            f"weight {tuple(weight.shape)}"
        )
    return mean, chol, weight


def draw(prior: dict[str, torch.Tensor], row: int, n: int, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """``(n, D)`` latents from row ``row`` of the prior: a component by its weight, then its mean plus
    ``temperature`` times its Cholesky factor applied to standard normal noise (temperature 0: the mean)."""
    mean, chol, weight = mixture(prior)
    d = mean.shape[-1]
    # Noise first, with the same generator calls as a one-Gaussian prior: old runs draw the latents they drew.
    eps = torch.randn(n, d, generator=gen) * float(temperature)
    if mean.shape[1] == 1:
        comp = torch.zeros(n, dtype=torch.long)
    else:
        comp = torch.multinomial(weight[row].double(), n, replacement=True, generator=gen)
    m, c = mean[row][comp], chol[row][comp]
    return m + torch.einsum("nij,nj->ni", c, eps)
