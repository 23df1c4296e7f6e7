"""From normalised features to audio and back: denormalise, invert mel, Griffin-Lim, normalise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..core.convert import fit_length, resample
from ..core.errors import ParameterError
from ..core.spectral import SpectrogramConfig, features, features_to_magnitude, griffin_lim
from ..data.stats import Normalizer

LEVELS = ("peak", "loudness", "none", "raw")


def default_griffin_lim_iters(spec: SpectrogramConfig) -> int:
    """Griffin-Lim iterations when none are asked: 8 for mel features, 32 for linear ones.

    Through mel the inversion's loss dominates: on 48 dev notes (``benchmarks/bench_griffin_lim.py --sweep``)
    spectral convergence against the true magnitude is 0.260 after 8 iterations and 0.264 after 32, at half
    the CPU; from an exact linear magnitude 32 iterations still gain (0.047 after 8, 0.033 after 32).
    """
    return 8 if spec.kind == "mel" else 32


def features_to_audio(
    feat: torch.Tensor,
    normalizer: Normalizer,
    spec: SpectrogramConfig,
    n_samples: int,
    n_iter: int | None = None,
    postfilter: Callable[[torch.Tensor], torch.Tensor] | None = None,
    mel_method: str = "fista",
    ceiling_iters: int = 0,
    mel_init: str = "interp",
) -> torch.Tensor:
    """Normalised features ``(B, rows, frames)`` -> waveforms ``(B, n_samples)`` at ``spec.sample_rate``.

    ``n_iter``: Griffin-Lim iterations (None: :func:`default_griffin_lim_iters`). The whole batch goes through
    one batched mel inversion and one batched Griffin-Lim. ``postfilter``: applied to the denormalised dB
    features ``(B, rows, frames)`` before inversion (a run's :class:`~.postfilter.PostFilter`). ``mel_method``,
    ``mel_init`` (see :func:`~soundloom.core.spectral.mel_to_magnitude`) and ``ceiling_iters`` (see
    :func:`~soundloom.core.spectral.griffin_lim`): a caller that changes them must record them with the sound to
    recall it bit for bit (the generator records ``mel_init``: sounds made before it existed started from "pinv").

    Deterministic (vocoder-initialised Griffin-Lim), so a latent always renders the same audio.
    """
    db = normalizer.denormalize(feat.detach().float().cpu())
    if postfilter is not None:
        db = postfilter(db)
    return db_to_audio(db, spec, n_samples, n_iter, mel_method, ceiling_iters, mel_init)


def db_to_audio(
    db: torch.Tensor,
    spec: SpectrogramConfig,
    n_samples: int,
    n_iter: int | None = None,
    mel_method: str = "fista",
    ceiling_iters: int = 0,
    mel_init: str = "interp",
) -> torch.Tensor:
    """Denormalised dB features ``(B, rows, frames)`` -> waveforms ``(B, n_samples)``: the inversion and
    Griffin-Lim of :func:`features_to_audio`, for callers that already hold dB (the post-filter's calibration)."""
    mag = features_to_magnitude(db, spec, mel_method=mel_method, mel_init=mel_init)
    iters = default_griffin_lim_iters(spec) if n_iter is None else n_iter
    return griffin_lim(mag, spec, n_iter=iters, length=n_samples, ceiling_iters=ceiling_iters)


def audio_to_features(
    wav: np.ndarray, sample_rate: int, normalizer: Normalizer, spec: SpectrogramConfig, n_samples: int
) -> torch.Tensor:
    """Waveform ``(samples,)`` at ``sample_rate`` -> normalised features ``(rows, frames)`` of the model's front end."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ParameterError(f"expected mono audio (samples,), got shape {wav.shape}")
    if sample_rate != spec.sample_rate:
        wav = resample(wav, sample_rate, spec.sample_rate)
    wav = fit_length(wav, n_samples, fade_samples=min(64, n_samples // 8))
    feat = features(torch.from_numpy(wav), spec)
    return normalizer.normalize(feat).float()


def finish_audio(wav: np.ndarray, from_rate: int, to_rate: int | None, level: str = "peak") -> np.ndarray:
    """Resample ``(samples,)`` to ``to_rate`` and level it: "peak" (-1 dBFS), "loudness" (-23 LUFS), "none" (as
    rendered, clipped to [-1, 1] for a file) or "raw" (as rendered, unclipped: what a measurement reads, since a
    clipped loud kick gains a broadband floor that the model never made)."""
    if level not in LEVELS:
        raise ParameterError(f"level must be one of {LEVELS}, got {level!r}")
    # Imported here: core.levels loads pyloudnorm and so scipy.signal, about as slow to import as torch.
    from ..core.levels import normalize_loudness, normalize_peak

    out = np.asarray(wav, dtype=np.float32)
    rate = to_rate or from_rate
    if rate != from_rate:
        out = resample(out, from_rate, rate)
    if level == "peak":
        out = normalize_peak(out)
    elif level == "loudness":
        out = normalize_loudness(out, rate)
    if level == "raw":
        return out.astype(np.float32)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
