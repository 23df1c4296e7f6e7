"""The audio core under both engines: errors, atomic writes, progress, audio I/O, conversion,
levels (peak, RMS, LUFS), the spectral front end and weights on disk.

Imports nothing from the engines above it. Names are loaded on first use, so importing
``soundloom.core`` (or its light modules, such as :mod:`soundloom.core.errors`) costs no torch::

    from soundloom.core import load_audio, write_audio, normalize_loudness, fit_length
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "convert": ["convert_audio", "fade", "fit_length", "resample", "to_mono"],
    "errors": [
        "SoundloomError",
        "AudioError",
        "DataError",
        "LayoutError",
        "StoreError",
        "PoolError",
        "ModelFileError",
        "ParameterError",
    ],
    "io": [
        "AUDIO_EXTENSIONS",
        "AudioInfo",
        "audio_info",
        "is_audio_file",
        "load_audio",
        "read_audio",
        "validate_audio",
        "write_audio",
    ],
    "levels": [
        "loudness_lufs",
        "normalize",
        "normalize_loudness",
        "normalize_peak",
        "normalize_rms",
        "peak_db",
        "rms_db",
        "true_peak_db",
    ],
    "spectral": ["SpectrogramConfig", "griffin_lim", "istft", "spectral_convergence", "stft"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
