"""Train any registered model kind (vae, cvae, vqvae, prior, vaegan, wave-vae, ...) on a feature store.

Usage (the CLI is a thin face over :func:`train`)::

    soundloom train /work/feat/digits --model cvae --out runs/digits --max-minutes 15
    soundloom train /work/feat/digits --model cvae --out runs/digits --resume   # after a kill
    soundloom train /work/feat/digits --model cvae --out runs/digits --cpu-minutes 15  # same work on a busy box
    soundloom train FEATURES --out RUN --accelerator gpu --devices 2            # DDP

Run directory::

    config.yaml            the training config (written first)
    metrics.csv            one row per epoch: train/val loss, recon, KL, MSE, ELBO, β
    checkpoints/last.ckpt  every ``checkpoint_every`` steps and each epoch (with optimizer state)
    checkpoints/best.ckpt  lowest held-out loss
    samples/epoch_NNN/     recon_*.wav, prior_*.wav, spectrograms.png (the first and last epochs, and others
                           while drawing them takes under 3% of the CPU time)
    plots/loss.png         loss curves
    model.safetensors, model.json, stats.json   on completion (what the Generator loads); model.json's
                           "training" holds CPU seconds (own, inherited from a first stage, total), steps,
                           epochs and why it stopped early
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from ...core.atomic import sweep_stale_temps, write_text
from ...core.errors import ModelFileError, ParameterError
from ...core.progress import ProgressCallback, null_progress
from ...core.quiet import quiet_lightning
from ...data.store import FeatureStore, StoreError
from ..models import ModelKind, get_kind
from .callbacks import CpuShare, LastCheckpoint, MetricsCSV, SampleWriter
from .cpu_budget import CpuClock, recorded_cpu_seconds
from .data import StoreDataModule, default_label_key, sorted_labels, split_store
from .export import export_run


@dataclass
class TrainConfig:
    """Every option of a training run (saved to ``config.yaml``)."""

    features: str = ""
    model: str = "cvae"
    epochs: int = 100
    max_minutes: float | None = None
    cpu_minutes: float | None = None  # CPU-time budget (process + data workers + a first stage's recorded time)
    batch_size: int = 64
    lr: float = 2e-3
    latent_dim: int = 64
    channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])
    beta: float = 0.03
    warmup_steps: int = 200
    seed: int = 0
    val_fraction: float = 0.1
    group_key: str | None = "auto"
    label_key: str | None = "auto"
    accelerator: str = "cpu"
    devices: int = 1
    num_workers: int = 0
    checkpoint_every: int = 200
    sample_items: int = 2
    griffin_lim_iters: int = 16
    threads: int | None = None  # torch CPU threads; 1 is fastest when the cores are shared
    model_options: dict = field(default_factory=dict)  # the kind's own options (registry), e.g. embed_dim
    # A label-conditioned VAE weights each item's reconstruction by its class's running error (VAEModule).
    class_weighting: bool = False
    # Weight of each row's time-averaged power against the item's (losses.long_term_spectrum_error), 0 = off;
    # spectrogram VAEs only (README: "The long-term spectrum in the loss").
    spectrum_weight: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_resume(cls, run_dir: str | os.PathLike, **overrides) -> TrainConfig:
        """The config a run was started with (its ``config.yaml``), with ``overrides`` applied.

        Only the options of :data:`RESUME_OPTIONS` (budgets and hardware) may change on resume; the
        saved ``epochs`` and ``max_minutes`` stay unless given here. Changing any other option (the
        model, the data, the optimiser) raises :class:`ParameterError`; restating its value is fine.
        """
        path = Path(run_dir) / "config.yaml"
        if not path.is_file():
            raise ModelFileError(path, "missing: nothing to resume (start the run without --resume)")
        try:
            saved = yaml.safe_load(path.read_text())["train"]
            known = {k: v for k, v in saved.items() if k in cls.__dataclass_fields__}
            known.setdefault("spectrum_weight", 0.0)  # runs started before the term existed go on without it
        except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise ModelFileError(path, f"malformed run config ({exc})") from exc
        fixed = sorted(k for k, v in overrides.items() if k not in RESUME_OPTIONS and v != known.get(k))
        if fixed:
            raise ParameterError(
                f"{', '.join(fixed)} cannot change when resuming {run_dir}; "
                f"only {', '.join(RESUME_OPTIONS)} can (or start a new run)"
            )
        return cls(**{**known, **overrides})


RESUME_OPTIONS = (
    "epochs",
    "max_minutes",
    "cpu_minutes",
    "accelerator",
    "devices",
    "num_workers",
    "checkpoint_every",
    "threads",
)


def _conditioning(store: FeatureStore, cfg: TrainConfig, kind: ModelKind) -> tuple[str | None, list[str], bool]:
    label_key = default_label_key(store) if cfg.label_key == "auto" else cfg.label_key
    if label_key is not None and label_key not in store.label_names():
        raise StoreError(f"{store.path}: label {label_key!r} not on every item; have {store.label_names()}")
    labels = sorted_labels(store.labels(label_key)) if label_key else []
    use_pitch = kind.conditional and "pitch" in store.label_names()
    if kind.conditional and not labels and not use_pitch:
        raise StoreError(f"{store.path}: a {kind.name} needs a class label or pitch; have {store.label_names()}")
    return label_key, labels, use_pitch


def train(
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    resume: bool = False,
    progress_bar: bool = True,
    progress: ProgressCallback = null_progress,
) -> Path:
    """Train, checkpoint and export; returns the run directory. Same seed + data -> same weights on CPU."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        if not (run_dir / "config.yaml").exists() or (run_dir / "model.safetensors").exists():
            raise ModelFileError(last, "not found: nothing to resume")
        # a run killed before its first checkpoint: nothing was kept, so --resume starts it over
        resume = False
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    if not resume and (run_dir / "metrics.csv").exists():
        raise ModelFileError(run_dir, "already holds a run; use --resume or another --out")
    if resume:
        sweep_stale_temps(run_dir)  # what a killed run was writing can never be renamed into place
    kind = get_kind(cfg.model)
    options = kind.parse_options(cfg.model_options)
    clock = CpuClock(
        cfg.cpu_minutes * 60.0 if cfg.cpu_minutes else None, _first_stage_cpu_s(options), cfg.num_workers > 0
    )
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    store = FeatureStore.open(cfg.features)
    split = split_store(store, cfg.val_fraction, cfg.seed, cfg.group_key)
    label_key, labels, use_pitch = _conditioning(store, cfg, kind)
    # A waveform kind also learns the clip's length and rate (the store's), since it makes samples itself.
    audio = {"n_samples": store.n_samples, "sample_rate": store.sample_rate} if kind.inputs == "waveform" else {}
    model_cfg = kind.new_config(
        rows=store.features.shape[1],
        frames=store.features.shape[2],
        labels=labels if kind.conditional else [],
        n_pitches=128 if use_pitch else 0,
        latent_dim=cfg.latent_dim,
        channels=tuple(cfg.channels),
        **audio,
        **options,
    )
    dataset = None
    if kind.inputs == "waveform":
        from .wave import WaveDataset as dataset
    data = StoreDataModule(
        store, split, label_key, labels, use_pitch, cfg.batch_size, cfg.num_workers, cfg.seed, dataset=dataset
    )
    module = kind.training_hook()(model_cfg.to_dict(), cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_info = {
        "train": {**cfg.to_dict(), "model_options": options},
        "label_key": label_key,
        "group_key": split.group_key,
        "val_groups": split.val_groups,
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val)),
        "sample_rate": store.sample_rate,
        "n_samples": store.n_samples,
        "spectrogram": store.spectrogram.to_dict(),
        "store": str(Path(cfg.features).resolve()),
    }
    if not resume:
        write_text(run_dir / "config.yaml", yaml.safe_dump(run_info, sort_keys=False))
    with quiet_lightning():
        trainer = L.Trainer(**_trainer_args(cfg, run_dir, data, store, model_cfg, progress_bar, clock))
        # Our checkpoints hold tensors, numbers and strings only: resume loads them without unpickling code.
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None, weights_only=True)
    if trainer.is_global_zero:
        best = run_dir / "checkpoints" / "best.ckpt"
        if best.exists():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        module.model.cpu()
        run_info["training"] = clock.record(trainer)
        if clock.reason:
            progress(clock.reason, 1, 1)
        export_run(run_dir, module.model, data.train_set, run_info, store.normalizer.to_dict())
    return run_dir


def first_process() -> bool:
    """True in the process that exports and reports: the only one, or the first of a DDP run's processes."""
    return getattr(rank_zero_only, "rank", 0) == 0


def _first_stage_cpu_s(options: dict) -> float:
    """Recorded training CPU seconds of the run a second stage starts from (a prior's vqvae, a vaegan's
    ``init_from``); 0 for a first stage."""
    first = options.get("vqvae") or options.get("init_from")
    if isinstance(first, dict):
        first = first.get("run")
    return recorded_cpu_seconds(first) if first else 0.0


def _trainer_args(
    cfg: TrainConfig,
    run_dir: Path,
    data: StoreDataModule,
    store: FeatureStore,
    model_cfg,
    progress_bar: bool,
    clock: CpuClock | None = None,
) -> dict:
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    ckpt_dir = run_dir / "checkpoints"
    monitor = "val_loss" if len(data.val_set) else "train/loss_epoch"
    draw = CpuShare()  # loss plots and samples share one slice of the CPU time
    callbacks: list = [
        ModelCheckpoint(
            dirpath=ckpt_dir, filename="best", monitor=monitor, mode="min", save_top_k=1, enable_version_counter=False
        ),
        MetricsCSV(run_dir, draw),
        LastCheckpoint(ckpt_dir / "last.ckpt", cfg.checkpoint_every),
    ]
    if clock is not None:
        callbacks.insert(0, clock)  # before the checkpoint writers, so a checkpoint holds its current count
    if cfg.sample_items > 0:
        source = data.val_set if len(data.val_set) else data.train_set
        picks = [source[i] for i in range(min(cfg.sample_items, len(source)))]
        callbacks.append(
            SampleWriter(
                run_dir,
                torch.stack([p[0] for p in picks]),
                torch.tensor([p[1] for p in picks]),
                torch.tensor([p[2] for p in picks]),
                store.normalizer,
                store.spectrogram,
                store.n_samples,
                n_prior=max(2, cfg.sample_items),
                griffin_lim_iters=cfg.griffin_lim_iters,
                seed=cfg.seed,
                draw=draw,
            )
        )
    if progress_bar:
        callbacks.append(RichProgressBar())
    args = dict(
        default_root_dir=str(run_dir),
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        deterministic=cfg.accelerator == "cpu",
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=progress_bar,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )
    if cfg.max_minutes:
        args["max_time"] = timedelta(minutes=cfg.max_minutes)
    if cfg.devices > 1 or cfg.devices == -1:
        args["strategy"] = "ddp"
    return args
