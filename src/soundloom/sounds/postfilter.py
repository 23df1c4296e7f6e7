"""Global-variance post-filter: undo a decoder's over-smoothing of log spectra before phase reconstruction.

A decoder trained on a squared error blurs what it is unsure of: partials spread into their neighbours,
peaks drop, the gaps between them fill, and after inversion the sound has a broadband floor where the real
one had silence. Statistical parametric speech synthesis cures the same fault with a global-variance
post-filter (Toda & Tokuda 2007); Tacotron raises magnitudes to a power before Griffin-Lim for the same
reason. Here, per frame, each dB spectrum's deviation from its frame mean is scaled by a ratio fitted per
class on the training split; the whole item is then shifted back to its power before sharpening (raised
peaks would otherwise make the sound louder, and clip). One shift per item, not per frame: loud frames gain
more than the quiet tail, and that expansion in time is part of the cure. The ratio is the real training
items' spread (root mean square deviation from the frame mean, over frames whose peak is within
:data:`ACTIVE_DB` of the item's loudest peak) over the spread of the model's own output for the same classes
(samples of its fitted prior, or reconstructions for kinds without one). The result is
clipped to the range the normaliser can represent, which real features never leave.

The ratios live beside the weights in ``postfilter.json``; a run without the file renders as before::

    pf = PostFilter.load(run_dir)          # None when the run has none
    db = pf.apply(db, ["bell", "kick"], low_db, high_db)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import write_json
from ..core.errors import ModelFileError, ParameterError

POSTFILTER_FILE = "postfilter.json"
FORMAT = "soundloom-postfilter"
ALL = "*"  # the ratio over every class: unconditioned models and items without a label
# Frames whose peak lies more than this below the item's loudest peak are left out of the spread:
# one-shots end in silence, where real frames have no spread at all and would only dilute the ratio.
ACTIVE_DB = 40.0
# Ratios outside this range are clipped: the filter undoes smoothing, it never smooths (ratio < 1 would), and
# a ratio above 3 would mean a model so blurred that sharpening cannot save it.
MIN_RATIO, MAX_RATIO = 1.0, 3.0


def frame_spread_db(db: torch.Tensor, active_db: float = ACTIVE_DB) -> float:
    """Root mean square deviation (dB) of log spectra ``(N, rows, frames)`` from their frame means, over the
    frames whose peak is within ``active_db`` of each item's loudest peak."""
    if db.ndim != 3 or db.shape[0] == 0:
        raise ParameterError(f"expected dB spectra (N, rows, frames) with N > 0, got shape {tuple(db.shape)}")
    db = db.double()
    frame_mean = db.mean(dim=1, keepdim=True)  # (N, 1, frames)
    peak = db.amax(dim=1, keepdim=True)  # (N, 1, frames)
    active = peak >= peak.amax(dim=2, keepdim=True) - active_db
    dev2 = ((db - frame_mean) ** 2 * active).sum()
    return float(torch.sqrt(dev2 / (active.sum() * db.shape[1])))


@dataclass
class PostFilter:
    """Per-class spread ratios: ``ratio[label]`` scales each frame's deviation from its mean (dB)."""

    ratio: dict[str, float]
    info: dict = field(default_factory=dict)

    def ratio_for(self, label: str | None) -> float:
        """The ratio of ``label`` (the all-class ratio for None or a label it was not fitted on)."""
        if label is not None and str(label) in self.ratio:
            return self.ratio[str(label)]
        return self.ratio[ALL]

    def apply(
        self, db: torch.Tensor, labels: list[str | None], low_db: torch.Tensor, high_db: torch.Tensor
    ) -> torch.Tensor:
        """Sharpened dB spectra ``(B, rows, frames)``: ``mean + ratio * (db - mean)`` per frame, shifted to the
        item's power before, clipped per row to ``[low_db, high_db]`` ``(rows,)``. ``labels``: one per item (None:
        the all-class ratio)."""
        if db.ndim != 3 or len(labels) != db.shape[0]:
            raise ParameterError(f"expected {len(labels)} dB spectra (B, rows, frames), got shape {tuple(db.shape)}")
        r = torch.tensor([self.ratio_for(lab) for lab in labels], dtype=db.dtype)[:, None, None]
        frame_mean = db.mean(dim=1, keepdim=True)
        out = frame_mean + r * (db - frame_mean)
        # log-sum-exp in dB: the item's power level before and after (stable for -150 dB rows)
        scale, dims = np.log(10.0) / 10.0, (1, 2)
        shift = (
            torch.logsumexp(db * scale, dim=dims, keepdim=True) - torch.logsumexp(out * scale, dim=dims, keepdim=True)
        ) / scale
        out = out + shift
        return torch.minimum(torch.maximum(out, low_db.to(db.dtype)[:, None]), high_db.to(db.dtype)[:, None])

    # ---- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": 1, "ratio": dict(self.ratio), **self.info}

    def save(self, run_dir: str | os.PathLike) -> Path:
        return write_json(Path(run_dir) / POSTFILTER_FILE, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict, where: Path | None = None) -> PostFilter:
        import math

        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format is {d.get('format')!r}, not {FORMAT!r}")
            ratio = {str(k): float(v) for k, v in d["ratio"].items()}
            if ALL not in ratio or not all(math.isfinite(v) and v > 0 for v in ratio.values()):
                raise ValueError("ratios must be finite, positive and include the all-class one")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(where or POSTFILTER_FILE, f"malformed post-filter ({exc})") from exc
        return cls(ratio, {k: v for k, v in d.items() if k not in ("format", "version", "ratio")})

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> PostFilter | None:
        """The run's post-filter, or None when it has no ``postfilter.json``."""
        import json

        path = Path(run_dir) / POSTFILTER_FILE
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(path, f"unreadable post-filter ({exc})") from exc
        return cls.from_dict(d, path)


def fit_postfilter(
    real_db: torch.Tensor,
    real_labels: list[str | None],
    model_db: torch.Tensor,
    model_labels: list[str | None],
    source: str,
) -> PostFilter:
    """Ratios of real spread over model spread (:func:`frame_spread_db`), per label and over all items.

    ``real_db`` ``(N, rows, frames)``: training items' dB spectra with their labels; ``model_db``
    ``(M, rows, frames)``: the model's output for those classes. Labels the model made none of get the
    all-class ratio. ``source`` says what the model's output was (recorded in the file).
    """
    real_l, model_l = np.array([str(v) for v in real_labels]), np.array([str(v) for v in model_labels])

    def ratio(r_sel: np.ndarray, m_sel: np.ndarray) -> float:
        real = frame_spread_db(real_db[torch.from_numpy(r_sel)])
        made = frame_spread_db(model_db[torch.from_numpy(m_sel)])
        return float(np.clip(real / max(made, 1e-6), MIN_RATIO, MAX_RATIO))

    ratios = {ALL: ratio(np.ones(len(real_l), bool), np.ones(len(model_l), bool))}
    for lab in sorted(set(real_l) & set(model_l)):
        if lab != "None":
            ratios[lab] = ratio(real_l == lab, model_l == lab)
    info = {"source": source, "active_db": ACTIVE_DB, "items": int(len(real_l)), "model_items": int(len(model_l))}
    return PostFilter({k: round(v, 4) for k, v in ratios.items()}, info)
