"""Run-directory callbacks: metrics CSV, loss plots, audio + spectrogram samples.

Plots and samples are drawn within a share of the CPU time the run has spent (:class:`CpuShare`): on the
built-in one-shots (5 steps an epoch) drawing them every epoch took about half of a 3-CPU-minute budget.
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import lightning as L
import torch

from ...core.atomic import write_text
from ...core.cputime import process_cpu_seconds
from ...core.io import write_audio
from ...core.levels import normalize_peak
from ...core.spectral import SpectrogramConfig, features
from ...data.stats import Normalizer
from ..decode import features_to_audio
from ..models import protocol
from ..plots import loss_curves, spectrogram_grid

COLUMNS = (
    "epoch",
    "step",
    "elapsed_s",
    "beta",
    "train/loss",
    "train/recon",
    "train/kl",
    "train/mse",
    "val/loss",
    "val/recon",
    "val/kl",
    "val/mse",
    "val/elbo",
    "train/perplexity",
    "train/usage",
    "train/adv",
    "train/fm",
    "train/disc",
    "train/spectrum",
    "val/spectrum",
)


DRAW_SHARE = 0.03  # of the run's CPU time, for plots and samples together


class CpuShare:
    """Whether an optional job (a plot, samples) may run now: each named job the first time, then only while
    the CPU seconds all of them have taken stay within ``share`` of what the process has spent since this
    object was made."""

    def __init__(self, share: float = DRAW_SHARE) -> None:
        self.share, self.start, self.spent, self.done = share, process_cpu_seconds(), 0.0, set()

    def due(self, name: str) -> bool:
        return name not in self.done or self.spent <= self.share * (process_cpu_seconds() - self.start)

    def run(self, name: str, job, *args) -> None:
        """Call ``job(*args)`` and count its CPU seconds."""
        t0 = process_cpu_seconds()
        try:
            job(*args)
        finally:
            self.spent += process_cpu_seconds() - t0
            self.done.add(name)


class MetricsCSV(L.Callback):
    """Appends one row per epoch to ``metrics.csv`` and redraws ``plots/loss.png`` while that stays within a
    ``draw`` share of the CPU time (and when training ends: a plot costs about a CPU-second, an epoch of a
    small store less)."""

    def __init__(self, run_dir: Path, draw: CpuShare | None = None) -> None:
        self.path, self.plot = Path(run_dir) / "metrics.csv", Path(run_dir) / "plots" / "loss.png"
        self.start = time.monotonic()
        self.draw = draw if draw is not None else CpuShare()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """On resume, drop rows written after the checkpoint (their epochs run again)."""
        if not trainer.is_global_zero or not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        if "step" not in rows[0]:
            return
        col = rows[0].index("step")

        def before_checkpoint(row: list[str]) -> bool:  # a row half-written by a kill is dropped too
            try:
                return len(row) == len(rows[0]) and int(float(row[col])) <= trainer.global_step
            except ValueError:
                return False

        kept = [r for r in rows[1:] if before_checkpoint(r)]
        if len(kept) < len(rows) - 1:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([rows[0], *kept])
            write_text(self.path, buf.getvalue())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.path.exists():
            loss_curves(self.path, self.plot)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # Read on every process: under DDP an epoch mean is an all-reduce, computed when first read.
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        if not trainer.is_global_zero:
            return
        row = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "elapsed_s": round(time.monotonic() - self.start, 2),
            "beta": m.get("beta", ""),
        }
        for key in COLUMNS[4:]:
            row[key] = m.get(key, m.get(f"{key}_epoch", ""))
        new = not self.path.exists()
        fields = COLUMNS
        if not new:  # a resumed run keeps the columns its file was started with
            with open(self.path, newline="") as f:
                fields = tuple(next(csv.reader(f), COLUMNS))
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.draw.due("loss"):
            self.draw.run("loss", loss_curves, self.path, self.plot)


class LastCheckpoint(L.Callback):
    """``checkpoints/last.ckpt`` (weights, optimizer, loops) every ``every_n_steps`` steps and at each
    epoch end, written to a temporary name and renamed, so a kill never leaves half a checkpoint."""

    def __init__(self, path: Path, every_n_steps: int = 200) -> None:
        self.path, self.every = Path(path), every_n_steps

    def _save(self, trainer: L.Trainer) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # full state (optimizer, loops) so resume restores all
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        # Not on an epoch's last batch: that state is saved at the epoch's end, after its metrics row, so a
        # kill between the two resumes into the epoch (which then writes its row) instead of past it.
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        if self.every > 0 and trainer.global_step % self.every == 0 and not last_batch:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._save(trainer)


class SampleWriter(L.Callback):
    """Reconstructions of a few held-out items and a few prior samples, as wav + png, after the first epoch,
    after later ones while that stays within the ``draw`` share of the CPU time, and after the last.

    Written to ``samples/epoch_NNN/``; prior samples of a cvae cycle through the labels.
    """

    def __init__(
        self,
        run_dir: Path,
        examples: torch.Tensor,
        labels: torch.Tensor,
        pitches: torch.Tensor,
        normalizer: Normalizer,
        spec: SpectrogramConfig,
        n_samples: int,
        n_prior: int = 2,
        griffin_lim_iters: int = 16,
        seed: int = 0,
        draw: CpuShare | None = None,
    ) -> None:
        self.dir = Path(run_dir) / "samples"
        self.examples, self.labels, self.pitches = examples, labels, pitches
        self.normalizer, self.spec, self.n_samples = normalizer, spec, n_samples
        self.n_prior, self.iters, self.seed = n_prior, griffin_lim_iters, seed
        self.draw = draw if draw is not None else CpuShare()
        self.pending: int | None = None  # an epoch whose samples were skipped (drawn at the end)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if self.draw.due("samples"):
            self.draw.run("samples", self._write, module, trainer.current_epoch)
            self.pending = None
        else:
            self.pending = trainer.current_epoch

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.pending is not None:
            self.draw.run("samples", self._write, module, self.pending)
            self.pending = None

    @torch.no_grad()
    def _write(self, module: L.LightningModule, epoch: int) -> None:
        model = module.model
        was_training = model.training
        model.eval()
        dev = module.device
        x = self.examples.to(dev)
        lab, pit = module.conditions(self.labels.to(dev), self.pitches.to(dev))
        recon = protocol.decode_latent(model, protocol.encode_latent(model, x, lab, pit), lab, pit)
        gen = torch.Generator().manual_seed(self.seed)
        plab = (torch.arange(self.n_prior, device=dev) % len(model.cfg.labels)) if lab is not None else None
        ppit = (
            pit[: self.n_prior]
            if pit is not None and len(pit) >= self.n_prior
            else (torch.full((self.n_prior,), 60, device=dev) if pit is not None else None)
        )
        if protocol.discrete(model):
            z = torch.cat(
                [
                    model.draw_latents(
                        1,
                        plab[i : i + 1] if plab is not None else None,
                        ppit[i : i + 1] if ppit is not None else None,
                        1.0,
                        gen,
                        {},
                    )
                    for i in range(self.n_prior)
                ]
            ).to(dev)
        else:
            z = torch.randn(self.n_prior, protocol.latent_size(model), generator=gen).to(dev)
        prior = protocol.decode_latent(model, z, plab, ppit)
        model.train(was_training)
        out = self.dir / f"epoch_{epoch:03d}"
        if protocol.output(model) == "waveform":
            audio = torch.cat([recon, prior]).cpu().numpy()
            images = self.normalizer.normalize(features(torch.cat([x, recon, prior]).cpu(), self.spec)).float()
        else:
            audio = features_to_audio(
                torch.cat([recon, prior]).cpu(), self.normalizer, self.spec, self.n_samples, self.iters
            ).numpy()
            images = torch.cat([x, recon, prior]).cpu()
        titles = (
            [f"real {i}" for i in range(len(x))]
            + [f"recon {i}" for i in range(len(x))]
            + [
                f"prior {i}" + (f" ({model.cfg.labels[int(plab[i])]})" if plab is not None else "")
                for i in range(self.n_prior)
            ]
        )
        spectrogram_grid(images.numpy(), titles, out / "spectrograms.png", cols=max(len(x), self.n_prior))
        names = [f"recon_{i}" for i in range(len(x))] + [f"prior_{i}" for i in range(self.n_prior)]
        for name, wav in zip(names, audio):
            write_audio(out / f"{name}.wav", normalize_peak(wav), self.spec.sample_rate)
