"""The decode path's speed-ups keep the audio the whole-batch path made (so every sidecar renders as before)."""

import numpy as np
import pytest
import torch

from soundloom.core import spectral
from soundloom.core.spectral import SpectrogramConfig, features, features_to_magnitude, griffin_lim, magnitude

from .conftest import harmonic_tone, noise_burst

SR = 8000


def _batch(cfg: SpectrogramConfig) -> torch.Tensor:
    """Seven mel-inverted magnitudes ``(7, bins, frames)``: tones, bursts and a silent item, as a decoder's are."""
    clips = [harmonic_tone(SR, 0.3, f0=f) for f in (110.0, 330.0, 990.0)] + [noise_burst(SR, 0.3, s) for s in (1, 2, 3)]
    x = torch.from_numpy(np.stack(clips + [np.zeros_like(clips[0])]))
    return features_to_magnitude(features(x, cfg), cfg)


@pytest.mark.parametrize("init,ceiling", [("vocoder", 0), ("vocoder", 3), ("random", 0), ("zeros", 0)])
def test_griffin_lim_in_chunks_equals_the_whole_batch_bitwise(monkeypatch, init, ceiling):
    cfg = SpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=64, kind="mel", n_mels=32)
    mag = _batch(cfg)
    n = 2400
    assert mag.shape[-1] == 1 + n // 64  # the frames fit n samples: the framed loop runs at length n
    # The path before chunking: the whole batch's phase, then one framed iteration over every item at once.
    whole = griffin_lim(mag, cfg, n_iter=6, length=n, init=init, seed=4, ceiling_iters=ceiling)
    monkeypatch.setattr(spectral, "_GL_CHUNK_BINS", 10**9)
    assert torch.equal(whole, griffin_lim(mag, cfg, n_iter=6, length=n, init=init, seed=4, ceiling_iters=ceiling))
    if init == "vocoder":
        old = spectral._griffin_lim_frames(mag, spectral.vocoder_phase(mag, cfg), cfg, 6, 0.99, n, ceiling)
        assert torch.equal(whole, old)
    # Chunks of 2 (and a last one of 1), and of 3 items, the silent item in either.
    for items in (2, 3):
        monkeypatch.setattr(spectral, "_GL_CHUNK_BINS", items * mag.shape[-1] * mag.shape[-2])
        assert torch.equal(whole, griffin_lim(mag, cfg, n_iter=6, length=n, init=init, seed=4, ceiling_iters=ceiling))


def test_griffin_lim_chunks_keep_leading_dims():
    cfg = SpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=64)
    mag = magnitude(torch.from_numpy(np.stack([harmonic_tone(SR, 0.2), noise_burst(SR, 0.2)])), cfg)
    nested = griffin_lim(torch.stack([mag, mag.flip(0)]), cfg, n_iter=3, length=1600)
    assert nested.shape == (2, 2, 1600)
    assert torch.equal(nested[1, 0], nested[0, 1])


@pytest.mark.parametrize("method", ["fista", "fista-diag"])
def test_mel_inversion_with_int32_indices_equals_int64_bitwise(method):
    cfg = SpectrogramConfig(sample_rate=SR, n_fft=256, hop_length=64, kind="mel", n_mels=32)
    x = torch.from_numpy(np.stack([harmonic_tone(SR, 0.3), noise_burst(SR, 0.3)]))
    mel = torch.pow(10.0, features(x, cfg) / 10.0)
    got = spectral.mel_to_magnitude(mel, cfg, iters=8, method=method)
    key = (cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz)
    fb_s, fb_t = spectral._mel_sparse(*key, method == "fista-diag")
    assert fb_s.crow_indices().dtype == torch.int32 and fb_t.col_indices().dtype == torch.int32
    step, start = spectral._mel_inverse(*key)[2], spectral._mel_interp(*key)
    wide = [
        torch.sparse_csr_tensor(
            m.crow_indices().long(), m.col_indices().long(), m.values(), m.shape, check_invariants=True
        )
        for m in (fb_s, fb_t)
    ]
    cols = mel.movedim(-2, 0).reshape(cfg.n_mels, -1)
    want = spectral._mel_nnls(cols, *wide, start, 1.0 if method == "fista-diag" else step, 8).sqrt_()
    assert torch.equal(got.movedim(-2, 0).reshape(want.shape), want)
