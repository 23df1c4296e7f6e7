"""Loop files for game engines: WAV with a ``smpl`` chunk, OGG Vorbis with loop comments, a JSON sidecar.

Loop points in this module's API are half-open sample ranges ``[loop_start, loop_end)`` (Python slice
convention; ``loop_end - loop_start`` is the loop length). What each file stores:

* WAV ``smpl`` chunk: ``start = loop_start`` and ``end = loop_end - 1``, the *last sample played*
  (inclusive), as the RIFF ``smpl`` spec says and libsndfile, Unreal, Wwise and Godot read it
  (libsndfile's ``SFC_GET_INSTRUMENT`` reports ``end + 1``).
* OGG Vorbis comments: ``LOOPSTART = loop_start`` and ``LOOPLENGTH = loop_end - loop_start`` in samples
  (RPG Maker, SDL_mixer).
* JSON sidecar: both, in samples and seconds, with the loudness the loop was brought to (FMOD, Godot's
  ``AudioStreamOggVorbis.loop_offset``).

Audio arrays here are ``(samples,)`` or ``(samples, channels)`` (soundfile's layout).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .atomic import atomic_path, write_json
from .errors import AudioError, ParameterError
from .levels import db_to_gain, loudness_lufs, true_peak_db

#: Loudness presets (integrated LUFS), named for where the loop will play.
LOOP_TARGETS = {"console": -24.0, "handheld": -18.0, "streaming": -14.0}
#: Every preset keeps the true peak at or below this (dBTP).
TRUE_PEAK_CEILING_DB = -1.0
#: Margin under the ceiling so 16-bit rounding cannot push the written file over it (dB).
_CEILING_MARGIN_DB = 0.05
#: The ``smpl`` chunk with one loop: 9 header words + 6 loop words, little-endian uint32.
_SMPL_HEADER = struct.Struct("<9I")
_SMPL_LOOP = struct.Struct("<6I")
_MAX_RIFF = 2**32 - 1


@dataclass(frozen=True)
class SmplLoop:
    """One loop of a ``smpl`` chunk as stored: ``end`` is the last sample played (inclusive)."""

    cue_id: int
    type: int  # 0 forward, 1 ping-pong, 2 backward
    start: int
    end: int
    fraction: int
    play_count: int  # 0 = forever

    @property
    def stop(self) -> int:
        """First sample after the loop (exclusive end, Python slice convention)."""
        return self.end + 1


@dataclass(frozen=True)
class LoopLevel:
    """What loudness normalisation did to a loop (LUFS, dB, dBTP)."""

    target: str
    target_lufs: float
    loudness_lufs: float
    true_peak_dbtp: float
    gain_db: float
    peak_limited: bool  # the true-peak ceiling held the gain below the target


def _as_frames(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    data = np.asarray(audio, dtype=np.float32)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise AudioError(None, f"{what} must be (samples,) or (samples, channels) with samples > 0, got {data.shape}")
    if not np.all(np.isfinite(data)):
        raise AudioError(None, f"{what} has non-finite samples (NaN or Inf)")
    return data


def _check_points(path, n: int, loop_start: int, loop_end: int) -> tuple[int, int]:
    start, end = int(loop_start), int(loop_end)
    if not 0 <= start < end <= n:
        raise ParameterError(path, f"loop [{start}, {end}) is not inside the audio's {n} samples")
    return start, end


def normalize_loop(
    audio: np.ndarray,
    sample_rate: int,
    target: str = "streaming",
    loop_start: int = 0,
    loop_end: int | None = None,
    ceiling_db: float = TRUE_PEAK_CEILING_DB,
) -> tuple[np.ndarray, LoopLevel]:
    """Scale to the preset's integrated loudness, then lower the gain if the true peak would pass
    ``ceiling_db`` (-1 dBTP; lower it to leave room for a lossy encoder's overshoot).

    Loudness is measured on the loop ``[loop_start, loop_end)`` (what plays forever); the true peak on
    the whole file plus the wrap from the loop's end into its start, where an inter-sample peak can
    appear that neither end shows alone. One gain for all of ``audio`` ``(samples,)`` or
    ``(samples, channels)``; returns the scaled float32 audio and what was done.
    """
    if target not in LOOP_TARGETS:
        raise ParameterError(f"unknown loudness target {target!r}; use one of {', '.join(LOOP_TARGETS)}")
    data = _as_frames(audio)
    start, end = _check_points(None, len(data), loop_start, len(data) if loop_end is None else loop_end)
    target_lufs = LOOP_TARGETS[target]
    loop = data[start:end].T  # levels take (channels, samples)
    level = loudness_lufs(loop, sample_rate)
    if not np.isfinite(level):
        raise AudioError(None, "the loop is digital silence; nothing to normalise")
    gain_db = target_lufs - level
    k = min(end - start, sample_rate // 20)  # 50 ms either side of the wrap
    wrapped = np.concatenate([data[:end], data[start : start + k], data[end:]]).T
    room_db = ceiling_db - _CEILING_MARGIN_DB - true_peak_db(wrapped, sample_rate)
    limited = gain_db > room_db
    gain_db = min(gain_db, room_db)
    out = (data * db_to_gain(gain_db)).astype(np.float32)
    tp = true_peak_db(np.concatenate([out[:end], out[start : start + k], out[end:]]).T, sample_rate)
    return out, LoopLevel(
        target, target_lufs, loudness_lufs(out[start:end].T, sample_rate), tp, float(gain_db), bool(limited)
    )


def smpl_chunk(sample_rate: int, loop_start: int, loop_end: int) -> bytes:
    """The ``smpl`` chunk (id, size, body) for one forward loop ``[loop_start, loop_end)`` played forever."""
    header = _SMPL_HEADER.pack(
        0,  # manufacturer: none
        0,  # product
        int(round(1e9 / sample_rate)),  # sample period (ns)
        60,  # MIDI unity note: middle C, played at the recorded pitch
        0,  # pitch fraction
        0,  # SMPTE format: none
        0,  # SMPTE offset
        1,  # number of loops
        0,  # sampler data bytes
    )
    loop = _SMPL_LOOP.pack(0, 0, int(loop_start), int(loop_end) - 1, 0, 0)  # end: last sample played
    body = header + loop
    return b"smpl" + struct.pack("<I", len(body)) + body


def write_loop_wav(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    loop_start: int,
    loop_end: int,
    subtype: str = "PCM_16",
) -> Path:
    """Write PCM WAV with a ``smpl`` chunk looping ``[loop_start, loop_end)`` (samples) forever; atomic.

    Args:
        audio: ``(samples,)`` or ``(samples, channels)`` float in [-1, 1] (clipped outside).
        loop_end: exclusive; the chunk stores ``loop_end - 1`` (see the module docstring).
    """
    path = Path(path)
    data = _as_frames(audio)
    start, end = _check_points(path, len(data), loop_start, loop_end)
    buf = io.BytesIO()
    sf.write(buf, np.clip(data, -1.0, 1.0), sample_rate, format="WAV", subtype=subtype)
    riff = buf.getvalue()
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise AudioError(path, f"soundfile wrote {riff[:4]!r}, not a RIFF WAVE file (too long for WAV?)")
    out = riff + smpl_chunk(sample_rate, start, end)  # every chunk before it is word aligned by libsndfile
    if len(out) - 8 > _MAX_RIFF:
        raise AudioError(path, f"{len(out)} bytes do not fit a RIFF file (4 GiB); write a shorter loop")
    out = out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
    with atomic_path(path, suffix=".wav") as tmp:
        tmp.write_bytes(out)
    return path


def read_smpl_loops(path: str | os.PathLike) -> list[SmplLoop]:
    """The loops of a WAV file's ``smpl`` chunk (empty when it has none), parsed from the RIFF bytes.

    Independent of the writer: walks the chunk list of any RIFF WAVE file. Raises :class:`AudioError`
    for a file that is not RIFF WAVE or whose ``smpl`` chunk is truncated.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(path, f"unreadable ({exc.strerror or exc})") from exc
    return parse_smpl_loops(raw, path)


def parse_smpl_loops(raw: bytes, path: str | os.PathLike | None = None) -> list[SmplLoop]:
    """:func:`read_smpl_loops` on the bytes of a file."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise AudioError(path, "not a RIFF WAVE file")
    end = min(len(raw), 8 + struct.unpack_from("<I", raw, 4)[0])
    pos = 12
    while pos + 8 <= end:
        cid, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        body = pos + 8
        if cid == b"smpl":
            if size < _SMPL_HEADER.size or body + size > len(raw):
                raise AudioError(path, f"truncated smpl chunk ({size} bytes declared, {len(raw) - body} present)")
            n_loops, extra = _SMPL_HEADER.unpack_from(raw, body)[7:9]
            if _SMPL_HEADER.size + n_loops * _SMPL_LOOP.size > size:
                raise AudioError(path, f"smpl chunk declares {n_loops} loops but holds {size} bytes")
            first = body + _SMPL_HEADER.size
            return [SmplLoop(*_SMPL_LOOP.unpack_from(raw, first + i * _SMPL_LOOP.size)) for i in range(n_loops)]
        pos = body + size + (size & 1)  # chunks are padded to an even length
    return []


def write_loop_ogg(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    loop_start: int,
    loop_end: int,
    quality: float | None = None,
) -> Path:
    """Write OGG Vorbis tagged ``LOOPSTART`` / ``LOOPLENGTH`` (samples, as text) for ``[loop_start, loop_end)``.

    Args:
        audio: ``(samples,)`` or ``(samples, channels)`` float in [-1, 1].
        quality: Vorbis quality 0..1 (libsndfile's default when None).
    """
    from mutagen.oggvorbis import OggVorbis

    path = Path(path)
    data = _as_frames(audio)
    start, end = _check_points(path, len(data), loop_start, loop_end)
    with atomic_path(path, suffix=".ogg") as tmp:
        level = None if quality is None else 1.0 - float(np.clip(quality, 0.0, 1.0))
        sf.write(tmp, np.clip(data, -1.0, 1.0), sample_rate, format="OGG", subtype="VORBIS", compression_level=level)
        tags = OggVorbis(tmp)
        tags["LOOPSTART"] = str(start)
        tags["LOOPLENGTH"] = str(end - start)
        tags.save()
    return path


def write_loop_sidecar(
    path: str | os.PathLike,
    sample_rate: int,
    loop_start: int,
    loop_end: int,
    frames: int,
    level: LoopLevel | None = None,
    search: dict | None = None,
) -> Path:
    """JSON loop points for engines that set them by API (FMOD, Godot): samples and seconds, with the
    loudness the loop was brought to; ``search`` (JSON-able: how the loop was found, its seam figures,
    positions in the source) is stored under ``"loop_search"``."""
    start, end = _check_points(path, frames, loop_start, loop_end)
    doc = {
        "sample_rate": int(sample_rate),
        "frames": int(frames),
        "duration_s": frames / sample_rate,
        "loop_start_samples": start,
        "loop_end_samples": end,
        "loop_end_convention": "exclusive (first sample after the loop); the WAV smpl chunk stores end - 1",
        "loop_length_samples": end - start,
        "loop_start_s": start / sample_rate,
        "loop_end_s": end / sample_rate,
        "loop_length_s": (end - start) / sample_rate,
    }
    if level is not None:
        doc["loudness"] = asdict(level)
        doc["loudness"]["true_peak_ceiling_dbtp"] = TRUE_PEAK_CEILING_DB
        if level.peak_limited:
            doc["loudness"]["note"] = (
                f"quieter than the {level.target} target ({level.loudness_lufs:.1f} LUFS, not "
                f"{level.target_lufs:.1f}): the gain stopped at the {TRUE_PEAK_CEILING_DB:.0f} dBTP ceiling"
            )
    if search:
        doc["loop_search"] = search
    return write_json(path, doc)


__all__ = [
    "LOOP_TARGETS",
    "TRUE_PEAK_CEILING_DB",
    "LoopLevel",
    "SmplLoop",
    "normalize_loop",
    "parse_smpl_loops",
    "read_smpl_loops",
    "smpl_chunk",
    "write_loop_ogg",
    "write_loop_sidecar",
    "write_loop_wav",
]
