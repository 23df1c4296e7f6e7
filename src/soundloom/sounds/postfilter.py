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

The centre the GV stage stretches about is, in files written since ``"envelope_rows"`` exists, each frame's spectral
envelope: the mean of the ``envelope_rows`` rows around each row (edges replicated; a quarter of the rows) rather
than the whole frame's mean. About the frame mean a bright sound's falling top rows count as deviation, and
stretching them dulls it: the built-in plucks, bright to 8 kHz, lost 13 dB in their top rows that way and read
11-13 dB cleaner than recorded. About the envelope the stretch deepens the valleys between partials and leaves the
spectral tilt alone. Files without the key stretch about the frame mean, as they were fitted.

A second, optional stage (file version 2, ``"kind": "quantile"``) maps each mel row's level below its frame's
peak through a per-class quantile table (histogram matching, as in bias correction of climate models): the
model's quantiles of ``db - frame peak`` over active frames of its own output, against the real training
items' quantiles, per class and row. Above a row's median it only ever lowers a value (``min(mapped, db)``): a
blurred decoder under-represents a row's loud values, and a map that also lifted there would turn the leakage of one
item into another item's peak (sweeps, whose rows differ from item to item, gained 25-40 dB of floor that way). In
files with ``"lift_below"`` (export writes :data:`LIFT_BELOW`) a value in the quiet part of its row may also be
raised toward the real quantile: in full at the model's lowest quantile, the weight falling linearly to nothing at
the ``lift_below`` quantile, so a row the model keeps quieter than the recordings (a dull top band, a thin noise
floor) gets its floor back while its peaks stay where they were (README: "The inversion's start, the quiet half of a
row, and the clip average first", measured with the release's other changes). Export fits both stages, the
quantile map after the GV ratios (:data:`DEFAULT_KIND`); ``quantile`` is the map alone (ratios 1), ``gv`` the
ratios alone.

Files with ``"row_gain"`` add, after the stages and before the level shift, a gain per class and row (dB) that brings
the model's median long-term spectrum (each item's power averaged over its frames, about its median row) onto the
recordings' (:func:`fit_row_gain`). A decoder can leave a fixed pattern across its rows that a frame-by-frame map does
not see (the demo recipe's seed-1 noise bursts: their top rows alternate by 2-5 dB in every item), and the mel
inversion's iterations turn such a pattern into holes between bins that stay put, so the long-term spectrum has dips
the recordings lack: those noise bursts rendered 6 dB too clean for that alone (README: "Row gains"). A first version
given to every class took seed 1's falling sweeps 14 dB too clean, so the calibration takes them per class only where
they bring the rendered floor nearer (zeros elsewhere).

A last, optional step scales what the stages do per class: ``db + strength * (filtered - db)`` (``"strength"`` in
the file; 1 or absent: as fitted), the quantile stage's lift by ``min(strength, 1)``: the lift aims at the
recordings' level, and extrapolated past it adds the noise it is there to restore (a barely trained test model's
Fréchet distance rose from 20 to 68 times the reference's that way). The stages are fitted in the mel domain, but
what a listener hears as a floor is in the linear bins after inversion, where the same fitted filter leaves one
class's floor 8 dB too noisy (the demo's bells) and over-cleans another by as much (plucks).
:func:`calibrate_strength` chooses each class's strength on the training split so that the model's rendered floor
(:mod:`soundloom.core.floor`) comes nearest the training items' recordings: the clip's average spectrum first, then,
among the strengths within a dB of that, inside its sounding frames (:func:`_balanced`).

A rendered one-shot starts wherever Griffin-Lim puts its first samples. A model whose first frame is louder than a
recording's fade-in (a blurred onset) starts at a tenth of its peak or more, and that step at sample 0 is a click: its
broadband splatter becomes the clip's spectral floor (the demo's rising sweeps read 27 dB noisier than recorded, where
the rest of each clip mostly stays far below it in the top band). So calibration also measures how each class's
recordings begin (:func:`onset_seconds`: the time until the waveform first reaches :data:`ONSET_DB` below its peak)
and gives the class's renders a fade-in of that length (``"fade_in_s"`` in the file; :func:`fade_in`). A class whose
recordings start at full level (a plucked string's burst) gets none.

Files with ``"row_floor"`` end with a floor guard: per class and row, a level below each item's loudest value
(dB) that the post-filter may not take a value under, unless the decoder had already put it there
(``max(out, min(db, peak + floor))``). A row is guarded only where the class's recordings hold it steady: their
value's median within :data:`STEADY_DB` of its :data:`FLOOR_QUANTILE` quantile over every frame (the quantile is the
floor), which is a band the recordings leave to their noise for most of each clip (the built-in sweeps' top rows:
16-bit noise above 0.9 of Nyquist, where the synthesiser fades every harmonic out); rows with content are left free,
since sharpening a bell's partials must take the mel rows between them below anything recorded there to clean the
bins between them. Without the guard a class's strength moved its content and its noise band together: one training
of the demo recipe had its rising sweeps' band 11 dB under the recordings' noise at the strength their brighter bins
asked for (README: "A floor guard for steady rows").

The ratios live beside the weights in ``postfilter.json``; a run without the file renders as before::

    pf = PostFilter.load(run_dir)          # None when the run has none
    db = pf.apply(db, ["bell", "kick"], low_db, high_db)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ..core.atomic import write_json
from ..core.errors import ModelFileError, ParameterError
from ..core.floor import frame_floor_db, spectral_floor_db
from ..core.spectral import mean_power_db
from ..data.stats import Normalizer

POSTFILTER_FILE = "postfilter.json"
FORMAT = "soundloom-postfilter"
ALL = "*"  # the ratio over every class: unconditioned models and items without a label
# Frames whose peak lies more than this below the item's loudest peak are left out of the spread:
# one-shots end in silence, where real frames have no spread at all and would only dilute the ratio.
ACTIVE_DB = 40.0
# Ratios outside this range are clipped: the filter undoes smoothing, it never smooths (ratio < 1 would), and
# a ratio above 3 would mean a model so blurred that sharpening cannot save it.
MIN_RATIO, MAX_RATIO = 1.0, 3.0
T = TypeVar("T")
# What fit_run_postfilter fits: the global-variance ratios; the quantile stage alone (ratios 1); or both.
KINDS = ("gv", "quantile", "gv+quantile")
# The kind export fits: the GV ratios, then the quantile stage. Without class weighting the quantile stage alone was
# recognised most at the demo's budget (worst draw seed 0.896 against 0.889 for both, 0.861 for GV) but left bells
# and vowels 5-10 dB noisier than GV; with it (the demo's training) both stages keep GV's bells (worst +10 dB against
# +21.5 for the quantile stage alone), are recognised 0.910 at worst, and keep kicks within 6 dB where GV leaves them
# 7-8 dB below (README).
DEFAULT_KIND = "gv+quantile"
QUANTILES = 33  # quantiles per class and row of the quantile stage (evenly spaced probabilities 0..1)
# The quantile stage export fits may also raise a row's values that lie below the model's median for that row (fully
# at its lowest quantile, tapering to nothing at the median): the quiet half of a row, never its peaks (see the module
# docstring).
LIFT_BELOW = 0.5
# Row gains beyond this are clipped at the fit (and refused in a file). A class whose items differ in colour (sweeps of
# different ranges) has a median long-term spectrum that fits none of them, and its gains grow into a tilt: with 20 dB
# allowed the demo weights' rising sweeps got +-20 dB across the rows and rendered 8 dB noisier than recorded (README:
# "Row gains"), where 12 leaves them within 4 dB; it also leaves seed 2's plucks, whose top row is 24 dB short, 9 dB
# too clean.
MAX_ROW_GAIN_DB = 12.0
# The floor guard (see the module docstring): a row's floor is this quantile of its recordings' values below each
# item's loudest, over every frame, and the row is guarded only when their median lies within STEADY_DB of it. On the
# built-in one-shots (all 40 a class) 14-15 rows of the sweeps (their top rows), 24 of the plucks and 40 of the kicks
# qualify (2.8-5.9 dB between the two: 16-bit noise for most of each clip), one row of the bells and of the snares,
# none of the vowels, hi-hats or noise bursts.
FLOOR_QUANTILE = 0.1
STEADY_DB = 6.0
# Strengths tried per class by calibrate_strength (0: no post-filter; above 1 the stages' effect extrapolated).
STRENGTHS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
# The floor the calibration matches: the mean over these quantiles of the quietest bins, not the evaluation's
# single tenth, so that the fit does not merely agree with the one number the report prints.
CALIBRATION_QUANTILES = (0.05, 0.1, 0.2)
CALIBRATION_ITEMS = 32  # training items a class measured as recorded (seeded pick)
# The model's items a class rendered per strength at export (seeded pick of its draws; see calibrate_strength).
CALIBRATION_DRAWS = 96
# A recording's onset ends where its waveform first reaches this level below its peak; fade-ins are capped at
# MAX_FADE_IN_S, beyond which a slow swell is the sound itself (the model's frames carry it) and not a click to avoid.
ONSET_DB = -20.0
MAX_FADE_IN_S = 0.02


def onset_seconds(clips: Sequence[np.ndarray] | np.ndarray, sample_rate: int, level_db: float = ONSET_DB) -> np.ndarray:
    """Per clip ``(N,)``: seconds from its first sample to the first whose magnitude reaches ``level_db`` below the
    clip's peak (0 for a silent clip)."""
    out = np.zeros(len(clips))
    for i, clip in enumerate(clips):
        mag = np.abs(np.asarray(clip, dtype=np.float64))
        peak = float(mag.max()) if mag.size else 0.0
        if peak > 0:
            out[i] = int(np.argmax(mag >= peak * 10 ** (level_db / 20))) / sample_rate
    return out


def fade_in(wav: np.ndarray, samples: Sequence[int]) -> np.ndarray:
    """Waveforms ``(B, samples)``, item ``i``'s first ``samples[i]`` samples faded in (a sin² ramp from 0); a copy."""
    out = np.array(wav, copy=True)
    for i, n in enumerate(samples):
        n = min(int(n), out.shape[-1])
        if n > 0:
            out[i, :n] *= (np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2).astype(out.dtype)
    return out


def clip_range(normalizer: Normalizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The dB range ``(low, high)``, each ``(rows,)`` (one row for a row-independent normaliser), that the
    normaliser represents: the clip range of :meth:`PostFilter.apply`."""
    ones = torch.ones(normalizer.mean.shape[0] if normalizer.mean is not None else 1, 1)
    return normalizer.denormalize(-ones)[:, 0], normalizer.denormalize(ones)[:, 0]


def envelope_rows_for(rows: int) -> int:
    """The envelope window (rows, odd) export fits for spectra of ``rows`` rows: about a quarter of them."""
    return 2 * max(1, rows // 8) + 1


def spectral_centre(db: torch.Tensor, envelope_rows: int | None = None) -> torch.Tensor:
    """What the GV stage stretches about, for dB spectra ``(B, rows, frames)``: each frame's mean ``(B, 1, frames)``
    (``envelope_rows`` None), or its envelope ``(B, rows, frames)``, the mean of the ``envelope_rows`` rows centred
    on each row (edge rows repeated beyond the ends)."""
    if envelope_rows is None:
        return db.mean(dim=1, keepdim=True)
    half = envelope_rows // 2
    padded = torch.nn.functional.pad(db.transpose(1, 2), (half, half), mode="replicate")  # (B, frames, rows + 2h)
    return padded.unfold(-1, 2 * half + 1, 1).mean(-1).transpose(1, 2)


def frame_spread_db(db: torch.Tensor, active_db: float = ACTIVE_DB, envelope_rows: int | None = None) -> float:
    """Root mean square deviation (dB) of log spectra ``(N, rows, frames)`` from their centres
    (:func:`spectral_centre`: frame means, or envelopes of ``envelope_rows``), over the frames whose peak is within
    ``active_db`` of each item's loudest peak."""
    if db.ndim != 3 or db.shape[0] == 0:
        raise ParameterError(f"expected dB spectra (N, rows, frames) with N > 0, got shape {tuple(db.shape)}")
    db = db.double()
    centre = spectral_centre(db, envelope_rows)
    peak = db.amax(dim=1, keepdim=True)  # (N, 1, frames)
    active = peak >= peak.amax(dim=2, keepdim=True) - active_db
    dev2 = ((db - centre) ** 2 * active).sum()
    return float(torch.sqrt(dev2 / (active.sum() * db.shape[1])))


def peak_relative_quantiles(db: torch.Tensor, n: int = QUANTILES, active_db: float = ACTIVE_DB) -> torch.Tensor:
    """Quantiles ``(rows, n)`` of ``db - frame peak`` (dB, <= 0) per row of spectra ``(N, rows, frames)``, over the
    frames whose peak is within ``active_db`` of each item's loudest peak; probabilities evenly spaced 0..1."""
    if db.ndim != 3 or db.shape[0] == 0:
        raise ParameterError(f"expected dB spectra (N, rows, frames) with N > 0, got shape {tuple(db.shape)}")
    db = db.double()
    peak = db.amax(dim=1, keepdim=True)
    active = (peak >= peak.amax(dim=2, keepdim=True) - active_db)[:, 0]  # (N, frames)
    rel = (db - peak).permute(1, 0, 2)[:, active].numpy()  # (rows, active frames of all items)
    # numpy, not torch.quantile: that refuses inputs over 2**24 values (a large training set's frames)
    return torch.from_numpy(np.quantile(rel, np.linspace(0.0, 1.0, n), axis=1).T.copy())


def _interp_rows(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``fp(x)`` per row: ``x (B, rows, frames)``, knots ``xp``/``fp (rows, n)`` (xp
    increasing); constant beyond the first and last knot (as ``numpy.interp``)."""
    b, rows, frames = x.shape
    flat = x.permute(1, 0, 2).reshape(rows, -1).contiguous()
    i = torch.searchsorted(xp.contiguous(), flat).clamp(1, xp.shape[1] - 1)
    x0, x1, y0, y1 = xp.gather(1, i - 1), xp.gather(1, i), fp.gather(1, i - 1), fp.gather(1, i)
    w = ((flat - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return (y0 + w * (y1 - y0)).reshape(rows, b, frames).permute(1, 0, 2)


def _for_class(table: dict[str, float] | None, label: str | None, default: float) -> float:
    """``table``'s value for ``label``, else its all-class value, else ``default`` (also for no table)."""
    if table is None:
        return default
    if label is not None and str(label) in table:
        return table[str(label)]
    return table.get(ALL, default)


def _table_keys(tables: dict, labels: list[str | None]) -> list[str]:
    """Per item, the key of its class's table in ``tables``, or :data:`ALL` for None and labels not there."""
    return [str(lab) if lab is not None and str(lab) in tables else ALL for lab in labels]


def _rows_for(tables: dict[str, torch.Tensor] | None, labels: list[str | None], rows: int, fill: float) -> torch.Tensor:
    """The per-class rows ``(B, rows)`` of ``tables`` for items of ``labels`` (the all-class rows for others;
    ``fill`` everywhere without tables)."""
    if tables is None:
        return torch.full((len(labels), rows), fill, dtype=torch.float64)
    return torch.stack([tables[k].double() for k in _table_keys(tables, labels)])


def _row_tables(d: dict, key: str, what: str) -> dict[str, torch.Tensor] | None:
    """The per-class rows ``d[key]`` as float64 tensors (None when absent; null entries -inf), one list a class, all
    alike, with the all-class one (else ValueError naming ``what``)."""
    if key not in d:
        return None
    tables = {
        str(k): torch.tensor([-math.inf if v is None else float(v) for v in t], dtype=torch.float64)
        for k, t in d[key].items()
    }
    sizes = {t.shape for t in tables.values()}
    if ALL not in tables or len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ValueError(f"{what} must be one list of rows per class, alike, with the all-class one")
    return tables


def _class_table(d: dict, key: str, most: float, message: str) -> dict[str, float] | None:
    """The per-class values ``d[key]`` (None when absent), each finite and within ``0..most`` (else ValueError)."""
    if key not in d:
        return None
    table = {str(k): float(v) for k, v in d[key].items()}
    if not all(np.isfinite(v) and 0 <= v <= most for v in table.values()):
        raise ValueError(message)
    return table


@dataclass
class PostFilter:
    """Per-class spread ratios: ``ratio[label]`` scales each frame's deviation from its centre (dB: the frame mean, or
    its spectral envelope with ``envelope_rows``); optionally
    ``quantiles[label] = (model, real)``, tables ``(rows, n)`` of dB below the frame peak (the quantile stage;
    the model's increasing along each row)."""

    ratio: dict[str, float]
    info: dict = field(default_factory=dict)
    quantiles: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    strength: dict[str, float] | None = None  # per class, see the module docstring; None: 1 for every class
    fade_in_s: dict[str, float] | None = None  # per class, seconds (see the module docstring); None: no fade-in
    envelope_rows: int | None = None  # the GV stage's centre (see the module docstring); None: the frame mean
    lift_below: float | None = None  # the quantile stage may also raise values below this quantile; None: never
    row_gain: dict[str, torch.Tensor] | None = None  # per class, dB ``(rows,)`` added after the stages; None: none
    # per class, dB ``(rows,)`` below the item's loudest value, -inf for a row not guarded; None: no guard
    row_floor: dict[str, torch.Tensor] | None = None

    @property
    def kind(self) -> str:
        return "gv" if self.quantiles is None else "quantile"

    def _map(self, db: torch.Tensor, labels: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """The quantile stage of spectra ``(B, rows, frames)``: each row's dB below its frame peak mapped from the
        model's quantiles to the real ones of the item's class (the all-class tables for others). Returns the spectra
        lowered where the map lowers (never above their value before), and the lift ``(B, rows, frames)`` dB >= 0 that
        ``lift_below`` allows in the quiet part of each row (zeros without it)."""
        assert self.quantiles is not None
        peak = db.amax(dim=1, keepdim=True)
        out, lift = db.clone(), torch.zeros_like(db)
        keys = _table_keys(self.quantiles, labels)
        for key in dict.fromkeys(keys):  # the items of one table at once
            idx = torch.tensor([i for i, k in enumerate(keys) if k == key])
            model, real = self.quantiles[key]
            rel = db[idx] - peak[idx]
            mapped = _interp_rows(rel, model.to(db.dtype), real.to(db.dtype))
            out[idx] = torch.minimum(mapped + peak[idx], db[idx])
            if self.lift_below:
                # the weight of a lift: 1 at the model's lowest quantile, falling linearly to 0 at lift_below
                p = torch.linspace(0.0, 1.0, model.shape[1], dtype=db.dtype)
                knots = (1.0 - p / self.lift_below).clamp(min=0.0).expand(model.shape[0], -1)
                weight = _interp_rows(rel, model.to(db.dtype), knots.contiguous())
                lift[idx] = weight * (mapped - rel).clamp(min=0.0)
        return out, lift

    def _lower(self, db: torch.Tensor, labels: list[str | None]) -> torch.Tensor:
        """The quantile stage at strength 1: :meth:`_map`'s lowered spectra plus its lift."""
        out, lift = self._map(db, labels)
        return out + lift

    def _stretch(self, db: torch.Tensor, labels: list[str | None]) -> torch.Tensor:
        """The GV stage alone: ``centre + ratio * (db - centre)`` per frame of spectra ``(B, rows, frames)``."""
        r = torch.tensor([self.ratio_for(lab) for lab in labels], dtype=db.dtype)[:, None, None]
        centre = spectral_centre(db, self.envelope_rows)
        return centre + r * (db - centre)

    def ratio_for(self, label: str | None) -> float:
        """The ratio of ``label`` (the all-class ratio for None or a label it was not fitted on)."""
        return _for_class(self.ratio, label, self.ratio[ALL])

    def strength_for(self, label: str | None) -> float:
        """The strength of ``label``: its own, else the all-class one, else 1 (as fitted)."""
        return _for_class(self.strength, label, 1.0)

    def fade_in_for(self, label: str | None) -> float:
        """The fade-in (s) of ``label``: its own, else the all-class one, else 0."""
        return _for_class(self.fade_in_s, label, 0.0)

    def gain_for(self, labels: list[str | None], rows: int) -> torch.Tensor:
        """The row gains ``(B, rows)`` dB of items of ``labels`` (the all-class gains for others; zeros without
        any)."""
        return _rows_for(self.row_gain, labels, rows, 0.0)

    def floor_for(self, labels: list[str | None], rows: int) -> torch.Tensor:
        """The floor guard ``(B, rows)`` dB below each item's loudest value (-inf: a row not guarded; all -inf
        without a guard)."""
        return _rows_for(self.row_floor, labels, rows, -math.inf)

    def fade(self, wav: np.ndarray, labels: list[str | None], sample_rate: int) -> np.ndarray:
        """Rendered one-shots ``(B, samples)`` at ``sample_rate`` Hz, each with its class's fade-in (unchanged when the
        file has none)."""
        if self.fade_in_s is None:
            return wav
        return fade_in(wav, [round(self.fade_in_for(lab) * sample_rate) for lab in labels])

    def apply(
        self, db: torch.Tensor, labels: list[str | None], low_db: torch.Tensor, high_db: torch.Tensor
    ) -> torch.Tensor:
        """Sharpened dB spectra ``(B, rows, frames)``: ``mean + ratio * (db - mean)`` per frame, shifted to the
        item's power before, clipped per row to ``[low_db, high_db]`` ``(rows,)``. ``labels``: one per item (None:
        the all-class ratio). With quantile tables, the sharpened spectra then go through the quantile stage
        before the shift. A strength scales what the stages do; the quantile stage's lift (``lift_below``) it scales
        by at most 1. With a floor guard, last, no value of a guarded row ends below both its value before and the
        row's floor under the item's loudest value before."""
        if db.ndim != 3 or len(labels) != db.shape[0]:
            raise ParameterError(f"expected {len(labels)} dB spectra (B, rows, frames), got shape {tuple(db.shape)}")
        out, lift = self._stretch(db, labels), None
        if self.quantiles is not None:
            out, lift = self._map(out, labels)
        if self.strength is not None:
            k = torch.tensor([self.strength_for(lab) for lab in labels], dtype=db.dtype)[:, None, None]
            out = db + k * (out - db)
            if lift is not None:  # a lift moves toward the recordings' level: scaled down, never extrapolated past it
                lift = k.clamp(max=1.0) * lift
        if lift is not None:
            out = out + lift
        if self.row_gain is not None:
            out = out + self.gain_for(labels, db.shape[1]).to(db.dtype)[:, :, None]
        # the item's power level before and after
        out = out + (mean_power_db(db, (1, 2), keepdim=True) - mean_power_db(out, (1, 2), keepdim=True))
        if self.row_floor is not None:
            floor = db.amax(dim=(1, 2), keepdim=True) + self.floor_for(labels, db.shape[1]).to(db.dtype)[:, :, None]
            out = torch.maximum(out, torch.minimum(db, floor))
        return torch.minimum(torch.maximum(out, low_db.to(db.dtype)[:, None]), high_db.to(db.dtype)[:, None])

    # ---- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        extra = {} if self.strength is None else {"strength": dict(self.strength)}
        if self.fade_in_s is not None:
            extra["fade_in_s"] = dict(self.fade_in_s)
        if self.envelope_rows is not None:
            extra["envelope_rows"] = int(self.envelope_rows)
        if self.lift_below is not None:
            extra["lift_below"] = float(self.lift_below)
        if self.row_gain is not None:
            extra["row_gain"] = {k: [round(float(v), 2) for v in g] for k, g in self.row_gain.items()}
        if self.row_floor is not None:  # JSON has no -inf: a row not guarded is null
            extra["row_floor"] = {
                k: [round(float(v), 2) if math.isfinite(v) else None for v in f] for k, f in self.row_floor.items()
            }
        if self.quantiles is None:
            return {"format": FORMAT, "version": 1, "ratio": dict(self.ratio), **extra, **self.info}

        def table(t: torch.Tensor) -> list[list[float]]:
            return [[round(float(v), 2) for v in row] for row in t]

        q = {k: {"model": table(m), "real": table(r)} for k, (m, r) in self.quantiles.items()}
        head = {"format": FORMAT, "version": 2, "kind": "quantile"}
        return {**head, "ratio": dict(self.ratio), **extra, "quantiles": q, **self.info}

    def save(self, run_dir: str | os.PathLike) -> Path:
        # quantile tables on one line (a third of the indented size); a ratio-only file as it always was written
        indent = 1 if self.quantiles is None else None
        return write_json(Path(run_dir) / POSTFILTER_FILE, self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict, where: Path | None = None) -> PostFilter:
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"format is {d.get('format')!r}, not {FORMAT!r}")
            ratio = {str(k): float(v) for k, v in d["ratio"].items()}
            if ALL not in ratio or not all(math.isfinite(v) and v > 0 for v in ratio.values()):
                raise ValueError("ratios must be finite, positive and include the all-class one")
            quantiles = None
            if d.get("kind", "gv") == "quantile":
                quantiles = {}
                for k, v in d["quantiles"].items():
                    model, real = (torch.tensor(v[w], dtype=torch.float64) for w in ("model", "real"))
                    if model.ndim != 2 or model.shape != real.shape or model.shape[1] < 2:
                        raise ValueError(f"quantile tables of {k!r} must be two (rows, n >= 2) tables alike")
                    if not (torch.isfinite(model).all() and torch.isfinite(real).all()):
                        raise ValueError(f"quantile tables of {k!r} must be finite")
                    if (model.diff(dim=1) <= 0).any():
                        raise ValueError(f"the model quantiles of {k!r} must be increasing")
                    quantiles[str(k)] = (model, real)
                if ALL not in quantiles:
                    raise ValueError("quantile tables must include the all-class one")
            elif d.get("kind", "gv") != "gv":
                raise ValueError(f"unknown kind {d.get('kind')!r}")
            strength = _class_table(d, "strength", 10.0, "strengths must be finite and within 0..10")
            fades = _class_table(d, "fade_in_s", 1.0, "fade-ins must be finite and within 0..1 s")
            envelope = None
            if "envelope_rows" in d:
                envelope = d["envelope_rows"]
                if not isinstance(envelope, int) or envelope < 1 or envelope % 2 == 0:
                    raise ValueError(f"envelope_rows must be an odd positive integer, got {envelope!r}")
            lift = d.get("lift_below")
            if lift is not None and not (isinstance(lift, (int, float)) and 0 < lift <= 1):
                raise ValueError(f"lift_below must be a number in (0, 1], got {lift!r}")
            gains = _row_tables(d, "row_gain", "row gains")
            if gains is not None and not all(
                bool(torch.isfinite(g).all()) and float(g.abs().max()) <= MAX_ROW_GAIN_DB for g in gains.values()
            ):
                raise ValueError(f"row gains must be finite and within +-{MAX_ROW_GAIN_DB} dB")
            floors = _row_tables(d, "row_floor", "row floors")
            if floors is not None and any(bool(((f > 0) | f.isnan()).any()) for f in floors.values()):
                raise ValueError("row floors must be <= 0 dB or null")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(where or POSTFILTER_FILE, f"malformed post-filter ({exc})") from exc
        skip = (
            "format",
            "version",
            "kind",
            "ratio",
            "quantiles",
            "strength",
            "fade_in_s",
            "envelope_rows",
            "lift_below",
            "row_gain",
            "row_floor",
        )
        info = {k: v for k, v in d.items() if k not in skip}
        lift = None if lift is None else float(lift)
        return cls(ratio, info, quantiles, strength, fades, envelope, lift, gains, floors)

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


def _per_label(real_labels: list, model_labels: list, fit: Callable[[np.ndarray, np.ndarray], T]) -> dict[str, T]:
    """``fit(real_mask, model_mask)`` over all items (key :data:`ALL`) and for each label both sides have (None
    excluded); the masks select items of ``real_labels`` and ``model_labels``."""
    real_l, model_l = np.array([str(v) for v in real_labels]), np.array([str(v) for v in model_labels])
    out = {ALL: fit(np.ones(len(real_l), bool), np.ones(len(model_l), bool))}
    for lab in sorted(set(real_l) & set(model_l)):
        if lab != "None":
            out[lab] = fit(real_l == lab, model_l == lab)
    return out


def _fit_info(source: str, real_labels: list, model_labels: list) -> dict:
    return {"source": source, "active_db": ACTIVE_DB, "items": len(real_labels), "model_items": len(model_labels)}


def fit_postfilter(
    real_db: torch.Tensor,
    real_labels: list[str | None],
    model_db: torch.Tensor,
    model_labels: list[str | None],
    source: str,
    envelope_rows: int | None = None,
) -> PostFilter:
    """Ratios of real spread over model spread (:func:`frame_spread_db`), per label and over all items, about the
    centre ``envelope_rows`` names (None: the frame mean).

    ``real_db`` ``(N, rows, frames)``: training items' dB spectra with their labels; ``model_db``
    ``(M, rows, frames)``: the model's output for those classes. Labels the model made none of get the
    all-class ratio. ``source`` says what the model's output was (recorded in the file).
    """

    def ratio(r_sel: np.ndarray, m_sel: np.ndarray) -> float:
        real = frame_spread_db(real_db[torch.from_numpy(r_sel)], envelope_rows=envelope_rows)
        made = frame_spread_db(model_db[torch.from_numpy(m_sel)], envelope_rows=envelope_rows)
        return float(np.clip(real / max(made, 1e-6), MIN_RATIO, MAX_RATIO))

    ratios = _per_label(real_labels, model_labels, ratio)
    info = _fit_info(source, real_labels, model_labels)
    return PostFilter({k: round(v, 4) for k, v in ratios.items()}, info, envelope_rows=envelope_rows)


def long_term_db(db: torch.Tensor) -> torch.Tensor:
    """Each item's long-term spectrum ``(N, rows)``, dB about its median row (not its loudest: one row far off would
    move every other): the power of spectra ``(N, rows, frames)`` averaged over frames."""
    lt = mean_power_db(db.double(), dim=2)
    return lt - lt.median(dim=1, keepdim=True).values


def fit_row_gain(
    real_db: torch.Tensor, real_labels: list[str | None], model_db: torch.Tensor, model_labels: list[str | None]
) -> dict[str, torch.Tensor]:
    """Per label and over all items, the gain ``(rows,)`` dB that brings the model's median long-term spectrum
    (:func:`long_term_db`, median over items per row) onto the real items', clipped to +-:data:`MAX_ROW_GAIN_DB`."""
    real_lt, model_lt = long_term_db(real_db), long_term_db(model_db)

    def gain(r_sel: np.ndarray, m_sel: np.ndarray) -> torch.Tensor:
        r, m = real_lt[torch.from_numpy(r_sel)], model_lt[torch.from_numpy(m_sel)]
        diff = r.median(dim=0).values - m.median(dim=0).values
        return diff.clamp(-MAX_ROW_GAIN_DB, MAX_ROW_GAIN_DB).round(decimals=2)

    return _per_label(real_labels, model_labels, gain)


def fit_row_floor(
    real_db: torch.Tensor,
    real_labels: list[str | None],
    quantile: float = FLOOR_QUANTILE,
    steady_db: float = STEADY_DB,
) -> dict[str, torch.Tensor]:
    """Per label and over all items, the floor guard ``(rows,)`` of real dB spectra ``(N, rows, frames)``: each row's
    ``quantile`` of its values below their item's loudest, over every frame of the label's items, where the row's
    median lies within ``steady_db`` of it; -inf elsewhere (see the module docstring)."""
    db = real_db.float()  # float32 holds a quantile to far better than the file's 0.01 dB
    rel = db - db.amax(dim=(1, 2), keepdim=True)

    def floor(r_sel: np.ndarray, _: np.ndarray) -> torch.Tensor:
        values = rel[torch.from_numpy(r_sel)].transpose(0, 1).reshape(rel.shape[1], -1).numpy()
        low, mid = np.quantile(values, [quantile, 0.5], axis=1)
        return torch.from_numpy(np.where(mid - low < steady_db, np.round(low, 2), -np.inf))

    return _per_label(real_labels, real_labels, floor)


def fit_quantile_postfilter(
    real_db: torch.Tensor,
    real_labels: list[str | None],
    model_db: torch.Tensor,
    model_labels: list[str | None],
    source: str,
    ratios: dict[str, float] | None = None,
    n: int = QUANTILES,
    envelope_rows: int | None = None,
    lift_below: float | None = None,
) -> PostFilter:
    """The quantile post-filter: :func:`peak_relative_quantiles` of the real items and of the model's output,
    per label and over all items, after the global-variance stage of ``ratios`` (None: ratio 1, no GV stage).

    Shapes and labels as :func:`fit_postfilter`; the model's tables are taken from its output sharpened by
    ``ratios``, since that is what the quantile stage sees at render.
    """
    # no GV stage: ratio 1 for every class the file covers
    ratios = dict(ratios) if ratios is not None else _per_label(real_labels, model_labels, lambda r, m: 1.0)
    # the GV stage before its shift and clip
    sharp = PostFilter(ratios, envelope_rows=envelope_rows)._stretch(model_db.double(), model_labels)

    def tables(r_sel: np.ndarray, m_sel: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        model = peak_relative_quantiles(sharp[torch.from_numpy(m_sel)], n).round(decimals=2)
        real = peak_relative_quantiles(real_db[torch.from_numpy(r_sel)], n).round(decimals=2)
        # Tied knots (a row that is its frame's peak in many frames has several quantiles at 0 dB) would make the
        # map ambiguous at the tie: the model's knots are made strictly increasing, 0.01 dB apart at least.
        for k in range(1, n):
            model[:, k] = torch.maximum(model[:, k], model[:, k - 1] + 0.01)
        return model, real

    quantiles = _per_label(real_labels, model_labels, tables)
    info = _fit_info(source, real_labels, model_labels)
    return PostFilter(ratios, info, quantiles, envelope_rows=envelope_rows, lift_below=lift_below)


def _balanced(
    strengths: Sequence[float], curves: Sequence[tuple[Sequence[float], float]], steps: int = 61, slack_db: float = 1.0
) -> float:
    """The strength that brings the first of ``curves`` nearest its target, the others breaking the tie: each curve is
    ``(floors (dB, one per strength), target dB)``, linear between grid points, searched on ``steps`` points from the
    first strength to the last. Among the strengths within ``slack_db`` of the first curve's least gap, the one whose
    largest gap over the other curves is least (then the least strength).

    The first curve is the clip-average floor: what a listener hears between and under sounds, and the floor the
    evaluation reports. Inside the sounding frames the recordings' floor is often out of reach of the front end (the
    built-in plucks rendered from their own features are 11 dB noisier between their harmonics than recorded), and a
    rule that balanced the two gaps traded the audible floor for it: the demo run's plucks came out 10 dB too clean
    on the clip average for 2 dB less noise in their frames."""
    grid = np.linspace(strengths[0], strengths[-1], steps)
    gaps = np.stack([np.abs(np.interp(grid, strengths, floors) - target) for floors, target in curves])
    near = gaps[0] <= gaps[0].min() + slack_db
    rest = gaps[1:].max(axis=0) if len(gaps) > 1 else gaps[0]
    return float(grid[int(np.argmin(np.where(near, rest, np.inf)))])


def calibrate_strength(
    post: PostFilter,
    real_db: torch.Tensor,
    model_db: torch.Tensor,
    labels: list[str | None],
    render: Callable[[torch.Tensor], np.ndarray],
    sample_rate: int,
    low_db: torch.Tensor,
    high_db: torch.Tensor,
    strengths: Sequence[float] = STRENGTHS,
    per_class: int = CALIBRATION_ITEMS,
    seed: int = 0,
    recordings: Callable[[np.ndarray], np.ndarray | None] | None = None,
    model_labels: list[str | None] | None = None,
    draws_per_class: int | None = None,
) -> PostFilter:
    """``post`` with a strength per class (and the all-class one) such that the model's output, filtered and
    rendered, has the floor of the real items as recorded (``recordings``: item indices -> their recordings
    ``(n, samples)`` at ``sample_rate``, or None when unreadable), else of the real items rendered unfiltered.

    ``real_db`` ``(N, rows, frames)``: training items' dB spectra, ``labels`` one per item; ``model_db``
    ``(M, rows, frames)``: the model's output for the same conditions, ``model_labels`` one per item (None: ``M == N``,
    item ``i`` made for item ``i``'s conditions). ``render``: dB spectra ``(B, rows, frames)`` -> waveforms
    ``(B, samples)`` at ``sample_rate`` Hz, the front end the run renders with. ``low_db``, ``high_db`` ``(rows,)``:
    the clip range of :meth:`PostFilter.apply`. Up to ``per_class`` real items a class (seeded) are measured once, and
    up to ``draws_per_class`` (None: ``per_class``) of the model's items a class are rendered once per strength: a
    class whose items' floors spread widely (sweeps of 1 to 4 octaves: their recordings' run over 25 dB) needs many
    draws for its median to hold still (a median of 32 of those recordings moves by 4.6 dB, one standard deviation).
    With row gains in ``post``, every strength is also tried with them, and a class keeps them only where they bring
    its clip-average floor nearer by more than the 1 dB slack, or as near with the in-frame floor nearer (the other
    classes get zeros). Two floors are matched in turn (:func:`_balanced`),
    each the median over a class's items: the clip's average spectrum (:func:`~soundloom.core.floor.spectral_floor_db`,
    the mean over :data:`CALIBRATION_QUANTILES`) and inside its sounding frames
    (:func:`~soundloom.core.floor.frame_floor_db`). With recordings, each class first gets the fade-in its recordings
    start with (the median over its picked items of :func:`onset_seconds`, at most :data:`MAX_FADE_IN_S`;
    ``fade_in_s``), and the trials are measured faded.
    The chosen strengths and the floors behind them are recorded in ``info["calibration"]``.
    """
    if not len(strengths) or list(strengths) != sorted(strengths) or strengths[0] < 0:
        raise ParameterError(f"strengths must be increasing and >= 0, got {list(strengths)}")
    real_names = np.array([str(v) for v in labels])
    model_names = real_names if model_labels is None else np.array([str(v) for v in model_labels])
    if len(model_names) != model_db.shape[0] or len(real_names) != real_db.shape[0]:
        raise ParameterError("expected one label per real item and per model item")
    draws = per_class if draws_per_class is None else draws_per_class
    rng = np.random.default_rng(seed)

    def pick(names: np.ndarray, lab: str, n: int) -> np.ndarray:
        idx = np.arange(len(names)) if lab == ALL else np.flatnonzero(names == lab)
        return np.sort(rng.permutation(idx)[:n])

    shared = sorted((set(real_names) & set(model_names)) - {"None"})
    keys = [lab for lab in shared if min((real_names == lab).sum(), (model_names == lab).sum()) >= 4] + [ALL]
    real_picks = {lab: pick(real_names, lab, per_class) for lab in keys}
    paired = model_labels is None and draws == per_class  # item i made for item i: the same picks
    model_picks = real_picks if paired else {lab: pick(model_names, lab, draws) for lab in keys}
    real_rows, model_rows = (np.unique(np.concatenate(list(p.values()))) for p in (real_picks, model_picks))
    real_at = {int(r): i for i, r in enumerate(real_rows)}
    model_at = {int(r): i for i, r in enumerate(model_rows)}
    sub = torch.from_numpy(model_rows)
    sub_labels = [str(model_names[int(r)]) if model_names[int(r)] != "None" else None for r in model_rows]

    def floors(wav: np.ndarray) -> np.ndarray:
        """``(items, 2)``: the clip-average and the in-frame floor, dB."""
        clips = list(wav)
        average = spectral_floor_db(clips, sample_rate, CALIBRATION_QUANTILES).mean(axis=1)
        return np.stack([average, frame_floor_db(clips, sample_rate)], axis=1)

    recorded = recordings(real_rows) if recordings is not None else None
    real = floors(recorded if recorded is not None else render(real_db[torch.from_numpy(real_rows)].float()))
    fades = None
    if recorded is not None:  # each class's fade-in: the median onset of its picked recordings
        onsets = onset_seconds(list(recorded), sample_rate)
        fades = {
            lab: round(min(float(np.median(onsets[[real_at[int(r)] for r in idx]])), MAX_FADE_IN_S), 4)
            for lab, idx in real_picks.items()
        }
    # without the row gains, and (when the filter has them) with them: each class takes the better
    branches = [None] if post.row_gain is None else [None, post.row_gain]
    made = [[] for _ in branches]
    for b, gains in enumerate(branches):
        for k in strengths:
            trial = replace(post, strength={ALL: float(k)}, fade_in_s=fades, row_gain=gains)
            wav = render(trial.apply(model_db[sub].double(), sub_labels, low_db, high_db).float())
            made[b].append(floors(trial.fade(wav, sub_labels, sample_rate)))
    chosen, record, gains_on = {}, {}, {}
    for lab in keys:
        target = np.median(real[[real_at[int(r)] for r in real_picks[lab]]], axis=0)  # (2,)
        pos = [model_at[int(r)] for r in model_picks[lab]]
        options = []
        for b in range(len(branches)):
            curve = np.array([np.median(m[pos], axis=0) for m in made[b]])  # (strengths, 2)
            k = _balanced(strengths, [(curve[:, j], float(target[j])) for j in range(2)])
            gaps = [abs(float(np.interp(k, strengths, curve[:, j])) - float(target[j])) for j in range(2)]
            options.append((k, gaps, curve))
        # with the gains only when they bring the clip average nearer by more than the slack, or as near and the
        # frames nearer
        b = 0
        if len(options) > 1:
            (_, off, _), (_, on, _) = options
            if on[0] < off[0] - 1.0 or (abs(on[0] - off[0]) <= 1.0 and on[1] < off[1]):
                b = 1
        k, _, curve = options[b]
        chosen[lab] = round(k, 3)
        gains_on[lab] = bool(b)
        record[lab] = {
            "real_db": [round(float(v), 2) for v in target],
            "floors_db": [[round(float(v), 2) for v in row] for row in curve],
            "items": len(real_picks[lab]),
            "draws": len(pos),
        }
        if len(options) > 1:
            record[lab]["row_gain"] = bool(b)
            record[lab]["floors_db_other"] = [[round(float(v), 2) for v in row] for row in options[1 - b][2]]
    against = "recorded" if recorded is not None else "front end"
    calibration = {
        "target": against,
        "measures": ["clip average (mean of quantiles)", "in sounding frames (10th percentile)"],
        "rule": "clip average nearest (1 dB slack), then in sounding frames"
        + ("; row gains kept where they bring it nearer" if len(branches) > 1 else ""),
        "strengths": list(strengths),
        "quantiles": list(CALIBRATION_QUANTILES),
    }
    info = {**post.info, "calibration": {**calibration, "per_class": record}}
    gains = None
    if post.row_gain is not None and any(gains_on.values()):  # a class without them gets zeros
        zero = torch.zeros_like(post.row_gain[ALL])
        gains = {lab: post.row_gain.get(lab, post.row_gain[ALL]) if on else zero for lab, on in gains_on.items()}
    return replace(post, info=info, strength=chosen, fade_in_s=fades, row_gain=gains)
