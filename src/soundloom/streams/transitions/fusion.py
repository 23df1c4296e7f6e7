"""``fusion``: a weighted sum of the contrastive score and fixed continuity cues, still one dot product.

    score = c x contrastive + w x features + p x partials

Trained as ``contrastive`` (InfoNCE), then the features scorer's pool statistics are fitted on the
training songs and the three weights on the validation songs (a softmax over each anchor's 100
candidates, true next first; see :func:`~soundloom.streams.transitions.training.fit_fusion_weights`).
On a pool with few validation songs the contrastive part is a cross-fitted ensemble and the weights are
fitted on every non-test song, out of fold (:func:`~soundloom.streams.transitions.training.train_cross_fitted`).
Runs saved before the ``partials`` cue (a config with a ``weight`` and no ``partials``) load as
contrastive + ``weight`` x features.
"""

from __future__ import annotations

import torch

from .base import TransitionScorer
from .contrastive import ContrastiveEnsemble, ContrastiveScorer
from .features import FeatureScorer
from .partials import PartialsScorer
from .registry import TrainContext, register


class FusionScorer(TransitionScorer):
    """Weighted contrastive, features and (optional) partials scores; embeddings concatenated, each tail part
    scaled by its weight, so a search stays a product.

    Args:
        contrastive, features: the parts.
        weight: features weight.
        partials: the partials cue, or None (runs saved before it).
        contrastive_weight, partials_weight: their weights (only with ``partials``).
    """

    name = "fusion"

    def __init__(
        self,
        contrastive: TransitionScorer,
        features: TransitionScorer,
        weight: float = 1.0,
        partials: TransitionScorer | None = None,
        contrastive_weight: float = 1.0,
        partials_weight: float = 1.0,
    ):
        parts = [contrastive, features] + ([partials] if partials is not None else [])
        super().__init__(
            contrastive.sample_rate, max(p.tail_samples for p in parts), max(p.head_samples for p in parts)
        )
        self.contrastive = contrastive
        self.features = features
        self.partials = partials
        self.register_buffer("weight", torch.tensor(float(weight)))
        if partials is not None:  # old runs' state dicts hold only "weight"
            self.register_buffer("cue_weights", torch.tensor([float(contrastive_weight), float(partials_weight)]))

    def weights(self) -> dict[str, float]:
        """The weight of each part's score."""
        out = {"contrastive": 1.0, "features": float(self.weight)}
        if self.partials is not None:
            out.update(contrastive=float(self.cue_weights[0]), partials=float(self.cue_weights[1]))
        return out

    def set_weights(self, contrastive: float, features: float, partials: float = 0.0) -> None:
        """Set the parts' weights (``contrastive`` and ``partials`` only when the model has the partials cue)."""
        self.weight.fill_(float(features))
        if self.partials is not None:
            self.cue_weights.copy_(torch.tensor([float(contrastive), float(partials)]))

    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        c, f = self.contrastive.embed_tails(tails), self.weight * self.features.embed_tails(tails)
        if self.partials is None:
            return torch.cat([c, f], 1)
        cw, pw = self.cue_weights
        return torch.cat([cw * c, f, pw * self.partials.embed_tails(tails)], 1)

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        parts = [self.contrastive, self.features] + ([self.partials] if self.partials is not None else [])
        return torch.cat([p.embed_heads(heads) for p in parts], 1)

    def config(self) -> dict:
        cfg = {
            "contrastive": self.contrastive.config(),
            "features": self.features.config(),
            "weight": float(self.weight),
        }
        if self.partials is not None:
            w = self.weights()
            cfg.update(
                partials=self.partials.config(),
                contrastive_weight=w["contrastive"],
                partials_weight=w["partials"],
            )
        return cfg

    @classmethod
    def from_config(cls, cfg: dict) -> FusionScorer:
        """Saved configs hold ``sample_rate`` in each part; a fresh build gives it once at the top. A fresh
        build has the partials cue; a saved config without ``partials`` (older runs) does not."""
        rate = {"sample_rate": cfg["sample_rate"]} if "sample_rate" in cfg else {}
        partials = cfg.get("partials", None if "weight" in cfg else {})
        c = cfg.get("contrastive", {})
        return cls(
            ContrastiveEnsemble(c["members"]) if "members" in c else ContrastiveScorer.from_config({**rate, **c}),
            FeatureScorer.from_config({**rate, **cfg.get("features", {})}),
            cfg.get("weight", 1.0),
            None if partials is None else PartialsScorer.from_config({**rate, **partials}),
            cfg.get("contrastive_weight", 1.0),
            cfg.get("partials_weight", 1.0),
        )

    def parts(self) -> dict[str, TransitionScorer]:
        return {"contrastive": self.contrastive}  # so tables can show the contrastive part alone


def _train(scorer: FusionScorer, ctx: TrainContext) -> dict:
    from .training import (
        contrastive_of_run,
        cross_fitted,
        fit_features,
        fit_fusion_weights,
        train_contrastive,
        train_cross_fitted,
    )

    if ctx.contrastive_from:  # a trained contrastive part, taken as it is
        trained, metrics = contrastive_of_run(ctx.contrastive_from, ctx.catalog, ctx.split["test"])
        scorer.contrastive = trained  # its own config (width, frames), whatever the options asked
        parts = [p for p in (trained, scorer.features, scorer.partials) if p is not None]
        scorer.tail_samples = max(p.tail_samples for p in parts)
        scorer.head_samples = max(p.head_samples for p in parts)
    elif cross_fitted(ctx.split):  # few validation songs: every non-test song validates, out of fold
        return train_cross_fitted(scorer, ctx)
    else:
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
    metrics.update(fit_fusion_weights(scorer, ctx.catalog, ctx.audio, ctx.split["val"] or ctx.split["train"], ctx.seed))
    return metrics


register(FusionScorer, train=_train, cli_options={"width": "contrastive.width"})
