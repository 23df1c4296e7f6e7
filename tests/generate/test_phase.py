"""The rendering Griffin-Lim agrees with the audio core's and is batch-invariant."""

from __future__ import annotations

import pytest
import torch

from soundloom.audio.spectral import SpectrogramConfig, griffin_lim, magnitude
from soundloom.generate.phase import render_griffin_lim


@pytest.mark.parametrize("n_fft,hop,win,length", [(256, 64, None, 8128), (256, 64, None, 8000), (128, 32, 100, 3000)])
def test_matches_core_griffin_lim(n_fft, hop, win, length):
    torch.manual_seed(0)
    cfg = SpectrogramConfig(sample_rate=8000, n_fft=n_fft, hop_length=hop, win_length=win, kind="magnitude")
    t = torch.arange(length) / 8000
    wav = torch.stack([torch.sin(2 * torch.pi * f * t) * torch.exp(-3 * t) for f in (220.0, 700.0, 1500.0)])
    mag = magnitude(wav + 0.01 * torch.randn_like(wav), cfg)
    for n_iter, tol in ((0, 1e-5), (1, 1e-5), (16, 2e-3)):
        core = griffin_lim(mag, cfg, n_iter=n_iter, length=length)
        fast = render_griffin_lim(mag, cfg, n_iter=n_iter, length=length)
        assert fast.shape == core.shape == (3, length)
        assert (fast - core).abs().max() < tol, n_iter
    one_by_one = torch.cat([render_griffin_lim(mag[i : i + 1], cfg, n_iter=8, length=length) for i in range(3)])
    assert torch.equal(one_by_one, render_griffin_lim(mag, cfg, n_iter=8, length=length))
