"""The spectral front end's settings and its NumPy forward path: no torch, no librosa, no scipy.

:class:`SpectrogramConfig`, the windows, the slaney mel filterbank and the MFCC DCT live here,
so a process that only computes features (``soundloom prepare``) starts without importing torch
(about 1.6 s). :mod:`soundloom.core.spectral` re-exports the settings and runs the same maths
in torch (any device, autograd, the inverse); the two agree within float32 rounding.

Conventions as in :mod:`soundloom.core.spectral`: waveforms ``(..., samples)``; centred frames
(zero padding of ``n_fft // 2`` on each side); every one of the ``n_fft // 2 + 1`` bins kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import ParameterError

WINDOWS = ("hann", "blackman", "hamming")
KINDS = ("magnitude", "power", "db", "mel", "mfcc")
#: ``10 log10(x) == _DB_PER_LN * ln(x)``; NumPy's float32 ``log`` is SIMD, its ``log10`` is not (4x).
_DB_PER_LN = 10.0 / np.log(10.0)


@dataclass
class SpectrogramConfig:
    """Every parameter of the front end, saved with features and models.

    Attributes:
        sample_rate: Hz.
        n_fft: FFT size in samples; ``n_fft // 2 + 1`` bins are kept.
        win_length: window (block) size in samples, <= n_fft; None = n_fft.
        hop_length: hop in samples; None derives it from ``overlap``.
        overlap: fraction of the window shared by neighbouring frames (0.75 = 75 %).
        window: "hann", "blackman" or "hamming".
        kind: "db" (log magnitude), "mel" (log mel), "magnitude", "power" or "mfcc".
        n_mels, fmin_hz, fmax_hz: mel filterbank (slaney, as librosa).
        n_mfcc: coefficients kept for kind="mfcc".
        floor_db: dB values are clipped below at this level (relative to full scale 1.0).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int | None = None
    hop_length: int | None = None
    overlap: float = 0.75
    window: str = "hann"
    kind: str = "db"
    n_mels: int = 80
    fmin_hz: float = 0.0
    fmax_hz: float | None = None
    n_mfcc: int = 20
    floor_db: float = -100.0

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ParameterError(f"window must be one of {WINDOWS}, got {self.window!r}")
        if self.kind not in KINDS:
            raise ParameterError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.win_length is None:
            self.win_length = self.n_fft
        if self.win_length > self.n_fft:
            raise ParameterError(f"win_length {self.win_length} > n_fft {self.n_fft}")
        if self.hop_length is None:
            if not 0.0 <= self.overlap < 1.0:
                raise ParameterError(f"overlap must be in [0, 1), got {self.overlap}")
            self.hop_length = max(1, int(round(self.win_length * (1.0 - self.overlap))))

    @property
    def n_bins(self) -> int:
        """Rows of a linear spectrogram: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def n_rows(self) -> int:
        """Rows of the feature this config produces."""
        return {"mel": self.n_mels, "mfcc": self.n_mfcc}.get(self.kind, self.n_bins)

    def n_frames(self, n_samples: int) -> int:
        """Frames of a centred STFT of ``n_samples`` samples (as ``torch.stft(center=True)``)."""
        return 1 + (n_samples + 2 * (self.n_fft // 2) - self.n_fft) // int(self.hop_length)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SpectrogramConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@lru_cache(maxsize=32)
def window_array(name: str, win_length: int, n_fft: int | None = None) -> np.ndarray:
    """Periodic window (float64) of ``win_length`` samples, zero-padded in the centre of
    ``n_fft`` samples when given (as ``torch.stft`` pads a short window)."""
    n = np.arange(win_length) * (2.0 * np.pi / win_length)
    if name == "hann":
        win = 0.5 - 0.5 * np.cos(n)
    elif name == "hamming":
        win = 0.54 - 0.46 * np.cos(n)
    elif name == "blackman":
        win = 0.42 - 0.5 * np.cos(n) + 0.08 * np.cos(2.0 * n)
    else:
        raise ParameterError(f"window must be one of {WINDOWS}, got {name!r}")
    if n_fft is not None and n_fft > win_length:
        left = (n_fft - win_length) // 2
        win = np.pad(win, (left, n_fft - win_length - left))
    win.flags.writeable = False
    return win


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_part = hz >= 1000.0
    mel[log_part] = 15.0 + np.log(hz[log_part] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_part = mel >= 15.0
    hz[log_part] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_part] - 15.0))
    return hz


@lru_cache(maxsize=32)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised mel filterbank ``(n_mels, n_fft // 2 + 1)`` float32, as
    ``librosa.filters.mel`` (its defaults) computes it; ``fmax`` None is ``sample_rate / 2``."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    fdiff = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]  # slaney: equal area per band
    basis = weights.astype(np.float32)
    basis.flags.writeable = False
    return basis


@lru_cache(maxsize=8)
def dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II ``(n_mfcc, n_mels)`` float32 (``scipy.fft.dct(norm="ortho")`` as a matrix)."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    mat = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    mat[0] *= np.sqrt(0.5)
    out = mat.astype(np.float32)
    out.flags.writeable = False
    return out


def stft_frames(wav: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """Complex STFT, frame-major: ``(..., samples)`` -> complex128 ``(..., frames, n_fft // 2 + 1)``.

    Equals :func:`soundloom.core.spectral.stft` transposed (constant centre padding). The FFT
    runs in float64: NumPy's float64 ``rfft`` is faster than its float32 one.
    """
    wav = np.asarray(wav, dtype=np.float32)
    n_fft, hop, half = cfg.n_fft, int(cfg.hop_length), cfg.n_fft // 2
    lead, n = wav.shape[:-1], wav.shape[-1]
    padded = np.zeros((*lead, n + 2 * half), np.float32)
    padded[..., half : half + n] = wav
    frames = sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    return np.fft.rfft(frames * window_array(cfg.window, int(cfg.win_length), n_fft), axis=-1)


def power_frames(wav: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """``|STFT|^2`` frame-major, float32 ``(..., frames, n_fft // 2 + 1)``."""
    spec = stft_frames(wav, cfg)
    power = np.square(spec.real)
    power += np.square(spec.imag)
    return power.astype(np.float32)


def power_to_db(power: np.ndarray, floor_db: float = -100.0) -> np.ndarray:
    """``10 log10(power)`` clipped below at ``floor_db``, in place on a float32 array.

    Taken as ``floor_db + 10 log10(power / floor)``, so the floor comes out exactly (silence
    is ``floor_db``, not ``floor_db + 1e-5``).
    """
    power *= np.float32(10 ** (-floor_db / 10))
    np.maximum(power, np.float32(1.0), out=power)
    np.log(power, out=power)
    power *= np.float32(_DB_PER_LN)
    power += np.float32(floor_db)
    return power


def features_numpy(wav: np.ndarray, cfg: SpectrogramConfig, out: np.ndarray | None = None) -> np.ndarray:
    """The feature ``cfg.kind`` asks for, as :func:`soundloom.core.spectral.features` computes it.

    Args:
        wav: float32 ``(..., samples)``.
        out: written in place when given (``(..., cfg.n_rows, frames)``, any strides).
    Returns:
        float32 ``(..., cfg.n_rows, frames)``.
    """
    power = power_frames(wav, cfg)  # (..., frames, bins): every step below runs in memory order
    if cfg.kind == "magnitude":
        feat = np.sqrt(power, out=power)
    elif cfg.kind == "power":
        feat = power
    elif cfg.kind == "db":
        feat = power_to_db(power, cfg.floor_db)
    else:
        mel = power @ mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz).T
        feat = power_to_db(mel, cfg.floor_db)
        if cfg.kind == "mfcc":
            feat = feat @ dct_matrix(cfg.n_mels, cfg.n_mfcc).T
    feat = np.swapaxes(feat, -1, -2)
    if out is None:
        return np.ascontiguousarray(feat, dtype=np.float32)
    out[...] = feat
    return out
