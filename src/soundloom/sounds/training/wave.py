"""Training of the waveform kinds (wave-vae, ddsp): multi-resolution STFT loss + β·KL on the store's audio.

Usage::

    soundloom train FEATURES --model wave-vae --out runs/wave --max-minutes 15 [--stft-weight 100]
    soundloom train FEATURES --model ddsp --out runs/ddsp --cpu-minutes 15 --threads 1 [--n-harmonics 64]

The feature store holds spectrograms, not audio, so :class:`WaveDataset` reads each item's file (its
``index.json`` path) once, at the store's rate and clip length, as ``prepare`` did.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from ...core.convert import fit_length
from ...core.errors import AudioError, StoreError
from ...core.io import load_audio
from ...data.store import FeatureStore
from ..losses import DEFAULT_RESOLUTIONS, beta_at, kl_divergence, mr_stft_distance
from ..models import build_model, config_from_dict

FADE_S = 0.005  # the fade at a cut, as prepare's default
# Four of DDSP's six resolutions: 1024 resolves the harmonics of low notes (49 Hz apart at G1), 128 the attacks.
# The loss is most of a ddsp step (its synthesiser is cheap); all six would halve the steps a budget buys.
DDSP_RESOLUTIONS = ((1024, 256), (512, 128), (256, 64), (128, 32))


class WaveDataset(Dataset):
    """Items of a store as audio: ``(waveform (n_samples,), label index, MIDI pitch)``; -1 when absent."""

    def __init__(
        self,
        store: FeatureStore,
        rows: np.ndarray,
        label_key: str | None = None,
        labels: list[str] | None = None,
        use_pitch: bool = False,
    ) -> None:
        self.rows = np.asarray(rows)
        index = {name: i for i, name in enumerate(labels or [])}
        values = store.labels(label_key) if label_key else [None] * len(store)
        self.labels = np.array([index.get(str(v), -1) if v is not None else -1 for v in values])
        self.pitches = np.array([int(p) for p in store.labels("pitch")]) if use_pitch else np.full(len(store), -1)
        rate, n = store.sample_rate, store.n_samples
        fade = int(round(FADE_S * rate))
        self.audio = np.zeros((len(self.rows), n), dtype=np.float32)
        for j, row in enumerate(self.rows):
            path = store.items[int(row)]["path"]
            try:
                wav, _ = load_audio(path, sample_rate=rate, silence_db=None)
            except AudioError as exc:
                raise StoreError(
                    f"{store.path}: item {row} ({path}) cannot be read for a waveform model: {exc}"
                ) from exc
            self.audio[j] = fit_length(wav, n, fade_samples=fade)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        row = int(self.rows[i])
        return torch.from_numpy(self.audio[i]), int(self.labels[row]), int(self.pitches[row])


class WaveVAEModule(L.LightningModule):
    """``loss = stft_weight * MR-STFT(x_hat, x) + β * KL`` (β ramped up over ``warmup_steps``)."""

    def __init__(
        self,
        model: dict,
        lr: float = 1e-3,
        beta: float = 0.03,
        warmup_steps: int = 200,
        stft_weight: float = 100.0,
        resolutions: tuple[tuple[int, int], ...] = DEFAULT_RESOLUTIONS,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(config_from_dict(model))
        self.lr, self.beta, self.warmup_steps, self.stft_weight = lr, beta, warmup_steps, stft_weight
        self.resolutions = tuple((int(n), int(h)) for n, h in resolutions)

    def conditions(self, labels: torch.Tensor, pitches: torch.Tensor):
        return (
            labels if self.model.label_conditioned else None,
            pitches if self.model.pitch_conditioned else None,
        )

    def _step(self, batch, stage: str, beta: float) -> torch.Tensor:
        x, labels, pitches = batch
        lab, pit = self.conditions(labels, pitches)
        x_hat, mu, logvar = self.model(x, lab, pit)
        stft = mr_stft_distance(x_hat, x, self.model.cfg.sample_rate, self.resolutions).mean()
        kl = kl_divergence(mu, logvar).mean()
        loss = self.stft_weight * stft + beta * kl
        on_step = stage == "train"
        self.log_dict(
            {
                f"{stage}/loss": loss,
                f"{stage}/recon": stft,
                f"{stage}/kl": kl,
                f"{stage}/mse": (x_hat - x).pow(2).mean(),
            },
            on_step=on_step,
            on_epoch=True,
            batch_size=x.shape[0],
            sync_dist=True,  # epoch means over every DDP process (a no-op on one)
        )
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train", beta_at(self.global_step, self.beta, self.warmup_steps))
        self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss = self._step(batch, "val", self.beta)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=batch[0].shape[0], sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def wave_vae_module(model: dict, cfg, resolutions: tuple[tuple[int, int], ...] = DEFAULT_RESOLUTIONS) -> WaveVAEModule:
    """Training hook of the "wave-vae" kind (and, with ``resolutions``, of the "ddsp" kind)."""
    return WaveVAEModule(
        model,
        lr=cfg.lr,
        beta=cfg.beta,
        warmup_steps=cfg.warmup_steps,
        stft_weight=float(cfg.model_options.get("stft_weight", 100.0)),
        resolutions=resolutions,
    )


def ddsp_module(model: dict, cfg) -> WaveVAEModule:
    """Training hook of the "ddsp" kind: the wave-vae's objective over :data:`DDSP_RESOLUTIONS`."""
    return wave_vae_module(model, cfg, DDSP_RESOLUTIONS)
