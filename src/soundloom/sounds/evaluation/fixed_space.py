"""A feature space for judging sounds that no model under test has shaped.

Per clip: MFCC (mean and std of the coefficients, their deltas and delta-deltas), log-mel power
averaged over a few time segments, and the log duration, all measured after trimming leading
and trailing silence. Everything is computed with librosa / NumPy at one fixed analysis rate, so
clips of any rate map into the same space, and nothing is learned except the per-dimension mean
and std of the *real* clips given to :meth:`FixedFeatureSpace.fit`.

    space = FixedFeatureSpace().fit(real_clips, sample_rate=8000)
    emb_real = space.transform(real_clips, 8000)        # (N, space.dim), standardised
    emb_gen = space.transform(generated_clips, 16000)   # same space, whatever the rate
    json.dumps(space.to_dict())                         # which space a report used
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from ...core.convert import resample
from ...core.errors import AudioError, ParameterError
from ...core.io import validate_audio

SPACE_VERSION = "fixed-space/1"
Clips = Sequence[np.ndarray] | np.ndarray


@dataclass
class FixedFeatureSpace:
    """Hand-made per-clip features, standardised with statistics of real clips only.

    Attributes:
        analysis_rate: Hz every clip is resampled to (soxr) before analysis.
        n_fft, hop_length: STFT size and hop in samples at ``analysis_rate``.
        n_mfcc: MFCC coefficients (from ``mfcc_mels`` mel bands).
        n_mels: mel bands of the segment-averaged log-mel block.
        n_segments: time segments of the trimmed clip the log-mel block is averaged over.
        trim_db: leading / trailing frames quieter than peak minus this (dB) are trimmed.
        fmax_hz: top of every mel filterbank. None: :meth:`fit` sets it to the real data's
            Nyquist (capped by the analysis rate's), so a band the real data cannot hold (above
            4 kHz for 8 kHz speech) is not a dimension a generated clip can differ in.
        floor_db: log-mel values are floored here (absolute, full scale = 0 dB).
        std_floor: per-dimension std is floored at this fraction of the median std, so a
            dimension that is constant in the real data (an empty band) cannot explode.
        mean, std: ``(dim,)`` set by :meth:`fit`; None before.
        n_fit: clips the statistics came from.
    """

    analysis_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 128
    n_mfcc: int = 20
    mfcc_mels: int = 64
    n_mels: int = 32
    n_segments: int = 4
    trim_db: float = 40.0
    fmax_hz: float | None = None
    floor_db: float = -100.0
    std_floor: float = 0.1
    batch_size: int = 64
    mean: np.ndarray | None = field(default=None, repr=False)
    std: np.ndarray | None = field(default=None, repr=False)
    n_fit: int = 0

    def __post_init__(self) -> None:
        for name in ("analysis_rate", "n_fft", "hop_length", "n_mfcc", "mfcc_mels", "n_mels", "n_segments"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"FixedFeatureSpace.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_mfcc > self.mfcc_mels:
            raise ParameterError(f"n_mfcc ({self.n_mfcc}) cannot exceed mfcc_mels ({self.mfcc_mels})")

    @property
    def dim(self) -> int:
        """Feature dimensions: 6 MFCC statistics x n_mfcc + n_segments x n_mels + 1."""
        return 6 * self.n_mfcc + self.n_segments * self.n_mels + 1

    @property
    def fitted(self) -> bool:
        return self.mean is not None and self.std is not None

    def feature_names(self) -> list[str]:
        """One name per dimension, in order (``mfcc3_delta_std``, ``mel2_seg1_db``, ``log_duration_s``)."""
        names = [
            f"mfcc{c}_{order}_{stat}"
            for order in ("static", "delta", "delta2")
            for stat in ("mean", "std")
            for c in range(self.n_mfcc)
        ]
        names += [f"mel{m}_seg{s}_db" for s in range(self.n_segments) for m in range(self.n_mels)]
        return names + ["log_duration_s"]

    # -- fitting and transforming -------------------------------------------------------------

    def fit(self, real_clips: Clips, sample_rate: int) -> FixedFeatureSpace:
        """Set the standardisation (and ``fmax_hz`` if None) from real clips, never generated ones; returns self."""
        if self.fmax_hz is None:
            self.fmax_hz = min(sample_rate, self.analysis_rate) / 2
        raw = self.raw_features(real_clips, sample_rate)
        if len(raw) < 2:
            raise ParameterError(f"fit needs at least 2 real clips, got {len(raw)}")
        mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        floor = max(float(np.median(std)) * self.std_floor, 1e-6)
        self.mean, self.std, self.n_fit = mean, np.maximum(std, floor), len(raw)
        return self

    def transform(self, clips: Clips, sample_rate: int) -> np.ndarray:
        """Standardised features ``(N, dim)`` float64; the fitted statistics are not touched."""
        if not self.fitted:
            raise ParameterError("FixedFeatureSpace is not fitted: call fit(real_clips, sample_rate) first")
        return (self.raw_features(clips, sample_rate) - self.mean) / self.std

    def raw_features(self, clips: Clips, sample_rate: int) -> np.ndarray:
        """Unstandardised features ``(N, dim)`` float64 of clips ``(samples,)`` at ``sample_rate`` Hz."""
        if sample_rate < 1:
            raise ParameterError(f"sample_rate must be >= 1 Hz, got {sample_rate}")
        trimmed = [self._prepare(clip, sample_rate, i) for i, clip in enumerate(clips)]
        out = np.empty((len(trimmed), self.dim), dtype=np.float64)
        # Sorted by length and batched, so padding is small and each STFT / matmul runs once per batch.
        order = np.argsort([len(t) for t in trimmed], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._batch_features([trimmed[i] for i in idx])
        return out

    # -- internals ----------------------------------------------------------------------------

    def _prepare(self, clip: np.ndarray, sample_rate: int, index: int) -> np.ndarray:
        """Mono float32 at ``analysis_rate`` with silence trimmed (at least one hop long)."""
        import librosa

        wav = np.asarray(clip, dtype=np.float32)
        if wav.ndim != 1:
            raise AudioError(f"clip {index}", f"expected mono samples (samples,), got shape {wav.shape}")
        validate_audio(wav, sample_rate, path=f"clip {index}", silence_db=None)
        wav = resample(wav, sample_rate, self.analysis_rate)
        if np.any(wav):
            wav, _ = librosa.effects.trim(wav, top_db=self.trim_db, frame_length=self.n_fft, hop_length=self.hop_length)
        if len(wav) < self.hop_length:
            wav = np.pad(wav, (0, self.hop_length - len(wav)))
        return wav

    def _batch_features(self, wavs: list[np.ndarray]) -> np.ndarray:
        import librosa

        lengths = np.array([len(w) for w in wavs])
        batch = np.zeros((len(wavs), lengths.max()), dtype=np.float32)
        for i, w in enumerate(wavs):
            batch[i, : len(w)] = w
        # A centred STFT with zero padding sees a clip's own frames identically inside a zero-padded batch.
        spec = librosa.stft(batch, n_fft=self.n_fft, hop_length=self.hop_length, center=True, pad_mode="constant")
        power = np.abs(spec) ** 2  # (B, bins, T) float32
        n_frames = 1 + lengths // self.hop_length
        t_max = power.shape[-1]
        frame = np.arange(t_max)[None, :]
        valid = (frame < n_frames[:, None]).astype(np.float32)  # (B, T)

        amin = 10 ** (self.floor_db / 10)
        mel_mfcc = _apply_basis(_mel_basis(self.analysis_rate, self.n_fft, self.mfcc_mels, self.fmax_hz), power)
        mfcc = librosa.feature.mfcc(S=10 * np.log10(np.maximum(mel_mfcc, amin)), n_mfcc=self.n_mfcc)
        # Frames past a clip's end repeat its last frame: deltas then equal per-clip "nearest" edges.
        edge = np.minimum(frame, n_frames[:, None] - 1)
        mfcc = np.take_along_axis(mfcc, edge[:, None, :], axis=-1)
        d1 = librosa.feature.delta(mfcc, width=9, order=1, mode="nearest", axis=-1)
        d2 = librosa.feature.delta(mfcc, width=9, order=2, mode="nearest", axis=-1)
        stats = []
        for x in (mfcc, d1, d2):
            mean = _masked_mean(x, valid)
            var = _masked_mean((x - mean[..., None]) ** 2, valid)
            stats += [mean, np.sqrt(var)]

        mel = _apply_basis(
            _mel_basis(self.analysis_rate, self.n_fft, self.n_mels, self.fmax_hz), power
        )  # (B, n_mels, T)
        seg = []
        for s in range(self.n_segments):
            lo = (s * n_frames) // self.n_segments
            hi = np.maximum(((s + 1) * n_frames) // self.n_segments, lo + 1)
            in_seg = ((frame >= lo[:, None]) & (frame < hi[:, None])).astype(np.float32)
            seg.append(10 * np.log10(np.maximum(_masked_mean(mel, in_seg), amin)))
        log_duration = np.log(lengths / self.analysis_rate)[:, None]
        return np.concatenate(stats + seg + [log_duration], axis=1)

    # -- (de)serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready record: every setting, the fitted statistics and a version tag."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("mean", "std")}
        d["version"] = SPACE_VERSION
        d["dim"] = self.dim
        d["mean"] = None if self.mean is None else [float(v) for v in self.mean]
        d["std"] = None if self.std is None else [float(v) for v in self.std]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FixedFeatureSpace:
        """Inverse of :meth:`to_dict`; refuses another version or statistics of the wrong size."""
        if d.get("version") != SPACE_VERSION:
            raise ParameterError(f"feature space version {d.get('version')!r} is not {SPACE_VERSION!r}")
        names = {f.name for f in fields(cls)} - {"mean", "std"}
        space = cls(**{k: v for k, v in d.items() if k in names})
        for key in ("mean", "std"):
            if d.get(key) is not None:
                arr = np.asarray(d[key], dtype=np.float64)
                if arr.shape != (space.dim,):
                    raise ParameterError(f"feature space {key} has {arr.size} values, expected {space.dim}")
                setattr(space, key, arr)
        return space


def _masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the last axis of ``(B, R, T)`` where ``mask`` ``(B, T)`` is 1 -> ``(B, R)`` float64."""
    sums = np.matmul(x.astype(np.float64), mask.astype(np.float64)[:, :, None])[..., 0]
    return sums / mask.sum(axis=1, dtype=np.float64)[:, None]


def _apply_basis(basis: np.ndarray, power: np.ndarray) -> np.ndarray:
    """``basis (M, F)`` applied to every frame of ``power (B, F, T)`` -> ``(B, M, T)`` (one GEMM)."""
    b, f, t = power.shape
    flat = power.transpose(1, 0, 2).reshape(f, b * t)
    return (basis @ flat).reshape(-1, b, t).transpose(1, 0, 2)


_MEL_CACHE: dict[tuple, np.ndarray] = {}


def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmax_hz: float | None) -> np.ndarray:
    import librosa

    key = (sample_rate, n_fft, n_mels, fmax_hz)
    if key not in _MEL_CACHE:
        basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmax=fmax_hz)
        _MEL_CACHE[key] = basis.astype(np.float32)
    return _MEL_CACHE[key]
