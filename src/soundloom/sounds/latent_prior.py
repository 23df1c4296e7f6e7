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


def with_item_posteriors(
    prior: dict[str, torch.Tensor],
    mean: torch.Tensor,
    logvar: torch.Tensor,
    labels: torch.Tensor,
    max_items: int,
    ridge: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """``prior`` with every class row of fewer than ``max_items`` training items replaced by those items' own
    posteriors: one component ``N(mean_i, diag(exp(logvar_i)) + ridge)`` per item, equal weights.

    ``mean``, ``logvar`` ``(N, D)``: the training items' posteriors; ``labels (N,)``: their class rows (the
    last row, the fit over every item, is kept). Rows keep one length ``M``: the others are padded with
    weight-0 copies of their first component.

    Why: a class of a few dozen items gives each of its mixture components fewer points than the latent has
    dimensions, so a full-covariance fit spans the space between unrelated items (two sweeps of different
    slopes) where the decoder never learned to go. The items' posteriors are the aggregate posterior the
    decoder was trained on (on the built-in one-shots, 36-40 items a class, more of the samples are
    recognised; they also lie nearer their training items, which the copying check reports).
    """
    p_mean, p_chol, p_weight = mixture(prior)
    k, m, d = p_mean.shape
    labels = torch.as_tensor(labels).long()
    rows = [c for c in range(k - 1) if 0 < int((labels == c).sum()) < max_items]
    m_new = max([m] + [int((labels == c).sum()) for c in rows])
    means = p_mean[:, :1].repeat(1, m_new, 1)
    chols = p_chol[:, :1].repeat(1, m_new, 1, 1)
    weights = torch.zeros(k, m_new)
    means[:, :m], chols[:, :m], weights[:, :m] = p_mean, p_chol, p_weight
    scale = (logvar.double().exp() + ridge).sqrt().float()
    for c in rows:
        sel = labels == c
        n = int(sel.sum())
        means[c] = means[c, :1].clone()
        chols[c] = torch.diag_embed(scale[sel][:1]).expand(m_new, d, d).clone()
        weights[c] = 0.0
        means[c, :n], chols[c, :n], weights[c, :n] = mean[sel].float(), torch.diag_embed(scale[sel]), 1.0 / n
    out = {k_: v for k_, v in prior.items() if not k_.startswith(("prior.mean", "prior.chol", "prior.weight"))}
    out.update({"prior.mean": means, "prior.chol": chols, "prior.weight": weights})
    return out
