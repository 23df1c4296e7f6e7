"""Datasets from a :class:`~soundloom.data.store.FeatureStore`, split by speaker or instrument.

Holding out whole speakers (or instruments) measures generalisation to unseen voices rather
than memorisation of takes; a random item split is the fallback when no such label exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ...core.errors import ParameterError
from ...data.store import FeatureStore, StoreError

GROUP_KEYS = ("speaker", "instrument_str", "instrument", "group")
LABEL_KEYS = ("label", "instrument_family_str", "class")


def default_group_key(store: FeatureStore) -> str | None:
    """The first of :data:`GROUP_KEYS` every item has, else None."""
    names = store.label_names()
    return next((k for k in GROUP_KEYS if k in names), None)


def default_label_key(store: FeatureStore) -> str | None:
    """The first of :data:`LABEL_KEYS` every item has, else None."""
    names = store.label_names()
    return next((k for k in LABEL_KEYS if k in names), None)


def sorted_labels(values) -> list[str]:
    """Distinct label values as strings, numeric ones in numeric order."""
    uniq = sorted({str(v) for v in values})
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return uniq


@dataclass
class Split:
    """Row indices of the training and held-out items and the held-out group names."""

    train: np.ndarray
    val: np.ndarray
    group_key: str | None
    val_groups: list[str]


def split_store(store: FeatureStore, val_fraction: float = 0.1, seed: int = 0, group_key: str | None = "auto") -> Split:
    """Hold out ``val_fraction`` of the groups (or of the items when there is no group key).

    The split depends only on the store's items, the fraction and the seed, so the VAE and the
    evaluation classifier trained with the same arguments hold out the same speakers.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ParameterError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(store)
    if group_key == "auto":
        group_key = default_group_key(store)
    rng = np.random.default_rng(seed)
    if group_key is None:
        order = rng.permutation(n)
        n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
        if val_fraction > 0 and n > 1:
            n_val = max(1, n_val)
        return Split(np.sort(order[n_val:]), np.sort(order[:n_val]), None, [])
    groups = np.array([str(g) for g in store.labels(group_key)])
    names = sorted(set(groups))
    n_val = int(round(val_fraction * len(names))) if val_fraction > 0 else 0
    if val_fraction > 0 and len(names) > 1:
        n_val = max(1, n_val)
    val_groups = sorted(rng.permutation(names)[:n_val].tolist())
    is_val = np.isin(groups, val_groups)
    return Split(np.flatnonzero(~is_val), np.flatnonzero(is_val), group_key, val_groups)


class StoreDataset(Dataset):
    """Items of a store: ``(features (rows, frames) normalised, label index, MIDI pitch)``.

    Label index and pitch are -1 when absent. Features are read from the memory map and
    normalised per item, so stores larger than memory work.
    """

    def __init__(
        self,
        store: FeatureStore,
        rows: np.ndarray,
        label_key: str | None = None,
        labels: list[str] | None = None,
        use_pitch: bool = False,
    ) -> None:
        self.store, self.rows = store, np.asarray(rows)
        self.label_index = {name: i for i, name in enumerate(labels or [])}
        values = store.labels(label_key) if label_key else [None] * len(store)
        self.labels = np.array([self.label_index.get(str(v), -1) if v is not None else -1 for v in values])
        self.pitches = np.array([int(p) for p in store.labels("pitch")]) if use_pitch else np.full(len(store), -1)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        row = int(self.rows[i])
        x = self.store.normalizer.normalize(np.asarray(self.store.features[row], dtype=np.float32))
        return (
            torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            int(self.labels[row]),
            int(self.pitches[row]),
        )


class StoreDataModule(L.LightningDataModule):
    """Training and held-out loaders over one store."""

    def __init__(
        self,
        store: FeatureStore,
        split: Split,
        label_key: str | None,
        labels: list[str],
        use_pitch: bool,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        dataset: type | None = None,
    ) -> None:
        """``dataset``: the item class (default :class:`StoreDataset`; a waveform kind's loads audio)."""
        super().__init__()
        self.store, self.split = store, split
        make = dataset or StoreDataset
        self.train_set = make(store, split.train, label_key, labels, use_pitch)
        self.val_set = make(store, split.val, label_key, labels, use_pitch)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        if len(self.train_set) == 0:
            raise StoreError(f"{store.path}: no training items left after the split")

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            generator=gen,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
