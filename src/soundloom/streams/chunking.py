"""Cut a song into chunks: on silence, at fixed lengths, or every N beats.

Every method returns chunk boundaries as ``(start, end)`` sample offsets into the song; the audio
itself is never copied (the catalog stores offsets, the renderer reads them back from the file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..core.errors import ParameterError

METHODS = ("silence", "fixed", "beats")
#: No chunk is shorter than this (s), whatever ``min_chunk_s`` says: the renderer needs room for
#: its 50 ms seam windows and fades, and a 1-sample chunk has no loudness, spectrum or tempo.
SHORTEST_CHUNK_S = 0.1


@dataclass
class ChunkConfig:
    """How to cut songs.

    Attributes:
        method: "silence", "fixed" or "beats".
        seconds: chunk length for "fixed" (s).
        silence_db: frames quieter than this (dBFS RMS over 10 ms) count as silence.
        min_silence_ms: shortest silence that cuts (ms).
        keep_silence_ms: silence kept at each side of a cut (ms).
        beats: beats per chunk for "beats".
        beats_per_bar: when > 0, chunk length is ``beats * beats_per_bar`` (``beats`` = bars).
        min_chunk_s: chunks shorter than this are merged into their neighbour (s).
        lead_ms: for "beats", cut this long before each beat (ms): a chunk's first hit then falls just
            after its start, and a join's crossfade and seam windows hear the previous beat's decay
            rather than the hit, as inside the song.
    """

    method: str = "fixed"
    seconds: float = 3.0
    silence_db: float = -40.0
    min_silence_ms: float = 300.0
    keep_silence_ms: float = 100.0
    beats: int = 8
    beats_per_bar: int = 0
    min_chunk_s: float = 0.5
    lead_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"chunk method must be one of {METHODS}, got {self.method!r}")
        if self.method == "fixed" and self.seconds <= 0:
            raise ParameterError(f"fixed chunk length must be > 0 s, got {self.seconds}")
        if not (0.0 <= self.lead_ms <= 500.0):
            raise ParameterError(f"lead before beats must be 0-500 ms, got {self.lead_ms}")
        if self.method == "beats" and self.beats < 1:
            raise ParameterError(f"beats per chunk must be >= 1, got {self.beats}")
        if not (self.min_chunk_s >= 0 and np.isfinite(self.min_chunk_s)):
            raise ParameterError(f"min_chunk_s must be a finite number >= 0, got {self.min_chunk_s}")
        if not np.isfinite(self.seconds):
            raise ParameterError(f"chunk length must be finite, got {self.seconds}")

    def to_dict(self) -> dict:
        return asdict(self)


def chunk_fixed(n_samples: int, sample_rate: int, seconds: float) -> list[tuple[int, int]]:
    """Consecutive chunks of ``seconds``; a tail shorter than half a chunk joins the last one."""
    size = max(1, int(round(seconds * sample_rate)))
    starts = list(range(0, n_samples, size))
    bounds = [(s, min(s + size, n_samples)) for s in starts]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < size // 2:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def frame_rms_db(wav: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames: ``(n_samples // frame,)``."""
    n = len(wav) // frame
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    blocks = wav[: n * frame].reshape(n, frame).astype(np.float64)
    return (10.0 * np.log10(np.mean(blocks**2, axis=1) + 1e-12)).astype(np.float32)


def chunk_silence(
    wav: np.ndarray, sample_rate: int, silence_db: float, min_silence_ms: float, keep_silence_ms: float
) -> list[tuple[int, int]]:
    """Split on silences of at least ``min_silence_ms`` below ``silence_db`` dBFS.

    Each sounding region becomes a chunk extended by ``keep_silence_ms`` into the silences around
    it (never past a silence's midpoint), so chunk A keeps the start of a silence and B its end.
    """
    frame = max(1, sample_rate // 100)
    silent = frame_rms_db(wav, frame) < silence_db
    min_frames = max(1, int(np.ceil(min_silence_ms / 10.0)))
    keep = int(keep_silence_ms * sample_rate / 1000.0)
    n = len(wav)
    runs: list[tuple[int, int]] = []  # silent runs in samples
    i = 0
    while i < len(silent):
        if not silent[i]:
            i += 1
            continue
        j = i
        while j < len(silent) and silent[j]:
            j += 1
        if j - i >= min_frames:
            runs.append((i * frame, n if j == len(silent) else j * frame))
        i = j
    edges = [(0, 0)] + runs + [(n, n)]
    bounds: list[tuple[int, int]] = []
    for (p0, p1), (q0, q1) in zip(edges[:-1], edges[1:]):
        if q0 <= p1:
            continue
        start = max(p1 - keep, (p0 + p1) // 2)
        end = min(q0 + keep, (q0 + q1) // 2)
        bounds.append((start, end))
    return bounds


def track_beats(wav: np.ndarray, sample_rate: int, hop: int = 512) -> tuple[float, np.ndarray]:
    """Tempo (BPM) and beat positions (samples, sorted) with librosa's dynamic-programming tracker."""
    import librosa

    tempo, frames = librosa.beat.beat_track(y=wav, sr=sample_rate, hop_length=hop, units="frames")
    beats = librosa.frames_to_samples(frames, hop_length=hop)
    if len(beats) > 1:  # the tracker's grid drifts by tens of ms: snap to onsets within 15 % of a beat
        period_s = float(np.median(np.diff(beats))) / sample_rate
        beats = _refine_to_onsets(wav, sample_rate, beats, radius_s=min(0.08, 0.15 * period_s))
    return float(np.atleast_1d(tempo)[0]), beats.astype(np.int64)


def _refine_to_onsets(wav: np.ndarray, sample_rate: int, beats: np.ndarray, radius_s: float = 0.03) -> np.ndarray:
    """Move each beat (samples) to the steepest energy rise within ``radius_s`` (frame-accurate -> ms-accurate)."""
    frame = max(1, sample_rate // 1000)  # 1 ms energy frames
    env = np.sqrt(np.maximum(np.convolve(wav.astype(np.float64) ** 2, np.ones(frame) / frame, "same"), 0))
    rise = np.diff(env, prepend=env[0])
    r = int(radius_s * sample_rate)
    out = beats.copy()
    for k, b in enumerate(beats):
        lo, hi = max(0, b - r), min(len(wav), b + r)
        if hi - lo > 2:
            out[k] = lo + int(np.argmax(rise[lo:hi])) - frame // 2
    return np.clip(out, 0, len(wav))


def chunk_beats(
    wav: np.ndarray, sample_rate: int, beats_per_chunk: int, lead_ms: float = 0.0
) -> tuple[float, list[tuple[int, int]]]:
    """Chunks of ``beats_per_chunk`` beats whose boundaries fall ``lead_ms`` before tracked beats.

    Returns tempo in BPM and bounds; audio before the first cut belongs to no chunk.
    """
    tempo, beats = track_beats(wav, sample_rate)
    lead = int(round(lead_ms * sample_rate / 1000.0))
    cuts = list(np.unique(np.maximum(beats[::beats_per_chunk] - lead, 0)))
    if len(cuts) < 2:
        return tempo, [(0, len(wav))]
    if len(wav) - cuts[-1] > 0:
        cuts.append(len(wav))
    return tempo, [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def merge_short(bounds: list[tuple[int, int]], min_samples: int) -> list[tuple[int, int]]:
    """Merge chunks shorter than ``min_samples`` into the previous chunk (or the next for the first)."""
    out: list[tuple[int, int]] = []
    for s, e in bounds:
        if out and e - s < min_samples and s - out[-1][1] <= min_samples:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    if len(out) > 1 and out[0][1] - out[0][0] < min_samples:
        first = out.pop(0)
        out[0] = (first[0], out[0][1])
    return out


def min_song_seconds(cfg: ChunkConfig) -> float:
    """Shortest usable song (s): one chunk of ``cfg.min_chunk_s``, at least :data:`SHORTEST_CHUNK_S`."""
    return max(cfg.min_chunk_s, SHORTEST_CHUNK_S)


def chunk_song(wav: np.ndarray, sample_rate: int, cfg: ChunkConfig) -> tuple[float | None, list[tuple[int, int]]]:
    """Cut mono ``wav`` ``(samples,)`` per ``cfg``; returns (tempo BPM or None, bounds in samples).

    Chunks shorter than :func:`min_song_seconds` that merging could not grow are dropped, so a
    renderer never gets one (an empty list for a song shorter than that).
    """
    tempo: float | None = None
    if cfg.method == "fixed":
        bounds = chunk_fixed(len(wav), sample_rate, cfg.seconds)
    elif cfg.method == "silence":
        bounds = chunk_silence(wav, sample_rate, cfg.silence_db, cfg.min_silence_ms, cfg.keep_silence_ms)
    else:
        per = cfg.beats * (cfg.beats_per_bar if cfg.beats_per_bar > 0 else 1)
        tempo, bounds = chunk_beats(wav, sample_rate, per, cfg.lead_ms)
    shortest = int(np.ceil(min_song_seconds(cfg) * sample_rate))
    merged = merge_short(bounds, int(cfg.min_chunk_s * sample_rate))
    return tempo, [(s, e) for s, e in merged if e - s >= shortest]


def estimate_tempo(wav: np.ndarray, sample_rate: int) -> float:
    """Global tempo estimate (BPM) from the onset envelope; cheap (no beat tracking)."""
    import librosa

    env = librosa.onset.onset_strength(y=wav, sr=sample_rate, hop_length=512)
    return float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=sample_rate, hop_length=512))[0])
