"""Figures: a grid with one row per sound, its waveform on the left and its spectrogram on the right."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ParameterError


def plot_grid(
    sounds: list[tuple[str, np.ndarray, int]],
    out: str | os.PathLike,
    n_fft: int = 1024,
    floor_db: float = -100.0,
    dpi: int = 100,
) -> Path:
    """Save a waveform + dB spectrogram grid.

    Args:
        sounds: ``(title, samples (samples,) or (channels, samples), sample rate Hz)`` per row.
        out: image path (png, pdf, svg ... by extension).
        n_fft: FFT size of the spectrograms (hop ``n_fft // 4``, Hann window).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    import torch

    from .convert import to_mono
    from .spectral import SpectrogramConfig, amplitude_to_db, magnitude

    if not sounds:
        raise ParameterError("nothing to plot")
    fig, axes = plt.subplots(
        len(sounds), 2, figsize=(12, 2.2 * len(sounds)), squeeze=False, gridspec_kw={"width_ratios": [1, 1.3]}
    )
    for row, (title, wav, rate) in enumerate(sounds):
        mono = to_mono(np.asarray(wav, dtype=np.float32))
        t = np.arange(len(mono)) / rate
        ax = axes[row, 0]
        ax.plot(t, mono, lw=0.5, color="tab:blue")
        ax.set_xlim(0, max(t[-1], 1e-3) if len(t) else 1)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel("amplitude")
        cfg = SpectrogramConfig(sample_rate=rate, n_fft=n_fft, overlap=0.75)
        db = amplitude_to_db(magnitude(torch.from_numpy(mono), cfg), floor_db).numpy()
        ax = axes[row, 1]
        frames = db.shape[-1]
        im = ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=floor_db,
            vmax=max(float(db.max()), floor_db + 1),
            extent=(0, frames * cfg.hop_length / rate, 0, rate / 2000),
        )
        ax.set_ylabel("kHz")
        fig.colorbar(im, ax=ax, pad=0.01, label="dB")
    axes[-1, 0].set_xlabel("seconds")
    axes[-1, 1].set_xlabel("seconds")
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out, suffix=out.suffix) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return out


def plot_files(paths: list[str | os.PathLike], out: str | os.PathLike, seconds: float | None = None, **kwargs) -> Path:
    """:func:`plot_grid` of audio files (first ``seconds`` of each if given); raises AudioError naming a bad file."""
    from .io import read_audio

    sounds = []
    for p in paths:
        wav, rate = read_audio(p, stop=None if seconds is None else int(seconds * _rate(p)))
        sounds.append((Path(p).name, wav, rate))
    return plot_grid(sounds, out, **kwargs)


def _rate(path: str | os.PathLike) -> int:
    from .io import audio_info

    return audio_info(path).sample_rate
