"""Small audio classifier on normalised spectrograms, used to score generated sounds.

Its pooled penultimate activations are the feature space of the Fréchet distance, the
diversity measure and NDB; its softmax gives accuracy and the Inception Score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .blocks import down_stage


@dataclass
class ClassifierConfig:
    """Rebuild information: feature shape, class names, widths."""

    rows: int = 129
    frames: int = 128
    labels: list[str] = field(default_factory=list)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    feature_dim: int = 128
    dropout: float = 0.3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["channels"] = tuple(known.get("channels", cls.channels))
        return cls(**known)


class SpectrogramClassifier(nn.Module):
    """``(B, rows, frames)`` normalised features -> logits ``(B, n_labels)``."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        if not cfg.labels:
            raise ValueError("a classifier needs at least one label")
        self.cfg = cfg
        ch = tuple(cfg.channels)
        self.body = nn.Sequential(*[down_stage(a, b, False) for a, b in zip((1,) + ch[:-1], ch)])
        self.project = nn.Sequential(nn.Linear(2 * ch[-1], cfg.feature_dim), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.feature_dim, len(cfg.labels)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding ``(B, feature_dim)``: mean- and max-pooled conv features, projected."""
        if x.ndim != 3 or x.shape[-2:] != (self.cfg.rows, self.cfg.frames):
            raise ValueError(f"expected (B, {self.cfg.rows}, {self.cfg.frames}), got {tuple(x.shape)}")
        h = self.body(x.unsqueeze(1))
        return self.project(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
