"""Conditional VAE: encoder and decoder both see a class embedding (and a pitch embedding)."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ...core.errors import ParameterError
from .protocol import EmbeddedConditions
from .registry import KindOption, ModelKind, register
from .vae import VAE, ModelConfig


class CVAE(EmbeddedConditions, VAE):
    """VAE conditioned on a class index ``(B,)`` and, when ``n_pitches > 0``, a MIDI pitch ``(B,)``."""

    def __init__(self, cfg: ModelConfig) -> None:
        self._cond = (cfg.embed_dim if cfg.labels else 0) + (cfg.embed_dim if cfg.n_pitches else 0)
        super().__init__(cfg)
        self.label_embed = nn.Embedding(len(cfg.labels), cfg.embed_dim) if cfg.labels else None
        self.pitch_embed = nn.Embedding(cfg.n_pitches, cfg.embed_dim) if cfg.n_pitches else None

    @property
    def cond_dim(self) -> int:
        return self._cond

    def condition(self, labels: torch.Tensor | None, pitches: torch.Tensor | None, batch: int) -> torch.Tensor:
        parts = []
        if self.label_embed is not None:
            if labels is None:
                raise ParameterError(f"this cvae needs a label, one of {self.cfg.labels}")
            parts.append(self.label_embed(labels.long().view(batch)))
        if self.pitch_embed is not None:
            if pitches is None:
                raise ParameterError("this cvae needs a MIDI pitch")
            parts.append(self.pitch_embed(pitches.long().clamp(0, self.cfg.n_pitches - 1).view(batch)))
        return torch.cat(parts, dim=1)


register(
    ModelKind(
        name="cvae",
        config=ModelConfig,
        build=CVAE,
        new_config=partial(ModelConfig, kind="cvae"),
        training="soundloom.sounds.training.module:vae_module",
        conditional=True,
        options=(KindOption("embed_dim", int, 16, "Size of each condition embedding (class, pitch)."),),
        help="Spectrogram VAE conditioned on the class label (and the MIDI pitch when the data has one).",
    )
)
