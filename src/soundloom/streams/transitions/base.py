"""Transition scorers: how well does chunk B follow chunk A?

Every model sees only the audio at the cut: the *tail* of A (the last ``tail_samples`` before its
end) and the *head* of B (the first ``head_samples`` from its start), mono at ``sample_rate``.

    scorer.score_pairs(tails (B, Wt), heads (B, Wh)) -> (B,)   higher = better join
    scorer.embed_tails(tails) -> (B, D); scorer.embed_heads(heads) -> (B, D)   when scorer.embeds
        with score_pairs == (embed_tails * embed_heads).sum(-1), so a pool search is a matrix product.

Models register themselves in :mod:`soundloom.streams.transitions.registry`: ``features`` (MFCC +
chroma + loudness continuity, no training), ``contrastive`` (two small log-mel encoders, InfoNCE),
``fusion`` (contrastive + weighted features) and ``cnn-lstm`` (the seed's pair classifier, kept for
comparison). Weights are saved as safetensors + JSON config.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...core.atomic import write_json


class TransitionScorer(nn.Module):
    """Base class; subclasses set ``name`` and implement scoring (and embedding when ``embeds``)."""

    name: str = ""
    embeds: bool = True

    def __init__(self, sample_rate: int, tail_samples: int, head_samples: int):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.tail_samples = int(tail_samples)
        self.head_samples = int(head_samples)

    # -- interface ----------------------------------------------------------------------------
    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        """Tail embeddings ``(B, D)`` of tail windows ``(B, >= tail_samples)`` (last samples used)."""
        raise NotImplementedError(f"{self.name} does not embed; score pairs with score_pairs")

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        """Head embeddings ``(B, D)`` of head windows ``(B, >= head_samples)`` (first samples used)."""
        raise NotImplementedError(f"{self.name} does not embed; score pairs with score_pairs")

    def score_pairs(self, tails: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """Join scores ``(B,)`` of the pairs (tail of A ``(B, Wt)``, head of B ``(B, Wh)``)."""
        return (self.embed_tails(tails) * self.embed_heads(heads)).sum(-1)

    def config(self) -> dict:
        """Constructor arguments (JSON): :meth:`from_config` of it rebuilds the model."""
        return {"sample_rate": self.sample_rate}

    @classmethod
    def from_config(cls, cfg: dict) -> TransitionScorer:
        """The model of a :meth:`config` (also of a partial one: missing keys take their defaults)."""
        return cls(**cfg)

    def parts(self) -> dict[str, TransitionScorer]:
        """Inner models that training also saves on their own (sub-folder name -> model); none by default."""
        return {}

    # -- helpers ------------------------------------------------------------------------------
    def fit_tails(self, tails: torch.Tensor) -> torch.Tensor:
        """The last ``tail_samples`` of each row, left-padded with zeros if short."""
        return _fit(torch.as_tensor(tails, dtype=torch.float32), self.tail_samples, keep_end=True)

    def fit_heads(self, heads: torch.Tensor) -> torch.Tensor:
        """The first ``head_samples`` of each row, right-padded with zeros if short."""
        return _fit(torch.as_tensor(heads, dtype=torch.float32), self.head_samples, keep_end=False)

    @property
    def edge_samples(self) -> int:
        """Window width the pool must provide for both tails and heads."""
        return max(self.tail_samples, self.head_samples)

    def save(self, run_dir: str | Path, extra: dict | None = None) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``run_dir`` (each atomically)."""
        from ...core.weights import save_safetensors

        run_dir = Path(run_dir)
        save_safetensors(run_dir / "model.safetensors", self.state_dict(), kind=f"transition-{self.name}")
        write_json(run_dir / "config.json", {"model": self.name, "config": self.config(), **(extra or {})}, indent=2)
        return run_dir


def _fit(x: torch.Tensor, n: int, keep_end: bool) -> torch.Tensor:
    if x.ndim != 2:
        raise ValueError(f"expected windows (batch, samples), got shape {tuple(x.shape)}")
    if x.shape[1] >= n:
        return x[:, x.shape[1] - n :] if keep_end else x[:, :n]
    pad = torch.zeros(x.shape[0], n - x.shape[1], dtype=x.dtype, device=x.device)
    return torch.cat([pad, x], 1) if keep_end else torch.cat([x, pad], 1)


def run_info(run: str | Path) -> dict:
    """The run's ``config.json`` (model name, config, split, metrics) or a stub for ``features``."""
    p = Path(run) / "config.json"
    return json.loads(p.read_text()) if p.exists() else {"model": str(run), "config": {}}


@torch.no_grad()
def batched(fn, x: np.ndarray | torch.Tensor, batch: int = 1024) -> np.ndarray:
    """Apply ``fn`` (tensor -> tensor) to ``x`` in batches along axis 0; float32 numpy result."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    outs = [fn(x[i : i + batch]).float().cpu().numpy() for i in range(0, len(x), batch)]
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)
