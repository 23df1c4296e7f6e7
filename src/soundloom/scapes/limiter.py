"""A streaming look-ahead limiter that keeps the true peak at or below a ceiling (dBTP).

The detector estimates the true peak of every sample by 4x polyphase interpolation (a
Kaiser-windowed sinc, as BS.1770 Annex 2 suggests), taking the largest of the four phases and of
all channels. The needed gain ``r(n) = min(1, ceiling / peak(n))`` becomes a gain curve in two
O(n) passes over a look-ahead of L samples: a running minimum over the next L samples, then a
running mean over the previous L. Every gain that reaches sample n is then <= r(n), so the ceiling
holds exactly (up to the interpolator), while gain changes take L samples (no clicks).

The output trails the input by ``L + 16`` samples (:attr:`latency`): the first calls return
fewer samples than they get, :meth:`flush` returns the rest. Output sample k is input sample k
(limited): nothing is shifted. Blocks that cannot come near the ceiling skip the interpolator.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from ..core.levels import db_to_gain

_UP = 4
_HALF = 16  # interpolator half-length in input samples


class TruePeakLimiter:
    """``process(block) -> limited samples so far``; :attr:`latency` samples trail until ``flush()``."""

    def __init__(
        self,
        channels: int,
        sample_rate: int,
        ceiling_dbtp: float = -1.0,
        lookahead_s: float = 0.01,
        margin_db: float = 0.3,
    ):
        self.channels = channels
        self.lookahead = max(2, int(round(lookahead_s * sample_rate)))
        self.latency = self.lookahead + _HALF
        self.ceiling = db_to_gain(ceiling_dbtp - margin_db)
        taps = 2 * _HALF * _UP + 1
        self._fir = (signal.firwin(taps, 0.95 / _UP, window=("kaiser", 6.0)) * _UP).astype(np.float64)
        # Worst-case overshoot of the interpolator over the sample peak (sum of |taps| per phase).
        self._bound = float(max(np.abs(self._fir[p::_UP]).sum() for p in range(_UP)))
        self._buf = np.zeros((channels, self.latency), dtype=np.float32)  # history before sample 0
        self.reduced_samples = 0
        self.min_gain = 1.0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take ``(channels, n)``; return the next limited samples (``n`` of them once past the start)."""
        L, P = self.lookahead, _HALF
        self._buf = np.concatenate([self._buf, np.asarray(block, dtype=np.float32)], axis=1)
        n_out = self._buf.shape[1] - (2 * L + 2 * P)
        if n_out <= 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        # self._buf covers samples [e - L - P, E): L + P of history, then n_out to emit, then L + P ahead.
        r = self._needed_gain(self._buf)  # for samples [e - L, E - P)
        if r is None:
            gain = None
        else:
            h = _running_min_ahead(r, L)  # h[k] = min r[k .. k + L], for k in [e - L, E - P - L)
            gain = _running_mean_behind(h, L)  # for n in [e, E - P - L)
        out = self._buf[:, L + P : L + P + n_out].copy()
        if gain is not None:
            out *= gain.astype(np.float32)
            self.reduced_samples += int(np.count_nonzero(gain < 1.0))
            self.min_gain = min(self.min_gain, float(gain.min()))
        self._buf = self._buf[:, n_out:]
        return out

    def flush(self) -> np.ndarray:
        """The last :attr:`latency` samples (feeds silence through)."""
        return self.process(np.zeros((self.channels, self.latency), dtype=np.float32))

    def _needed_gain(self, seg: np.ndarray) -> np.ndarray | None:
        """Gain (<= 1) each sample needs, for seg's samples [P, len - P); None when all would be 1."""
        peak = np.abs(seg).max(axis=0)
        if float(peak.max()) * self._bound <= self.ceiling:
            return None
        up = signal.upfirdn(self._fir, seg.astype(np.float64), up=_UP, axis=1)
        P, n = _HALF, seg.shape[1]
        # Output j of upfirdn sits at input time (j - P * UP) / UP.
        phases = np.abs(up[:, P * _UP * 2 : P * _UP * 2 + (n - 2 * P) * _UP]).reshape(seg.shape[0], n - 2 * P, _UP)
        tp = np.maximum(phases.max(axis=(0, 2)), peak[P : n - P])
        return np.minimum(1.0, self.ceiling / np.maximum(tp, 1e-12))


def _running_min_ahead(x: np.ndarray, L: int) -> np.ndarray:
    """out[k] = min(x[k : k + L + 1]) for k in [0, len - L)."""
    m = ndimage.minimum_filter1d(x, size=L + 1, mode="nearest", origin=-(L // 2) if L % 2 == 0 else -((L + 1) // 2))
    return m[: x.size - L]


def _running_mean_behind(x: np.ndarray, L: int) -> np.ndarray:
    """out[i] = mean(x[i : i + L + 1]) for i in [0, len - L) (the L + 1 values ending at i + L)."""
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    return (c[L + 1 :] - c[: -L - 1]) / (L + 1)
