"""Second-stage adversarial training of a vae/cvae run: the VAE-GAN (Larsen et al. 2016).

Usage::

    soundloom train FEATURES --model cvae --out runs/cvae --max-minutes 10
    soundloom train FEATURES --model vaegan --init-from runs/cvae --out runs/vaegan --max-minutes 5

The generator starts from the first stage's weights (checked against the hash in its config) and keeps
the VAE's loss; a multi-scale patch discriminator over normalised spectrograms judges its reconstructions
and its prior samples. Least-squares GAN losses (Mao et al. 2017: steadier than the log loss on small
data) and feature matching on the discriminator's layers (Salimans et al. 2016; MelGAN) push the decoder
towards the sharp, quiet-floored spectra that a pure squared error averages away.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from ..generator import load_run_model
from ..losses import beta_at, elbo_terms
from ..models import build_model, config_from_dict

# Weight of the VAE loss per bin: the mel-reconstruction weight of HiFi-GAN (45), so that adversarial
# and feature-matching terms sharpen the output without outweighing reconstruction.
RECON_WEIGHT = 45.0
LR_SCALE = 0.25  # the second stage fine-tunes: a quarter of --lr, for the generator and the discriminator


class PatchDiscriminator(nn.Module):
    """Strided 2-D convs over ``(B, 1, rows, frames)``: a map of real/fake scores and the layer features."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.layers = nn.ModuleList(
            [
                nn.Conv2d(1, c, 4, stride=2, padding=1),
                nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
                nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1),
            ]
        )
        self.score = nn.Conv2d(4 * c, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            feats.append(x)
        return self.score(x), feats


class MultiScaleDiscriminator(nn.Module):
    """Patch discriminators at full and half resolution of a normalised spectrogram ``(B, rows, frames)``."""

    def __init__(self, channels: int = 32, scales: int = 2) -> None:
        super().__init__()
        self.discs = nn.ModuleList(PatchDiscriminator(channels) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        x = x.unsqueeze(1)
        out = []
        for i, disc in enumerate(self.discs):
            out.append(disc(x if i == 0 else F.avg_pool2d(x, 2**i, ceil_mode=True)))
        return out


def lsgan_d(real, fakes) -> torch.Tensor:
    """Discriminator loss: real scores to 1, each fake batch's to 0 (fakes averaged)."""
    loss = sum((r - 1).pow(2).mean() for r, _ in real)
    for fake in fakes:
        loss = loss + sum(f.pow(2).mean() for f, _ in fake) / len(fakes)
    return loss


def lsgan_g(fakes) -> torch.Tensor:
    """Generator loss: each fake batch's scores to 1 (averaged over fake batches)."""
    return sum(sum((f - 1).pow(2).mean() for f, _ in fake) for fake in fakes) / len(fakes)


def feature_matching(real, fake) -> torch.Tensor:
    """Mean L1 distance between the discriminator's layer features of real and reconstructed items."""
    pairs = [(fr, ff) for (_, frs), (_, ffs) in zip(real, fake) for fr, ff in zip(frs, ffs)]
    return sum((fr.detach() - ff).abs().mean() for fr, ff in pairs) / len(pairs)


class VAEGANModule(L.LightningModule):
    """VAE (from ``init_from``) + multi-scale discriminator, trained in alternation (manual optimisation)."""

    def __init__(
        self,
        model: dict,
        lr: float = 2e-3,
        beta: float = 0.03,
        adv_weight: float = 1.0,
        fm_weight: float = 2.0,
        disc_channels: int = 32,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        cfg = config_from_dict(model)
        self.model = build_model(cfg)
        if cfg.init_from:
            first = load_run_model(cfg.init_from["run"], cfg.init_from.get("sha256"))
            self.model.load_state_dict(first.state_dict())
        self.disc = MultiScaleDiscriminator(disc_channels)
        self.lr, self.beta, self.adv_weight, self.fm_weight = lr * LR_SCALE, beta, adv_weight, fm_weight

    def conditions(self, labels: torch.Tensor, pitches: torch.Tensor):
        return (
            labels if self.model.label_conditioned else None,
            pitches if self.model.pitch_conditioned else None,
        )

    def training_step(self, batch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        x, labels, pitches = batch
        lab, pit = self.conditions(labels, pitches)
        x_hat, mu, logvar = self.model(x, lab, pit, sample=True)
        z = torch.randn_like(mu)
        x_prior = self.model.decode(z, lab, pit)

        loss_d = lsgan_d(self.disc(x), [self.disc(x_hat.detach()), self.disc(x_prior.detach())])
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()

        terms = elbo_terms(x_hat, x, mu, logvar, beta_at(self.global_step, self.beta, 0))
        real, fake, prior = self.disc(x), self.disc(x_hat), self.disc(x_prior)
        adv = lsgan_g([fake, prior])
        fm = feature_matching(real, fake)
        loss_g = RECON_WEIGHT * terms.loss / x[0].numel() + self.adv_weight * adv + self.fm_weight * fm
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        b = x.shape[0]
        self.log_dict(
            {
                "train/loss": terms.loss,
                "train/recon": terms.recon,
                "train/kl": terms.kl,
                "train/mse": terms.mse,
                "train/adv": adv,
                "train/fm": fm,
                "train/disc": loss_d,
            },
            on_step=True,
            on_epoch=True,
            batch_size=b,
            sync_dist=True,  # epoch means over every DDP process (a no-op on one)
        )
        self.log("loss", loss_g, prog_bar=True, on_step=True, on_epoch=False, batch_size=b)

    def validation_step(self, batch, batch_idx: int) -> None:
        x, labels, pitches = batch
        lab, pit = self.conditions(labels, pitches)
        x_hat, mu, logvar = self.model(x, lab, pit, sample=True)
        terms = elbo_terms(x_hat, x, mu, logvar, self.beta)
        b = x.shape[0]
        self.log_dict(
            {"val/loss": terms.loss, "val/recon": terms.recon, "val/kl": terms.kl, "val/mse": terms.mse},
            on_epoch=True,
            batch_size=b,
            sync_dist=True,
        )
        self.log("val_loss", terms.loss, prog_bar=True, on_epoch=True, batch_size=b, sync_dist=True)

    def configure_optimizers(self):
        return (
            torch.optim.AdamW(self.model.parameters(), lr=self.lr, betas=(0.5, 0.9)),
            torch.optim.AdamW(self.disc.parameters(), lr=self.lr, betas=(0.5, 0.9)),
        )


def vaegan_module(model: dict, cfg) -> VAEGANModule:
    """Training hook of the "vaegan" kind."""
    opts = cfg.model_options
    return VAEGANModule(
        model,
        lr=cfg.lr,
        beta=cfg.beta,
        adv_weight=float(opts.get("adv_weight", 1.0)),
        fm_weight=float(opts.get("fm_weight", 2.0)),
        disc_channels=int(opts.get("disc_channels", 32)),
    )
