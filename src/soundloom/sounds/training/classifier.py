"""Train the evaluation classifier on a feature store, holding out the same speakers as the VAE.

    soundloom train-classifier /work/feat/digits --out runs/digits-classifier

Writes ``classifier.safetensors`` and ``classifier.json`` (config, split, held-out accuracy).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ...core.atomic import write_json
from ...core.progress import ProgressCallback, null_progress
from ...data.store import FeatureStore, StoreError
from ..models import ClassifierConfig, SpectrogramClassifier, save_safetensors
from .data import StoreDataset, default_label_key, sorted_labels, split_store

CLASSIFIER_FILE, CLASSIFIER_CONFIG = "classifier.safetensors", "classifier.json"


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 8) -> torch.Tensor:
    """Random time shift (zero-filled at the normalised floor -1) and level shift, ``(B, rows, frames)``."""
    out = torch.full_like(x, -1.0)
    shifts = torch.randint(-max_shift, max_shift + 1, (x.shape[0],), generator=gen)
    for i, s in enumerate(shifts.tolist()):
        if s >= 0:
            out[i, :, s:] = x[i, :, : x.shape[2] - s]
        else:
            out[i, :, :s] = x[i, :, -s:]
    level = (torch.rand(x.shape[0], 1, 1, generator=gen) - 0.5) * 0.2
    return (out + level).clamp(-1.0, 1.0)


@torch.no_grad()
def predict(model: SpectrogramClassifier, x: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities ``(N, classes)`` and features ``(N, feature_dim)`` of normalised features."""
    model.eval()
    probs, feats = [], []
    for start in range(0, len(x), batch_size):
        f = model.features(x[start : start + batch_size])
        feats.append(f)
        probs.append(F.softmax(model.head(f), dim=1))
    return torch.cat(probs), torch.cat(feats)


def train_classifier(
    features: str | os.PathLike,
    out_dir: str | os.PathLike,
    epochs: int = 20,
    max_minutes: float | None = None,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    val_fraction: float = 0.1,
    label_key: str | None = "auto",
    group_key: str | None = "auto",
    progress: ProgressCallback = null_progress,
) -> dict:
    """Train, report held-out accuracy, save safetensors + JSON; returns the JSON record."""
    torch.manual_seed(seed)
    store = FeatureStore.open(features)
    label_key = default_label_key(store) if label_key == "auto" else label_key
    if label_key is None:
        raise StoreError(f"{store.path}: no class label to train a classifier on; have {store.label_names()}")
    labels = sorted_labels(store.labels(label_key))
    split = split_store(store, val_fraction, seed, group_key)
    train_set = StoreDataset(store, split.train, label_key, labels)
    x_all = torch.from_numpy(store.normalized())
    y_all = torch.from_numpy(train_set.labels)
    x_tr, y_tr = x_all[split.train], y_all[split.train]
    cfg = ClassifierConfig(rows=x_all.shape[1], frames=x_all.shape[2], labels=labels)
    model = SpectrogramClassifier(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, len(x_tr) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    start, done = time.monotonic(), 0
    for epoch in range(epochs):  # noqa: B007  (the last epoch is reported below)
        model.train()
        order = torch.randperm(len(x_tr), generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size]
            loss = F.cross_entropy(model(augment(x_tr[idx], gen)), y_tr[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            progress("train classifier", done, epochs * steps_per_epoch)
        if max_minutes and time.monotonic() - start > 60 * max_minutes:
            break
    accuracy = None
    if len(split.val):
        probs, _ = predict(model, x_all[split.val])
        accuracy = float((probs.argmax(1) == y_all[split.val]).float().mean())
    out_dir = Path(out_dir)
    save_safetensors(out_dir / CLASSIFIER_FILE, model.state_dict(), kind="classifier")
    record = {
        "format": "soundloom",
        "classifier": cfg.to_dict(),
        "label_key": label_key,
        "group_key": split.group_key,
        "val_groups": split.val_groups,
        "heldout_accuracy": accuracy,
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val)),
        "epochs_run": epoch + 1,
        "seed": seed,
        "val_fraction": val_fraction,
        "store": str(Path(features).resolve()),
        "train_seconds": round(time.monotonic() - start, 1),
    }
    write_json(out_dir / CLASSIFIER_CONFIG, record)
    return record
