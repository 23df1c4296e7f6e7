"""``partials``: do the sustained partials of A's last frame go on in B's first frame? No training.

One long frame (4096 samples, 186 ms at 22050 Hz, 5.4 Hz bins) on each side of the cut: the tail's
ends at the cut, the head's starts there. Each becomes a peak profile: log power minus its local
mean over ~160 Hz, negative parts dropped, so that the notes sounding (their harmonics) count and
the spectral envelope (timbre, level, EQ) does not. The score is the cosine of the two profiles,
one dot product of unit vectors.

Other chunks of the same song share its timbre and key, which is what MFCC and chroma measure;
what they do not share is the notes sounding at that very moment, which this cue sees at the
resolution of single partials.
"""

from __future__ import annotations

import torch

from ...core.spectral import SpectrogramConfig
from .base import TransitionScorer
from .registry import TrainContext, register
from .spectra import uncentred_power


class PartialsScorer(TransitionScorer):
    """Cosine of the tail's and head's peak profiles (log power above its local mean).

    Args:
        sample_rate: Hz.
        n_fft: frame length in samples (one frame each side of the cut).
        fmin_hz, fmax_hz: band kept.
        smooth_hz: width of the local mean subtracted from the log spectrum.
    """

    name = "partials"

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 4096,
        fmin_hz: float = 27.0,
        fmax_hz: float = 5000.0,
        smooth_hz: float = 160.0,
    ):
        super().__init__(sample_rate, n_fft, n_fft)
        self.n_fft, self.fmin_hz, self.fmax_hz, self.smooth_hz = n_fft, fmin_hz, fmax_hz, smooth_hz
        self.spec = SpectrogramConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, kind="power")
        bin_hz = sample_rate / n_fft
        self.lo = max(1, int(fmin_hz / bin_hz))
        self.hi = min(n_fft // 2 + 1, int(fmax_hz / bin_hz))
        self.smooth_bins = max(3, int(smooth_hz / bin_hz) | 1)  # odd, so the mean is centred

    def config(self) -> dict:
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "fmin_hz": self.fmin_hz,
            "fmax_hz": self.fmax_hz,
            "smooth_hz": self.smooth_hz,
        }

    def profile(self, frames: torch.Tensor) -> torch.Tensor:
        """Unit-norm peak profiles ``(B, bins)`` of frames ``(B, n_fft)``; zeros for silence."""
        power = uncentred_power(frames, self.spec)[..., 0]  # (B, n_fft // 2 + 1)
        log_p = torch.log10(power[:, self.lo : self.hi] + 1e-8)
        return torch.nn.functional.normalize((log_p - moving_mean(log_p, self.smooth_bins)).clamp_min(0.0), dim=1)

    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        return self.profile(self.fit_tails(tails))

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        return self.profile(self.fit_heads(heads))


def moving_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Moving mean ``(B, n)`` of ``x (B, n)`` over ``k`` (odd) bins, averaging only real bins at the edges."""
    return torch.nn.functional.avg_pool1d(x[:, None], k, 1, k // 2, count_include_pad=False)[:, 0]


def _train(scorer: PartialsScorer, ctx: TrainContext) -> dict:
    """Nothing to fit."""
    return {}


register(PartialsScorer, train=_train, by_name=True)
