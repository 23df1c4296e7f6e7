"""Griffin-Lim for rendering: the audio core's fast Griffin-Lim (momentum, vocoder-initialised phase)
with the frame plumbing precomputed.

Identical algorithm to :func:`soundloom.audio.spectral.griffin_lim`; the difference is speed on
short clips, where torch.stft / istft spend most of their time on per-call set-up (window, padding,
envelope, fold). Here the window and the overlap-add envelope are built once per shape, frames are
strided views, and overlap-add is ``n_fft / hop`` shifted sums. Every item of a batch is computed
independently, so a batch renders bitwise the same as its items one by one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..audio.spectral import SpectrogramConfig, get_window, griffin_lim, vocoder_phase


@lru_cache(maxsize=16)
def _plan(n_fft: int, hop: int, win_length: int, window: str, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Window zero-padded to ``n_fft`` (centred, as torch.stft) and the squared-window envelope."""
    win = get_window(window, win_length)
    left = (n_fft - win_length) // 2
    win = torch.nn.functional.pad(win, (left, n_fft - win_length - left))
    env = _overlap_add(win.pow(2).expand(1, frames, n_fft), hop)[0]
    return win, env.clamp_min(1e-11)


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """``(N, T, n_fft)`` -> ``(N, n_fft + (T - 1) * hop)`` when ``n_fft % hop == 0``."""
    n, t, n_fft = frames.shape
    r = n_fft // hop
    parts = frames.reshape(n, t, r, hop)
    out = frames.new_zeros(n, t + r - 1, hop)
    for k in range(r):
        out[:, k : k + t] += parts[:, :, k]
    return out.reshape(n, -1)


def render_griffin_lim(mag: torch.Tensor, cfg: SpectrogramConfig, n_iter: int = 32, momentum: float = 0.99,
                       length: int | None = None) -> torch.Tensor:
    """Magnitude ``(B, n_fft // 2 + 1, frames)`` -> waveform ``(B, length)`` (fast Griffin-Lim).

    Spectra are kept as ``(B, frames, bins)`` and phases as real ``(..., 2)`` pairs, which avoids
    transposes and PyTorch's slow complex division in the inner loop.
    """
    n_fft, hop = cfg.n_fft, int(cfg.hop_length)
    if n_fft % hop or mag.ndim != 3:
        return griffin_lim(mag, cfg, n_iter=n_iter, momentum=momentum, length=length)
    mag = mag.float()
    b, _, t = mag.shape
    length = (t - 1) * hop if length is None else length
    win, env = _plan(n_fft, hop, int(cfg.win_length), cfg.window, t)
    inv_env = 1.0 / env
    half = n_fft // 2
    padded_len = length + 2 * half
    ola_len = n_fft + (t - 1) * hop
    mag_t = mag.transpose(1, 2).contiguous().unsqueeze(-1)  # (B, T, F, 1)

    def to_signal(pairs: torch.Tensor) -> torch.Tensor:
        """Real pairs ``(B, T, F, 2)`` -> centred-padded signal ``(B, length + n_fft)``, zero outside the clip."""
        frames = torch.fft.irfft(torch.view_as_complex(pairs), n=n_fft) * win
        sig = _overlap_add(frames, hop) * inv_env
        if ola_len != padded_len:
            sig = torch.nn.functional.pad(sig, (0, padded_len - ola_len)) if ola_len < padded_len else sig[:, :padded_len]
        sig[:, :half] = 0.0
        sig[:, half + length :] = 0.0
        return sig

    def to_pairs(sig: torch.Tensor) -> torch.Tensor:
        frames = sig.unfold(-1, n_fft, hop)[:, :t] * win
        return torch.view_as_real(torch.fft.rfft(frames, dim=-1))

    phase = vocoder_phase(mag, cfg).transpose(1, 2)
    angles = torch.stack([torch.cos(phase), torch.sin(phase)], dim=-1)
    prev = torch.zeros_like(angles)
    alpha = momentum / (1.0 + momentum)
    for _ in range(n_iter):
        rebuilt = to_pairs(to_signal(mag_t * angles))
        angles = rebuilt - alpha * prev
        angles = angles / (torch.hypot(angles[..., 0], angles[..., 1]) + 1e-16).unsqueeze(-1)
        prev = rebuilt
    return to_signal(mag_t * angles)[:, half : half + length].contiguous()
