"""Reading and writing audio files, with one error type that names the file and the reason.

Arrays are float32 and shaped ``(channels, samples)`` unless a function says it returns mono
``(samples,)``. Every writer writes to a temporary name in the target folder and renames, so a
killed process never leaves a half-written file behind.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .atomic import atomic_path
from .errors import AudioError

#: Extensions we read; libsndfile decodes all of them (mp3 needs libsndfile >= 1.1).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".w64")
#: Output formats: extension -> (libsndfile format, default subtype).
WRITE_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, without decoding the samples."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when the extension is one we read."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header information of ``path``; raises :class:`AudioError` if unreadable or empty."""
    _check_regular(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises RuntimeError/LibsndfileError/TypeError
        raise AudioError(path, unreadable_reason(path, exc)) from exc
    frames = int(info.frames)
    # mp3 headers may report an unknown frame count; decode to be sure.
    if frames <= 0 or frames >= 2**62:
        frames = read_audio(path)[0].shape[-1]
    if frames <= 0:
        raise AudioError(path, "empty (no samples)")
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), frames, str(info.format))


def read_audio(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` (or samples ``[start, stop)`` of it) as float32 ``(channels, samples)``."""
    _check_regular(path)
    try:
        data, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(path, unreadable_reason(path, exc)) from exc
    return np.ascontiguousarray(data.T), int(rate)


#: Bytes per PCM sample -> (NumPy dtype of the stored integers, the factor libsndfile's float
#: conversion uses). 8-bit WAV is unsigned (offset 128); 24-bit is widened to int32 first.
_PCM = {1: ("u1", 2.0**-7), 2: ("<i2", 2.0**-15), 3: ("<i4", 2.0**-31), 4: ("<i4", 2.0**-31)}


def read_head(
    path: str | os.PathLike, seconds: float | None = None, extra_frames: int = 0, small_bytes: int = 1 << 22
) -> tuple[np.ndarray, int, int]:
    """Decode the first ``seconds`` of ``path`` plus ``extra_frames`` (all of it when None).

    PCM WAV files up to ``small_bytes`` are parsed by the standard library's ``wave``, which
    costs about a quarter of a libsndfile open-and-read through its Python binding (that is most
    of the time per file on a folder of one-shots) and nothing to import (``scipy.io.wavfile``
    cost 0.3 s of start-up); the integer samples are scaled as libsndfile scales them.
    Anything else (float WAV, WAVE_FORMAT_EXTENSIBLE, other formats, broken files) goes through
    soundfile, which decodes only the frames asked for and names the reason a file is bad.

    Returns:
        ``(wav (channels, n) float32, sample rate Hz, frames in the whole file)``, with
        ``n = min(ceil(seconds * rate) + extra_frames, frames)``. The frame count of a file
        whose header does not give it (some mp3) is that of what was decoded.
    Raises:
        AudioError: unreadable.
    """
    path = os.fspath(path)
    size = _check_regular(path)
    if path.lower().endswith(".wav") and size <= small_bytes:
        wav = _read_small_wav(path, seconds, extra_frames)
        if wav is not None:
            return wav
    try:
        with sf.SoundFile(path) as f:
            rate, frames = int(f.samplerate), int(f.frames)
            max_frames = _head_frames(seconds, extra_frames, rate)
            partial = max_frames is not None and max_frames < frames < 2**62
            data = f.read(max_frames if partial else -1, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises RuntimeError / LibsndfileError / TypeError
        raise AudioError(path, unreadable_reason(path, exc)) from exc
    if not partial:
        frames = data.shape[0]
        data = data[:max_frames]
    return data.T, rate, frames


def _head_frames(seconds: float | None, extra_frames: int, rate: int) -> int | None:
    return None if seconds is None else int(np.ceil(seconds * rate)) + extra_frames


def _read_small_wav(path: str, seconds: float | None, extra_frames: int) -> tuple[np.ndarray, int, int] | None:
    """:func:`read_head` for a small integer-PCM WAV via ``wave``, or None to leave it to soundfile."""
    import wave

    try:
        with wave.open(path, "rb") as f:
            channels, width, rate = f.getnchannels(), f.getsampwidth(), f.getframerate()
            data = f.readframes(f.getnframes())
    except Exception:  # not a PCM WAV wave knows (or broken): soundfile decides and names the reason
        return None
    block = channels * width
    frames = len(data) // block
    if frames == 0 or width not in _PCM or rate <= 0:
        return None
    keep = frames if seconds is None else min(frames, _head_frames(seconds, extra_frames, rate))
    raw = np.frombuffer(data, np.uint8, keep * block)
    dtype, scale = _PCM[width]
    if width == 3:  # little-endian 24-bit: put each sample in the top three bytes of an int32
        wide = np.zeros((keep * channels, 4), np.uint8)
        wide[:, 1:] = raw.reshape(-1, 3)
        ints = wide.view("<i4").reshape(keep, channels)
    else:
        ints = raw.view(dtype).reshape(keep, channels)
    if width == 1:
        wav = (ints.T.astype(np.float32) - 128.0) * np.float32(scale)
    else:  # cast and scale in one pass
        wav = np.multiply(ints.T, np.float32(scale), dtype=np.float32)
    return wav, int(rate), frames


def validate_audio(
    wav: np.ndarray,
    sample_rate: int,
    path: str | os.PathLike | None = None,
    min_seconds: float = 0.0,
    silence_db: float | None = -80.0,
) -> None:
    """Raise :class:`AudioError` if ``wav`` is empty, non-finite, too short or all silent.

    Args:
        wav: samples ``(..., samples)``.
        min_seconds: shortest accepted duration in seconds.
        silence_db: peak level (dBFS) at or below which the clip counts as silent; None = allow.
    """
    n = wav.shape[-1] if wav.ndim else 0
    if n == 0:
        raise AudioError(path, "empty (no samples)")
    # max and min propagate NaN and keep Inf: one pass each finds the peak and non-finite samples.
    hi, lo = float(wav.max()), float(wav.min())
    if not (np.isfinite(hi) and np.isfinite(lo)):
        raise AudioError(path, "non-finite samples (NaN or Inf)")
    peak = max(hi, -lo)
    if n < min_seconds * sample_rate:
        raise AudioError(path, f"too short ({n / sample_rate:.3f} s < {min_seconds:.3f} s)")
    if silence_db is not None:
        if peak <= 10 ** (silence_db / 20):
            raise AudioError(path, f"silent (peak {20 * np.log10(peak + 1e-12):.1f} dBFS)")


def check_audio_file(
    path: str | os.PathLike, min_seconds: float = 0.0, silence_db: float | None = -80.0, block_frames: int = 1 << 16
) -> AudioInfo:
    """Decode all of ``path`` block by block and check it as :func:`validate_audio` does.

    Memory stays at one block (``block_frames`` x channels float32, 0.5 MB for stereo by
    default) whatever the file's length: a 20-minute stereo file is no longer decoded whole.

    Returns:
        The file's :class:`AudioInfo`, ``frames`` counted from what was decoded.
    Raises:
        AudioError: unreadable, empty, non-finite, too short or silent.
    """
    _check_regular(path)
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels, fmt = int(f.samplerate), int(f.channels), str(f.format)
            buf = np.empty((block_frames, channels), np.float32)
            frames, hi, lo = 0, -np.inf, np.inf
            while True:
                n = f.read(block_frames, dtype="float32", always_2d=True, out=buf).shape[0]
                if n == 0:
                    break
                block = buf[:n]
                # NumPy's max and min propagate NaN and keep Inf, as in validate_audio (Python's
                # max() would drop a NaN, so the block's values are tested before merging).
                bhi, blo = float(block.max()), float(block.min())
                frames += n
                if not (np.isfinite(bhi) and np.isfinite(blo)):
                    hi = np.nan
                    break
                hi, lo = max(hi, bhi), min(lo, blo)
    except Exception as exc:  # libsndfile raises RuntimeError / LibsndfileError / TypeError
        raise AudioError(path, unreadable_reason(path, exc)) from exc
    if frames == 0:
        raise AudioError(path, "empty (no samples)")
    if not (np.isfinite(hi) and np.isfinite(lo)):
        raise AudioError(path, "non-finite samples (NaN or Inf)")
    if frames < min_seconds * rate:
        raise AudioError(path, f"too short ({frames / rate:.3f} s < {min_seconds:.3f} s)")
    peak = max(hi, -lo)
    if silence_db is not None and peak <= 10 ** (silence_db / 20):
        raise AudioError(path, f"silent (peak {20 * np.log10(peak + 1e-12):.1f} dBFS)")
    return AudioInfo(str(path), rate, channels, frames, fmt)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = True,
    min_seconds: float = 0.0,
    silence_db: float | None = -80.0,
) -> tuple[np.ndarray, int]:
    """Read, check, downmix and resample in one call.

    Returns:
        ``(samples,)`` float32 if ``mono`` else ``(channels, samples)``, and the sample rate in Hz
        (``sample_rate`` if given, else the file's).
    """
    from .convert import resample, to_mono  # local import keeps io free of soxr at import time

    wav, rate = read_audio(path)
    validate_audio(wav, rate, path, min_seconds=min_seconds, silence_db=silence_db)
    if mono:
        wav = to_mono(wav)
    if sample_rate is not None and sample_rate != rate:
        wav = resample(wav, rate, sample_rate)
        rate = sample_rate
    return wav.astype(np.float32, copy=False), rate


def write_audio(
    path: str | os.PathLike,
    wav: np.ndarray,
    sample_rate: int,
    format: str | None = None,
    subtype: str | None = None,
) -> Path:
    """Write ``wav`` (``(samples,)`` or ``(channels, samples)``, float in [-1, 1]) atomically.

    The format comes from ``format`` or the extension (wav, flac, ogg, mp3). Samples outside
    [-1, 1] are clipped; normalise first if that matters.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in WRITE_FORMATS:
        raise AudioError(path, f"cannot write format {fmt!r}; use one of {sorted(WRITE_FORMATS)}")
    if fmt == "mp3" and sample_rate not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
        raise AudioError(path, f"mp3 does not support {sample_rate} Hz")
    sf_format, default_subtype = WRITE_FORMATS[fmt]
    data = np.asarray(wav, dtype=np.float32)
    if data.ndim == 2:
        data = data.T
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "refusing to write non-finite samples")
    data = np.clip(data, -1.0, 1.0)
    with atomic_path(path, suffix=f".{fmt}") as tmp:
        sf.write(tmp, data, sample_rate, format=sf_format, subtype=subtype or default_subtype)
    return path


def _check_regular(path: str | os.PathLike) -> int:
    """Size in bytes of ``path``, a regular file; otherwise :class:`AudioError` with the reason.

    Checked before any decoder sees the path: opening a named pipe would block forever.
    """
    try:
        st = os.stat(path)
    except OSError as err:
        raise AudioError(path, os_reason(err)) from err
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "a folder, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a socket or device"
        raise AudioError(path, f"not a regular file ({kind})")
    if st.st_size == 0:
        raise AudioError(path, "empty (0-byte file)")
    return int(st.st_size)


def os_reason(err: OSError) -> str:
    """A short reason for an ``OSError``: "permission denied", "missing (...)", "link loop (...)"."""
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOENT:
        return "missing (no such file)"
    if err.errno == errno.ELOOP:
        return "link loop (the link points back to itself)"
    if err.errno == errno.EISDIR:
        return "a folder, not an audio file"
    return f"unreadable ({err.strerror or err})"


#: libsndfile messages -> plain reasons. Its "not a regular file (possibly a pipe?)" is what
#: the mp3 probe says of any regular file it cannot parse.
_LIBSNDFILE_REASONS = (
    ("format not recognised", "not a decodable audio file (format not recognised)"),
    ("possibly a pipe", "not a decodable audio file (format not recognised)"),
)


def unreadable_reason(path: str | os.PathLike, exc: BaseException) -> str:
    """Why a decoder failed on ``path``, in plain words.

    libsndfile says "System error." for a file it may not open: the operating system is asked
    first (stat, then a one-byte read), so permission, missing and folder read as such; then
    libsndfile's own message is mapped (:data:`_LIBSNDFILE_REASONS`) or quoted.
    """
    try:
        _check_regular(path)
        with open(path, "rb") as f:
            f.read(1)
    except AudioError as err:
        return err.reason
    except OSError as err:
        return os_reason(err)
    msg = re.sub(r"^Error opening .*?: ", "", _short(exc))
    low = msg.lower()
    for needle, reason in _LIBSNDFILE_REASONS:
        if needle in low:
            return reason
    return f"not a decodable audio file ({msg.rstrip('.')})"


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return msg[-1][:200] if msg else type(exc).__name__
