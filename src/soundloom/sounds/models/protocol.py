"""The model side of generation, with the VAE-style defaults a minimal kind relies on.

A kind's model needs only ``encode(x, labels, pitches) -> (mu, logvar)`` and ``decode(z, labels, pitches)``
(a Gaussian latent of ``cfg.latent_dim`` decoded to normalised features). Richer kinds say more:

- ``encode_latent`` / ``decode_latent``: the latent of a sound, a float vector (codes for a vqvae or prior);
- ``latent_size``: its length for one item;
- ``output``: "features" (phase reconstruction follows) or "waveform" (audio straight from the decoder);
- ``continuable`` / ``interpolable`` / ``variable_length``: which Generator modes make sense;
- ``draw_latents(n, labels, pitches, temperature, generator, prior, top_k=, frames=)`` and
  ``vary_latent(z, amount, generator, prior, labels=, pitches=)``: sampling a discrete latent (without them
  the Generator draws from the fitted Gaussian);
- ``continue_latent(prefix, total, labels, pitches, temperature, generator, top_k)``: continuation by priming
  (without it the Generator optimises a Gaussian latent to the prompt's frames);
- ``attach(name, model)``: receives the runs its config ``requires()``.
"""

from __future__ import annotations

import torch
from torch import nn

MODES = ("continuable", "interpolable", "variable_length")


class EmbeddedConditions:
    """For models whose conditions are embedding layers: conditioned on labels (pitches) exactly when
    ``label_embed`` (``pitch_embed``) exists. Mix in before ``nn.Module``."""

    @property
    def label_conditioned(self) -> bool:
        """Whether encoding and decoding need a class index."""
        return self.label_embed is not None

    @property
    def pitch_conditioned(self) -> bool:
        """Whether encoding and decoding need a MIDI pitch."""
        return self.pitch_embed is not None


class GaussianLatent:
    """For a VAE with ``encode(x, labels, pitches) -> (mu, logvar)`` and ``decode(z, labels, pitches)``: the
    protocol's latent methods and the reparameterised forward pass. Mix in before ``nn.Module``."""

    def encode_latent(self, x: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
        """Posterior mean ``(B, latent_dim)``."""
        return self.encode(x, labels, pitches)[0]

    def decode_latent(self, z: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
        return self.decode(z, labels, pitches)

    def forward(self, x: torch.Tensor, labels=None, pitches=None, sample: bool = True):
        """Reconstruction, mean and log-variance ``(B, latent_dim)``."""
        mu, logvar = self.encode(x, labels, pitches)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode(z, labels, pitches), mu, logvar


def encode_latent(model: nn.Module, x: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
    """The latent ``(B, latent_size)`` of model inputs ``x`` (posterior mean for a Gaussian kind)."""
    if hasattr(model, "encode_latent"):
        return model.encode_latent(x, labels, pitches)
    return model.encode(x, labels, pitches)[0]


def decode_latent(model: nn.Module, z: torch.Tensor, labels=None, pitches=None) -> torch.Tensor:
    """Features ``(B, rows, frames)`` or waveforms ``(B, samples)`` of latents ``z (B, L)``."""
    if hasattr(model, "decode_latent"):
        return model.decode_latent(z, labels, pitches)
    return model.decode(z, labels, pitches)


def latent_size(model: nn.Module) -> int:
    return int(model.latent_size if hasattr(model, "latent_size") else model.cfg.latent_dim)


def output(model: nn.Module) -> str:
    """ "features" or "waveform"."""
    return getattr(model, "output", "features")


def supports(model: nn.Module, mode: str) -> bool:
    """Whether the model does ``mode`` (one of :data:`MODES`); Gaussian kinds continue and interpolate."""
    return bool(getattr(model, mode, mode != "variable_length"))


def discrete(model: nn.Module) -> bool:
    """Whether the model draws its own latents (a code model) instead of the fitted Gaussian."""
    return hasattr(model, "draw_latents")
