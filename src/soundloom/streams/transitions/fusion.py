"""``fusion``: the contrastive score plus ``weight`` x the features score, still one dot product.

Trained as ``contrastive`` (InfoNCE), then the features scorer's pool statistics are fitted and the
weight is chosen on the validation songs (the one with the best MRR among 100 candidates).
"""

from __future__ import annotations

import torch

from .base import TransitionScorer
from .contrastive import ContrastiveScorer
from .features import FeatureScorer
from .registry import TrainContext, register


class FusionScorer(TransitionScorer):
    """Contrastive score + ``weight`` x features score; embeddings concatenated, so a search stays a product."""

    name = "fusion"

    def __init__(self, contrastive: TransitionScorer, features: TransitionScorer, weight: float = 1.0):
        super().__init__(
            contrastive.sample_rate,
            max(contrastive.tail_samples, features.tail_samples),
            max(contrastive.head_samples, features.head_samples),
        )
        self.contrastive = contrastive
        self.features = features
        self.register_buffer("weight", torch.tensor(float(weight)))

    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.contrastive.embed_tails(tails), self.weight * self.features.embed_tails(tails)], 1)

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.contrastive.embed_heads(heads), self.features.embed_heads(heads)], 1)

    def config(self) -> dict:
        return {
            "contrastive": self.contrastive.config(),
            "features": self.features.config(),
            "weight": float(self.weight),
        }

    @classmethod
    def from_config(cls, cfg: dict) -> FusionScorer:
        """Saved configs hold ``sample_rate`` in each part; a fresh build gives it once at the top."""
        rate = {"sample_rate": cfg["sample_rate"]} if "sample_rate" in cfg else {}
        return cls(
            ContrastiveScorer.from_config({**rate, **cfg.get("contrastive", {})}),
            FeatureScorer.from_config({**rate, **cfg.get("features", {})}),
            cfg.get("weight", 1.0),
        )

    def parts(self) -> dict[str, TransitionScorer]:
        return {"contrastive": self.contrastive}  # so tables can show the contrastive part alone


def _train(scorer: FusionScorer, ctx: TrainContext) -> dict:
    from .training import fit_features, fit_fusion_weight, train_contrastive

    metrics = train_contrastive(
        scorer.contrastive,
        ctx.audio,
        ctx.split,
        ctx.steps,
        ctx.max_minutes,
        ctx.seed,
        ctx.lr,
        ctx.progress,
        ctx.cpu_minutes,
    )
    fit_features(scorer.features, ctx.catalog, ctx.audio, ctx.split["train"], ctx.seed)
    metrics.update(fit_fusion_weight(scorer, ctx.catalog, ctx.audio, ctx.split["val"] or ctx.split["train"], ctx.seed))
    return metrics


register(FusionScorer, train=_train, cli_options={"width": "contrastive.width"})
