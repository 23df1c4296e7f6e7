"""The audio core: file I/O, conversion, level normalisation and the spectral front end.

Imports nothing from the engines above it (data, models, stream).
"""

from .convert import convert_audio, fade, fit_length, resample, to_mono
from .io import (
    AUDIO_EXTENSIONS,
    AudioError,
    AudioInfo,
    audio_info,
    is_audio_file,
    load_audio,
    read_audio,
    validate_audio,
    write_audio,
)
from .normalize import (
    loudness_lufs,
    normalize,
    normalize_loudness,
    normalize_peak,
    normalize_rms,
    peak_db,
    rms_db,
    true_peak_db,
)
from .spectral import SpectrogramConfig, griffin_lim, istft, spectral_convergence, stft

__all__ = [
    "AUDIO_EXTENSIONS", "AudioError", "AudioInfo", "SpectrogramConfig", "audio_info", "convert_audio",
    "fade", "fit_length", "griffin_lim", "is_audio_file", "istft", "load_audio", "loudness_lufs",
    "normalize", "normalize_loudness", "normalize_peak", "normalize_rms", "peak_db", "read_audio",
    "resample", "rms_db", "spectral_convergence", "stft", "to_mono", "true_peak_db", "validate_audio",
    "write_audio",
]
