"""Un-centred power spectra for scorers, on the audio core's front end (:mod:`soundloom.core.spectral`).

The core's STFT is centred (frame ``t`` centred on sample ``t * hop``, zero-padded at the ends);
a transition scorer needs frames that start at sample ``k * hop`` and never reach past either end
of its window, so that no frame straddles a cut. Those are frames of the core's STFT, once the
signal is delayed so that a frame start falls on ``k * hop``.
"""

from __future__ import annotations

import torch

from ...core.errors import ParameterError
from ...core.spectral import SpectrogramConfig, magnitude


def uncentred_power(wav: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """``|STFT|^2`` of the frames ``wav[..., k * hop : k * hop + n_fft]`` of ``(..., samples)``.

    Returns ``(..., n_fft // 2 + 1, 1 + (samples - n_fft) // hop)``. Needs ``win_length == n_fft``
    and ``samples >= n_fft``.
    """
    n_fft, hop = cfg.n_fft, int(cfg.hop_length)
    if cfg.win_length != n_fft or wav.shape[-1] < n_fft:
        raise ParameterError(f"need win_length == n_fft and >= {n_fft} samples, got {cfg.win_length}, {wav.shape[-1]}")
    delay = (-(n_fft // 2)) % hop  # centred frame t then starts at sample (t - first) * hop of wav
    first = (n_fft // 2 + delay) // hop
    frames = 1 + (wav.shape[-1] - n_fft) // hop
    x = torch.nn.functional.pad(wav, (delay, 0)) if delay else wav
    return magnitude(x, cfg)[..., first : first + frames].pow(2)
