"""Dataset-level normalisation of spectrogram features, saved beside features and models.

Per-file min-max (the seed's way) makes prior samples impossible to denormalise; these
statistics are computed once over a whole data set, so any generated array maps back to dB.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..core.errors import ParameterError

MODES = ("meanstd", "range")


@dataclass
class Normalizer:
    """Maps features (dB) to roughly [-1, 1] and back.

    Modes:
        "meanstd": per-row (frequency bin) mean and std over the data set, values clipped at
            ``clip_sigma`` standard deviations and divided by it, so the range is [-1, 1].
        "range": a fixed dB range ``[min_db, max_db]`` mapped linearly to [-1, 1], clipped.
    """

    mode: str = "meanstd"
    mean: np.ndarray | None = None  # (rows,)
    std: np.ndarray | None = None  # (rows,)
    clip_sigma: float = 3.0
    min_db: float = -100.0
    max_db: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParameterError(f"normalisation mode must be one of {MODES}, got {self.mode!r}")

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        mode: str = "meanstd",
        clip_sigma: float = 3.0,
        min_db: float = -100.0,
        max_db: float = 0.0,
        std_floor: float = 1e-3,
    ) -> Normalizer:
        """Statistics of ``features`` ``(items, rows, frames)`` (dB)."""
        if mode == "range":
            return cls(mode="range", min_db=min_db, max_db=max_db)
        x = np.asarray(features, dtype=np.float64)
        mean = x.mean(axis=(0, 2))
        std = np.maximum(x.std(axis=(0, 2)), std_floor)
        return cls(mode="meanstd", mean=mean.astype(np.float32), std=std.astype(np.float32), clip_sigma=clip_sigma)

    def _stats(self, like):
        # torch only when the caller's array is a tensor: preparing features never imports it.
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(like, torch.Tensor):
            mean = torch.as_tensor(self.mean, dtype=like.dtype, device=like.device)[:, None]
            std = torch.as_tensor(self.std, dtype=like.dtype, device=like.device)[:, None]
            return mean, std
        return self.mean[:, None], self.std[:, None]

    def db_per_unit(self) -> np.ndarray:
        """dB per normalised unit of each row ``(rows,)`` (one value repeated in "range" mode: ``(1,)``)."""
        if self.mode == "range":
            return np.array([(self.max_db - self.min_db) / 2.0], dtype=np.float32)
        return (self.clip_sigma * np.asarray(self.std, dtype=np.float32)).astype(np.float32)

    def normalize(self, x):
        """dB ``(..., rows, frames)`` (NumPy or torch) -> [-1, 1]."""
        if self.mode == "range":
            y = 2.0 * (x - self.min_db) / (self.max_db - self.min_db) - 1.0
            return y.clip(-1.0, 1.0)
        mean, std = self._stats(x)
        return ((x - mean) / std).clip(-self.clip_sigma, self.clip_sigma) / self.clip_sigma

    def denormalize(self, y):
        """[-1, 1] ``(..., rows, frames)`` -> dB. Values outside [-1, 1] are clipped first."""
        y = y.clip(-1.0, 1.0)
        if self.mode == "range":
            return (y + 1.0) * 0.5 * (self.max_db - self.min_db) + self.min_db
        mean, std = self._stats(y)
        return y * self.clip_sigma * std + mean

    def to_dict(self) -> dict:
        d: dict = {"mode": self.mode, "clip_sigma": self.clip_sigma, "min_db": self.min_db, "max_db": self.max_db}
        if self.mode == "meanstd":
            d["mean"] = [float(v) for v in self.mean]
            d["std"] = [float(v) for v in self.std]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        mean = np.asarray(d["mean"], dtype=np.float32) if d.get("mean") is not None else None
        std = np.asarray(d["std"], dtype=np.float32) if d.get("std") is not None else None
        return cls(
            mode=d["mode"],
            mean=mean,
            std=std,
            clip_sigma=float(d.get("clip_sigma", 3.0)),
            min_db=float(d.get("min_db", -100.0)),
            max_db=float(d.get("max_db", 0.0)),
        )
