"""Convolutional VAE on normalised spectrograms ``(B, rows, frames)`` in [-1, 1].

The input is zero-padded (bottom and right) to a multiple of ``2 ** len(channels)`` and the
output cropped back, so any store shape works. Models know nothing of files: see
:mod:`soundloom.sounds.models.io` for safetensors save/load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ParameterError
from .blocks import down_stage, padded_size, up_stage
from .registry import ModelKind, register

SPECTROGRAM_VAE_KINDS = ("vae", "cvae", "vaegan")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (saved as JSON beside the weights).

    Attributes:
        kind: "vae", "cvae" or "vaegan" (a vae/cvae sharpened adversarially; see :mod:`.vaegan`).
        rows, frames: feature shape (frequency rows, time frames).
        channels: output channels of each stride-2 stage, e.g. (16, 32, 64, 128, 256).
        res_from: stages whose channel count is >= this also get a residual block.
        latent_dim: size of z.
        labels: class names for a cvae (index order), empty for a vae.
        n_pitches: MIDI pitch classes for pitch conditioning (0 = none).
        embed_dim: size of each condition embedding.
        head: "direct" (the last transposed conv writes the single output channel) or "conv3x3"
            (an extra stage at full resolution and a 3x3 output conv: about twice the training
            cost for no measurable gain; runs saved before this option load as "conv3x3").
        init_from: for a vaegan, the run it started from: ``{"run": path, "sha256": of its weights}``.
    """

    kind: str = "vae"
    rows: int = 64
    frames: int = 128
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    res_from: int = 64
    latent_dim: int = 64
    labels: list[str] = field(default_factory=list)
    n_pitches: int = 0
    embed_dim: int = 16
    head: str = "direct"
    init_from: dict | None = None

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.kind not in SPECTROGRAM_VAE_KINDS:
            raise ParameterError(f"kind must be one of {SPECTROGRAM_VAE_KINDS}, got {self.kind!r}")
        if self.head not in ("direct", "conv3x3"):
            raise ParameterError(f"head must be 'direct' or 'conv3x3', got {self.head!r}")
        if self.kind == "cvae" and not self.labels and not self.n_pitches:
            raise ParameterError("a cvae needs class labels or pitches to condition on")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    def requires(self) -> dict[str, dict]:
        """Other runs this model needs at generation time (none: a vaegan's weights are its own)."""
        return {}

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known.setdefault("head", "conv3x3")  # configs written before the option existed
        return cls(**known)

    @property
    def factor(self) -> int:
        return 2 ** len(self.channels)

    @property
    def bottom_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` at the lowest resolution."""
        return (
            self.channels[-1],
            padded_size(self.rows, self.factor) // self.factor,
            padded_size(self.frames, self.factor) // self.factor,
        )


class VAE(nn.Module):
    """Spectrogram VAE; subclasses add conditions through :meth:`condition`."""

    output = "features"  # decode_latent gives normalised spectrograms (phase reconstruction follows)
    continuable = True  # continuation by optimising the latent to the prompt's frames
    interpolable = True
    variable_length = False

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.encoder = nn.Sequential(
            *[down_stage(c_in, c_out, c_out >= cfg.res_from) for c_in, c_out in zip((1,) + ch[:-1], ch)]
        )
        rev = ch[::-1]
        if cfg.head == "conv3x3":
            self.decoder = nn.Sequential(
                *[up_stage(c_in, c_out, c_in >= cfg.res_from) for c_in, c_out in zip(rev, rev[1:] + (rev[-1],))]
            )
            self.out = nn.Conv2d(rev[-1], 1, 3, padding=1)
        else:
            # Width stays off the full-resolution grid: the last transposed conv emits the output.
            self.decoder = nn.Sequential(
                *[up_stage(c_in, c_out, c_in >= cfg.res_from) for c_in, c_out in zip(rev, rev[1:])]
            )
            self.out = nn.ConvTranspose2d(rev[-1], 1, 4, stride=2, padding=1)
        flat = int(torch.tensor(cfg.bottom_shape).prod())
        cond = self.cond_dim
        self.to_stats = nn.Linear(flat + cond, 2 * cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim + cond, flat)

    @property
    def cond_dim(self) -> int:
        return 0

    @property
    def label_conditioned(self) -> bool:
        """Whether :meth:`encode` / :meth:`decode` need a class index."""
        return False

    @property
    def pitch_conditioned(self) -> bool:
        """Whether :meth:`encode` / :meth:`decode` need a MIDI pitch."""
        return False

    def condition(self, labels: torch.Tensor | None, pitches: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """Condition vector ``(B, cond_dim)`` or None for an unconditioned model."""
        return None

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, pitches: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, rows, frames)`` -> posterior mean and log-variance, each ``(B, latent_dim)``."""
        self._check(x)
        h_pad = padded_size(self.cfg.rows, self.cfg.factor) - x.shape[-2]
        w_pad = padded_size(self.cfg.frames, self.cfg.factor) - x.shape[-1]
        h = self.encoder(F.pad(x, (0, w_pad, 0, h_pad)).unsqueeze(1)).flatten(1)
        c = self.condition(labels, pitches, x.shape[0])
        if c is not None:
            h = torch.cat([h, c], dim=1)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, pitches: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``z (B, latent_dim)`` -> normalised spectrogram ``(B, rows, frames)``."""
        c = self.condition(labels, pitches, z.shape[0])
        if c is not None:
            z = torch.cat([z, c], dim=1)
        h = self.from_latent(z).view(z.shape[0], *self.cfg.bottom_shape)
        y = self.out(self.decoder(h)).squeeze(1)
        return y[:, : self.cfg.rows, : self.cfg.frames]

    @property
    def latent_size(self) -> int:
        return self.cfg.latent_dim

    def encode_latent(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, pitches: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Posterior mean ``(B, latent_dim)``."""
        return self.encode(x, labels, pitches)[0]

    def decode_latent(
        self, z: torch.Tensor, labels: torch.Tensor | None = None, pitches: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`decode` (the generation protocol's name)."""
        return self.decode(z, labels, pitches)

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        pitches: torch.Tensor | None = None,
        sample: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction ``(B, rows, frames)``, mean and log-variance ``(B, latent_dim)``."""
        mu, logvar = self.encode(x, labels, pitches)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode(z, labels, pitches), mu, logvar

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-2:] != (self.cfg.rows, self.cfg.frames):
            raise ParameterError(f"expected spectrograms (B, {self.cfg.rows}, {self.cfg.frames}), got {tuple(x.shape)}")


register(
    ModelKind(
        name="vae",
        config=ModelConfig,
        build=VAE,
        new_config=partial(ModelConfig, kind="vae"),
        training="soundloom.sounds.training.module:vae_module",
        help="Spectrogram VAE, unconditioned.",
    )
)
