"""``features``: continuity of MFCC, chroma and loudness across the join (the Infinite Jukebox's way).

No training. The score is a weighted negative squared distance between the tail's and the head's
feature vectors, written as a dot product of augmented vectors so a pool search stays a matrix
product:  -|t - h|^2 = [2t, -|t|^2, 1] . [h, 1, -|h|^2].
"""

from __future__ import annotations

import numpy as np
import torch

from ...core.spectral import SpectrogramConfig, _dct_matrix, mel_filterbank
from .base import TransitionScorer
from .registry import TrainContext, register
from .spectra import uncentred_power

N_MFCC = 20


class FeatureScorer(TransitionScorer):
    """MFCC (standardised by pool statistics), chroma (unit norm) and loudness (dB / 6) continuity.

    Args:
        sample_rate: Hz.
        window_s: seconds each side of the cut (default 0.3).
        w_mfcc, w_chroma, w_loudness: weights of the three squared distances.
    """

    name = "features"

    def __init__(
        self,
        sample_rate: int = 22050,
        window_s: float = 0.3,
        w_mfcc: float = 1.0,
        w_chroma: float = 1.0,
        w_loudness: float = 1.0,
    ):
        n = int(round(window_s * sample_rate))
        super().__init__(sample_rate, n, n)
        self.window_s = window_s
        self.weights = (w_mfcc, w_chroma, w_loudness)
        self.spec = SpectrogramConfig(
            sample_rate=sample_rate, n_fft=2048, hop_length=512, n_mels=40, kind="mfcc", n_mfcc=N_MFCC
        )
        import librosa

        self.register_buffer(
            "chroma_fb", torch.from_numpy(librosa.filters.chroma(sr=sample_rate, n_fft=self.spec.n_fft)).float()
        )
        self.register_buffer("mel_fb", mel_filterbank(self.spec))
        self.register_buffer("dct", torch.from_numpy(_dct_matrix(40, N_MFCC)))
        self.register_buffer("mfcc_mean", torch.zeros(N_MFCC))
        self.register_buffer("mfcc_std", torch.full((N_MFCC,), 10.0))

    def config(self) -> dict:
        w = self.weights
        return {
            "sample_rate": self.sample_rate,
            "window_s": self.window_s,
            "w_mfcc": w[0],
            "w_chroma": w[1],
            "w_loudness": w[2],
        }

    def raw_features(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean MFCC ``(B, 20)``, unit-norm chroma ``(B, 12)`` and RMS level in dB ``(B,)`` of ``(B, W)``."""
        x = windows
        if x.shape[1] < self.spec.n_fft:
            x = torch.nn.functional.pad(x, (0, self.spec.n_fft - x.shape[1]))
        power = uncentred_power(x, self.spec)
        mel_db = 10 * torch.log10(torch.matmul(self.mel_fb, power) + 1e-10)
        mfcc = torch.matmul(self.dct, mel_db).mean(-1)
        chroma = torch.matmul(self.chroma_fb, power).mean(-1)
        chroma = chroma / (chroma.norm(dim=1, keepdim=True) + 1e-9)
        level = 10 * torch.log10(windows.pow(2).mean(1) + 1e-10)
        return mfcc, chroma, level

    def fit(self, windows: torch.Tensor) -> FeatureScorer:
        """Set the MFCC standardisation from a sample of windows ``(N, W)`` of the training pool."""
        mfcc, _, _ = self.raw_features(self.fit_heads(windows))
        self.mfcc_mean.copy_(mfcc.mean(0))
        self.mfcc_std.copy_(mfcc.std(0).clamp_min(1e-3))
        return self

    def vector(self, windows: torch.Tensor) -> torch.Tensor:
        """Weighted feature vector ``(B, 20 + 12 + 1)``; squared distance = weighted continuity cost."""
        mfcc, chroma, level = self.raw_features(windows)
        w_m, w_c, w_l = self.weights
        z = (mfcc - self.mfcc_mean) / self.mfcc_std
        return torch.cat([z * np.sqrt(w_m / N_MFCC), chroma * np.sqrt(w_c), (level / 6.0)[:, None] * np.sqrt(w_l)], 1)

    def embed_tails(self, tails: torch.Tensor) -> torch.Tensor:
        t = self.vector(self.fit_tails(tails))
        ones = torch.ones(len(t), 1, device=t.device)
        return torch.cat([2 * t, -(t * t).sum(1, keepdim=True), ones], 1)

    def embed_heads(self, heads: torch.Tensor) -> torch.Tensor:
        h = self.vector(self.fit_heads(heads))
        ones = torch.ones(len(h), 1, device=h.device)
        return torch.cat([h, ones, -(h * h).sum(1, keepdim=True)], 1)


def _train(scorer: FeatureScorer, ctx: TrainContext) -> dict:
    """No gradient training: the MFCC statistics of the training songs only."""
    from .training import fit_features

    fit_features(scorer, ctx.catalog, ctx.audio, ctx.split["train"], ctx.seed)
    return {}


register(FeatureScorer, train=_train, by_name=True)
