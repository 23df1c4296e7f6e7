"""Training of the code models: the vqvae (reconstruction + commitment, EMA codebook) and its prior.

Usage::

    soundloom train FEATURES --model vqvae --out runs/vq --latent 64 --codebook-size 256 --max-minutes 8
    soundloom train FEATURES --model prior --vqvae runs/vq --out runs/prior --max-minutes 7
    soundloom generate runs/prior --out out/ --label 7 --seconds 4 --top-k 32

The prior's batches are the vqvae's codes of the store's items, encoded on the fly by the frozen vqvae. With
``--joined S`` a share ``S`` of each training batch are windows across two items of one label played one after
the other, so that past one item's length (where sampling slides its window) the prior has seen a sound end
and the next begin, not only sounds that start at its first code (off by default: on the digits, 0.25 took
continuations from silence after the prompt to a new digit, but made the 1-second samples shorter)::

    soundloom train FEATURES --model prior --vqvae runs/vq --out runs/prior --joined 0.25 --cpu-minutes 7.5
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..generator import load_run_model
from ..models import build_model, config_from_dict
from .export import posterior_means


class VQVAEModule(L.LightningModule):
    """Loss = per-bin MSE of the reconstruction + ``commitment`` x commitment loss; logs codebook usage."""

    def __init__(self, model: dict, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(config_from_dict(model))
        self.lr = lr

    def conditions(self, labels: torch.Tensor, pitches: torch.Tensor):
        return None, None

    def _step(self, batch, stage: str) -> torch.Tensor:
        x = batch[0]
        x_hat, codes, commitment = self.model(x)
        mse = (x_hat - x).pow(2).mean()
        loss = mse + self.model.cfg.commitment * commitment
        usage, perplexity = self.model.quantizer.usage(codes, self.model.cfg.codebook_size)
        on_step = stage == "train"
        self.log_dict(
            {
                f"{stage}/loss": loss,
                f"{stage}/mse": mse,
                f"{stage}/recon": (x_hat - x).pow(2).flatten(1).sum(1).mean(),
                f"{stage}/commitment": commitment,
                f"{stage}/usage": usage,
                f"{stage}/perplexity": perplexity,
            },
            on_step=on_step,
            on_epoch=True,
            batch_size=x.shape[0],
            sync_dist=True,  # epoch means over every DDP process (a no-op on one)
        )
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss = self._step(batch, "val")
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=batch[0].shape[0], sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def vqvae_module(model: dict, cfg) -> VQVAEModule:
    """Training hook of the "vqvae" kind."""
    return VQVAEModule(model, lr=cfg.lr)


class PriorModule(L.LightningModule):
    """Cross-entropy of the vqvae's codes under the prior (nats per code)."""

    def __init__(self, model: dict, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        cfg = config_from_dict(model)
        self.model = build_model(cfg)
        vq = load_run_model(cfg.vqvae["run"], cfg.vqvae.get("sha256"))
        for p in vq.parameters():
            p.requires_grad_(False)
        self.model.attach("vqvae", vq)
        self.lr = lr

    def conditions(self, labels: torch.Tensor, pitches: torch.Tensor):
        return (
            labels if self.model.label_conditioned else None,
            pitches if self.model.pitch_conditioned else None,
        )

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, labels, pitches = batch
        with torch.no_grad():
            codes = self.model.vqvae.to(x.device).encode_latent(x).long()
            resumed = None
            if stage == "train" and self.model.cfg.joined > 0:
                codes = joined_windows(codes, labels, self.model.cfg.joined)
                resumed = torch.arange(len(codes), device=codes.device) < int(round(self.model.cfg.joined * len(codes)))
        lab, pit = self.conditions(labels, pitches)
        loss = self.model(codes, lab, pit, resumed)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss = self._step(batch, "val")
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=batch[0].shape[0], sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.01)


def joined_windows(codes: torch.Tensor, labels: torch.Tensor, share: float) -> torch.Tensor:
    """``codes (B, T)`` with the first ``round(share * B)`` rows replaced by windows of ``T`` codes across two
    items of the same label: item ``i``'s codes, then another item's of its label (itself when it is the only
    one in the batch), cut at a random offset in ``1..T-1`` (every window holds the join). Draws from the
    global torch generator (seeded per run)."""
    b, t = codes.shape
    k = int(round(float(share) * b))
    if k == 0 or t < 2:
        return codes
    lab = labels.view(-1).long() if labels is not None else torch.zeros(b, dtype=torch.long)
    # Each row's partner: the next row of its label in a random order, wrapping within the label.
    order = torch.randperm(b, device=codes.device)
    ranked = order[torch.argsort(lab[order], stable=True)]
    partner = torch.empty_like(ranked)
    sorted_lab = lab[ranked]
    nxt = torch.roll(ranked, -1)
    same = torch.roll(sorted_lab, -1) == sorted_lab
    first_of = {int(v): int(ranked[(sorted_lab == v).nonzero()[0, 0]]) for v in sorted_lab.unique()}
    wrap = torch.tensor([first_of[int(v)] for v in sorted_lab], device=codes.device)
    partner[ranked] = torch.where(same, nxt, wrap)
    rows = torch.arange(k, device=codes.device)
    pair = torch.cat([codes[rows], codes[partner[rows]]], dim=1)  # (k, 2T)
    offsets = torch.randint(1, t, (k,), device=codes.device)
    idx = offsets[:, None] + torch.arange(t, device=codes.device)[None]
    out = codes.clone()
    out[:k] = torch.gather(pair, 1, idx)
    return out


def prior_module(model: dict, cfg) -> PriorModule:
    """Training hook of the "prior" kind (loads the vqvae its config names, checking its hash)."""
    return PriorModule(model, lr=cfg.lr)


def fit_code_prior(model: nn.Module, dataset: Dataset) -> dict[str, torch.Tensor]:
    """The vqvae's export hook: code counts per position ``prior.codes (code_frames, codebook)``."""
    codes, _, _ = posterior_means(model, dataset)
    k = model.cfg.codebook_size
    counts = np.stack([np.bincount(col.astype(np.int64), minlength=k) for col in codes.T]).astype(np.float32)
    return {"prior.codes": torch.from_numpy(counts)}


def fit_no_prior(model: nn.Module, dataset: Dataset) -> dict[str, torch.Tensor]:
    """A kind that samples on its own (the prior) fits nothing at export."""
    return {}
