"""Lightning module of the spectrogram VAE / CVAE: loss = recon + β·KL with a linear warm-up, plus (with a
``spectrum_weight``) the long-term spectrum term of :func:`~soundloom.sounds.losses.long_term_spectrum_error`.

With ``class_weighting`` a label-conditioned model weights each training item's reconstruction term by how
hard its class is so far: ``sqrt(e_c / mean(e))`` normalised to mean 1 over the batch, where ``e_c`` is a running
mean (decay 0.9 per batch) of the class's summed squared error. On the built-in one-shots the thin, moving
partials of the sweeps and the bell cost several times the error of a kick or a hi-hat, and at a 3-minute
budget their decoder is still blurring them when training stops.

:func:`vae_module` is the training hook the "vae" and "cvae" kinds name in the model registry.
"""

from __future__ import annotations

import lightning as L
import torch

from ...core.errors import ParameterError
from ...data.store import FeatureStore
from ..losses import ElboTerms, beta_at, elbo_terms, kl_divergence, long_term_spectrum_error, reconstruction_loss
from ..models import build_model, config_from_dict


class VAEModule(L.LightningModule):
    """Wraps :class:`~soundloom.sounds.models.VAE`; batches are ``(x (B, rows, frames), label (B,), pitch (B,))``."""

    def __init__(
        self,
        model: dict,
        lr: float = 1e-3,
        beta: float = 0.1,
        warmup_steps: int = 500,
        weight_decay: float = 0.0,
        class_weighting: bool = False,
        spectrum_weight: float = 0.0,
        row_scale: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(config_from_dict(model))
        # About a fifth less CPU time per step for these small convolutions (export makes tensors contiguous).
        self.model.to(memory_format=torch.channels_last)
        self.lr, self.beta, self.warmup_steps, self.weight_decay = lr, beta, warmup_steps, weight_decay
        self.class_weighting = bool(class_weighting and self.model.label_conditioned)
        if self.class_weighting:
            # Running error per class (0: not seen yet); a buffer, so a resumed run keeps it.
            self.register_buffer("class_error", torch.zeros(len(self.model.cfg.labels)))
        self.spectrum_weight = float(spectrum_weight)
        if self.spectrum_weight > 0:
            if row_scale is None:
                raise ParameterError("the long-term spectrum term needs the features' dB per unit (row_scale)")
            # Not persistent: the store gives it again, and checkpoints of runs without the term stay loadable.
            self.register_buffer("row_scale", torch.tensor(row_scale, dtype=torch.float32), persistent=False)

    @torch.no_grad()
    def item_weights(self, per_item: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Weights ``(B,)`` (mean 1) of a batch's items from their summed squared errors ``per_item (B,)`` and
        class indices ``labels (B,)``; updates the running error of each class in the batch first."""
        err = self.class_error
        # per-class batch means without a Python loop over classes (no host round trip per class on a GPU)
        count = torch.bincount(labels, minlength=len(err)).to(err.dtype)
        mean = torch.zeros_like(err).index_add_(0, labels, per_item.to(err.dtype)) / count.clamp_min(1)
        running = torch.where(err == 0, mean, 0.9 * err + 0.1 * mean)
        err.copy_(torch.where(count > 0, running, err))
        w = (err[labels].clamp_min(1e-12) / err[err > 0].mean()).sqrt()
        return w / w.mean()

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
        terms = elbo_terms(x_hat, x, mu, logvar, beta)
        logged = {}
        spectrum = None
        if self.spectrum_weight > 0:
            spectrum = long_term_spectrum_error(x_hat, x, self.row_scale)
            logged[f"{stage}/spectrum"] = spectrum.mean()
            terms.loss = terms.loss + self.spectrum_weight * spectrum.mean()
        if stage == "train" and self.class_weighting and bool((labels >= 0).all()):
            # Logged terms stay unweighted, so runs with and without the weighting compare.
            per_item = reconstruction_loss(x_hat, x)
            weights = self.item_weights(per_item.detach(), labels)
            if spectrum is not None:
                per_item = per_item + self.spectrum_weight * spectrum
            loss = (weights * per_item).mean() + beta * kl_divergence(mu, logvar).mean()
            terms = ElboTerms(loss, terms.recon, terms.kl, terms.mse, beta)
        on_step = stage == "train"
        self.log_dict(
            {
                f"{stage}/loss": terms.loss,
                f"{stage}/recon": terms.recon,
                f"{stage}/kl": terms.kl,
                f"{stage}/mse": terms.mse,
                f"{stage}/elbo": terms.elbo,
                **logged,
            },
            on_step=on_step,
            on_epoch=True,
            prog_bar=False,
            batch_size=x.shape[0],
            sync_dist=True,  # epoch means over every DDP process (a no-op on one)
        )
        return terms

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
        params = list(self.parameters())
        # The fused kernel: the same AdamW update in one pass over each tensor, about a sixth less CPU time per
        # step for these small models on one thread, so a CPU budget buys more steps.
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused)


def vae_module(model: dict, cfg) -> VAEModule:
    """Training hook of the VAE family: a :class:`VAEModule` for model config ``model`` and a TrainConfig."""
    weight = cfg.spectrum_weight
    scale = FeatureStore.open(cfg.features).normalizer.db_per_unit().tolist() if weight > 0 else None
    return VAEModule(
        model,
        lr=cfg.lr,
        beta=cfg.beta,
        warmup_steps=cfg.warmup_steps,
        class_weighting=cfg.class_weighting,
        spectrum_weight=weight,
        row_scale=scale,
    )
