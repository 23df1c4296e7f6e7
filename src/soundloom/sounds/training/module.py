"""Lightning module of the spectrogram VAE / CVAE: loss = recon + β·KL with a linear warm-up.

:func:`vae_module` is the training hook the "vae" and "cvae" kinds name in the model registry.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from ..losses import beta_at, elbo_terms
from ..models import build_model, config_from_dict
from .cpu_budget import CpuClock

FINAL_LR_SHARE = 0.05  # a cosine schedule ends at this share of the learning rate


class VAEModule(L.LightningModule):
    """Wraps :class:`~soundloom.sounds.models.VAE`; batches are ``(x (B, rows, frames), label (B,), pitch (B,))``."""

    def __init__(
        self, model: dict, lr: float = 1e-3, beta: float = 0.1, warmup_steps: int = 500, weight_decay: float = 0.0
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(config_from_dict(model))
        self.recon_kind = getattr(self.model.cfg, "recon", "l2")
        self.schedule = getattr(self.model.cfg, "schedule", "constant")
        # About a fifth less CPU time per step for these small convolutions (export makes tensors contiguous).
        self.model.to(memory_format=torch.channels_last)
        self.lr, self.beta, self.warmup_steps, self.weight_decay = lr, beta, warmup_steps, weight_decay

    def conditions(
        self, labels: torch.Tensor, pitches: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The batch's labels ``(B,)`` and pitches ``(B,)``, each None when the model does not take it."""
        return (
            labels if self.model.label_conditioned else None,
            pitches if self.model.pitch_conditioned else None,
        )

    def _step(self, batch, stage: str, beta: float):
        x, labels, pitches = batch
        lab, pit = self.conditions(labels, pitches)
        x_hat, mu, logvar = self.model(x, lab, pit, sample=True)
        terms = elbo_terms(x_hat, x, mu, logvar, beta, self.recon_kind)
        on_step = stage == "train"
        self.log_dict(
            {
                f"{stage}/loss": terms.loss,
                f"{stage}/recon": terms.recon,
                f"{stage}/kl": terms.kl,
                f"{stage}/mse": terms.mse,
                f"{stage}/elbo": terms.elbo,
            },
            on_step=on_step,
            on_epoch=True,
            prog_bar=False,
            batch_size=x.shape[0],
            sync_dist=not on_step,
        )
        return terms

    def progress(self) -> float:
        """Share of the training done, in [0, 1]: of the CPU budget when there is one, else of the steps that
        ``max_epochs`` allows."""
        clock = next((c for c in self.trainer.callbacks if isinstance(c, CpuClock)), None)
        done = clock.fraction() if clock is not None else None
        if done is None:
            total = self.trainer.estimated_stepping_batches
            done = self.global_step / total if total and math.isfinite(total) else 0.0
        return min(1.0, max(0.0, done))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.schedule != "cosine":
            return
        share = FINAL_LR_SHARE + (1.0 - FINAL_LR_SHARE) * 0.5 * (1.0 + math.cos(math.pi * self.progress()))
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = self.lr * share

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        beta = beta_at(self.global_step, self.beta, self.warmup_steps)
        self.log("beta", beta, on_step=True, on_epoch=False, batch_size=batch[0].shape[0])
        terms = self._step(batch, "train", beta)
        self.log("loss", terms.loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch[0].shape[0])
        return terms.loss

    def validation_step(self, batch, batch_idx: int) -> None:
        # Held-out loss always at the full β so epochs compare during the warm-up.
        terms = self._step(batch, "val", self.beta)
        self.log("val_loss", terms.loss, prog_bar=True, on_epoch=True, batch_size=batch[0].shape[0], sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def vae_module(model: dict, cfg) -> VAEModule:
    """Training hook of the VAE family: a :class:`VAEModule` for model config ``model`` and a TrainConfig."""
    return VAEModule(model, lr=cfg.lr, beta=cfg.beta, warmup_steps=cfg.warmup_steps)
