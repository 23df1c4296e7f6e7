"""Loss terms: the ELBO's parts (reconstruction, KL) with a β warm-up, and multi-resolution STFT.

Spectrograms are normalised features ``(B, rows, frames)`` in [-1, 1]; waveforms ``(B, samples)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.spectral import SpectrogramConfig, magnitude, mean_power_db


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors per item ``(B,)``: a Gaussian negative log-likelihood with variance
    1/2 up to a constant, summed (not averaged) over bins so that β keeps the same meaning
    whatever the spectrogram size."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per item ``(B,)``, in nats, summed over latent dims."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def long_term_spectrum_error(x_hat: torch.Tensor, x: torch.Tensor, row_scale: torch.Tensor) -> torch.Tensor:
    """Per item ``(B,)``: how far each row's time-averaged power lies from the target's, squared, summed over rows
    and weighted by the frame count (as if every bin of the row were off by that much).

    ``x_hat, x (B, rows, frames)`` are normalised features whose row ``r`` holds ``row_scale[r]`` dB per unit
    (:meth:`~soundloom.data.stats.Normalizer.db_per_unit`); the error is in those units. Averaging power, not dB,
    weights the loud frames: a decoder that blurs a pluck's bright attack in time loses power there that a
    per-bin squared error in dB hardly charges for, and the clip's long-term spectrum (its floor) comes out dull.
    """
    scale = row_scale.to(x)  # (rows,) dB per unit

    def level(y: torch.Tensor) -> torch.Tensor:  # (B, rows): the row's mean power over frames, in units
        return mean_power_db(y.clamp(-1.0, 1.0) * scale[:, None], dim=-1) / scale

    return (level(x_hat) - level(x)).pow(2).sum(dim=1) * x.shape[-1]


def beta_at(step: int, beta: float, warmup_steps: int) -> float:
    """β ramped linearly from 0 over ``warmup_steps`` (avoids early posterior collapse)."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


@dataclass
class ElboTerms:
    """Batch means of the loss and its parts; ``elbo = -(recon + kl)`` (β = 1)."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    mse: torch.Tensor
    beta: float

    @property
    def elbo(self) -> torch.Tensor:
        return -(self.recon + self.kl)


def elbo_terms(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float) -> ElboTerms:
    """``loss = recon + beta * kl`` averaged over the batch, with the parts for logging."""
    recon = reconstruction_loss(x_hat, x).mean()
    kl = kl_divergence(mu, logvar).mean()
    mse = (x_hat - x).pow(2).mean()
    return ElboTerms(recon + beta * kl, recon, kl, mse, beta)


DEFAULT_RESOLUTIONS = ((512, 128), (256, 64), (128, 32))


def mr_stft_distance(
    a: torch.Tensor, b: torch.Tensor, sample_rate: int, resolutions: tuple[tuple[int, int], ...] = DEFAULT_RESOLUTIONS
) -> torch.Tensor:
    """Multi-resolution STFT distance per item ``(B,)`` between waveforms ``(B, samples)``.

    Mean over resolutions ``(n_fft, hop)`` of spectral convergence (dominated by loud bins) plus
    mean absolute log-magnitude difference (more sensitive to quiet bins), as in Parallel WaveGAN.
    """
    n = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :n], b[..., :n]
    total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
    for n_fft, hop in resolutions:
        cfg = SpectrogramConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, kind="magnitude")
        ma, mb = magnitude(a, cfg), magnitude(b, cfg)
        sc = (ma - mb).flatten(1).norm(dim=1) / ma.flatten(1).norm(dim=1).clamp_min(1e-7)
        logm = (torch.log(ma.clamp_min(1e-5)) - torch.log(mb.clamp_min(1e-5))).abs().flatten(1).mean(dim=1)
        total = total + sc + logm
    return total / len(resolutions)
