"""Seam gates: is a join in a stream any worse than a position inside a song?

Per position ``p`` (samples) of a mono signal:
* level jump (dB): |RMS of the 50 ms before p - RMS of the 50 ms after p|; gate <= 4 dB.
* spectral cosine: cosine of the Hann-windowed magnitude spectra of those two windows; gate >= 0.75.
* click ratio: the largest sample-to-sample step in the 2 ms block centred on p, over the median of
  the same "largest step" of every 2 ms block within +-50 ms; gate <= 3 (comparing a maximum to
  maxima keeps noise-like music from counting as clicks).
* onset anomaly: the strongest onset (positive spectral flux of the log-mel spectrum, as librosa's
  onset strength, 5.8 ms hop at 22050 Hz) within +-50 ms of p, as a robust z-score against the onset
  strength of the surrounding second (median, 1.4826 x MAD): how much p sounds like a new note or
  hit. Not one of the three gates of ``pass`` (music has onsets); a join's anomaly is judged
  against those of the two songs at the same places (:data:`ONSET_GATE`, see :class:`SeamVerifier`).
* seam distance (dB, with ``distance=True``): how far the sound moves across p, in a fixed log-mel space
  (see :func:`seam_distance_db`). Not a gate: a continuous figure that can tell two streams apart when
  both pass every gate.

:class:`SeamVerifier` measures them on a candidate join before the search commits to it;
:func:`reference_positions` measures them inside songs, the reference a stream's joins are judged by.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import numpy as np

from ..core.levels import db_to_gain
from .config import RenderConfig
from .joins import chunk_gain_db, join_audio, read_within_song, reference_lufs
from .onsets import onset_envelope

LEVEL_GATE_DB = 4.0
COSINE_GATE = 0.75
CLICK_GATE = 3.0
#: Search gate: a join's onset anomaly may exceed the larger of its two songs' own at the cut by this much.
ONSET_GATE = 1.0
#: Context (s) each side of a position for the onset anomaly's robust statistics.
ONSET_CONTEXT_S = 0.5
#: Smallest spread of onset strength a z-score divides by: music spreads 0.25-0.6, a steady tone ~0.
ONSET_SCALE_FLOOR = 0.1
#: Chunks whose audio around their start a :class:`SeamVerifier` keeps (about 100 KB each at 22050 Hz).
B_CACHE = 256
#: Random positions per song that calibrate a quiet join (see :meth:`SeamVerifier.onset_reference`).
REFERENCE_PER_SONG = 8


def onset_anomaly(
    wav: np.ndarray,
    positions: np.ndarray,
    sample_rate: int,
    window_ms: float = 50.0,
    context_s: float = ONSET_CONTEXT_S,
    envelope: tuple[np.ndarray, int] | None = None,
) -> np.ndarray:
    """Robust z-score ``(n,)`` of the strongest onset within +-``window_ms`` of each position against
    the onset strength within +-``context_s`` (what the signal holds of it)."""
    env, hop = envelope if envelope is not None else onset_envelope(wav, sample_rate)
    out = np.zeros(len(positions))
    w = max(1, int(round(window_ms * sample_rate / 1000 / hop)))
    c = max(2 * w + 1, int(round(context_s * sample_rate / hop)))
    for i, p in enumerate(np.asarray(positions, dtype=np.int64)):
        k = int(round(p / hop))
        ctx = env[max(0, k - c) : k + c + 1]
        med = np.median(ctx)
        mad = max(1.4826 * np.median(np.abs(ctx - med)), ONSET_SCALE_FLOOR)
        out[i] = (env[max(0, k - w) : k + w + 1].max() - med) / mad
    return out


#: Seam distance: seconds of audio each side of a position, frame size and hop (samples at 22050 Hz), mel bands.
SEAM_DISTANCE_S, _DIST_FFT, _DIST_HOP, _DIST_MELS = 0.25, 1024, 256, 64


@functools.lru_cache(maxsize=8)
def _distance_filters(sample_rate: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    window = np.hanning(n_fft + 1)[:-1]
    return window, librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=_DIST_MELS, fmin=30.0).T


def seam_distance_db(
    wav: np.ndarray, positions: np.ndarray, sample_rate: int, side_s: float = SEAM_DISTANCE_S
) -> np.ndarray:
    """Seam distance ``(n,)`` (dB): the RMS over 64 mel bands of the difference between the mean log-mel
    power spectrum of the ``side_s`` seconds before each position and that of the ``side_s`` after it
    (frames of 1024 samples, hop 256, at 22050 Hz, none straddling the position; band levels floored 80 dB
    under the loudest band of the two). NaN where a side does not fit in ``wav``.

    Why this figure: past a click or a new event (the gates and the onset anomaly), what a listener hears
    at a join is the sound changing where the music had no reason to change: timbre, register, chord and
    level together. Mel bands and dB are the ear's frequency and loudness scales, and a quarter second each
    side is about what a listener takes in as "the sound right now", long enough to hold a chord and to
    reach past the 120 ms crossfade into each song alone, short enough to stay at the join. The space is
    fixed (no pool statistics, nothing learned) and no scorer produces it; ``features`` does minimise a
    relative of it (MFCC of 40 bands over 0.3 s of the chunks' own edges, before the crossfade), so if the
    figure favours a model it is that baseline. Read it next to random positions inside the songs, where
    music moves on its own.
    """
    from scipy.fft import rfft

    wav = np.asarray(wav, dtype=np.float32)
    scale = max(1, int(round(sample_rate / 22050)))
    n_fft, hop = _DIST_FFT * scale, _DIST_HOP * scale
    side = max(n_fft, int(round(side_s * sample_rate)))
    window, mel = _distance_filters(sample_rate, n_fft)
    # frame starts relative to the position: the side before (ending at it), then the side after
    offsets = np.concatenate([np.arange(-side, -n_fft + 1, hop), np.arange(0, side - n_fft + 1, hop)])
    n_before = len(offsets) // 2
    pos = np.asarray(positions, dtype=np.int64)
    out = np.full(len(pos), np.nan)
    ok = np.flatnonzero((pos >= side) & (pos + side <= len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)
    for i in range(0, len(ok), 64):  # a batch of positions at a time: ~10 MB of frames
        rows = ok[i : i + 64]
        x = frames[pos[rows, None] + offsets[None, :]] * window.astype(np.float32)
        power = np.abs(rfft(x, axis=-1, workers=1)) ** 2  # (b, frames, bins)
        bands = np.stack([power[:, :n_before].mean(1), power[:, n_before:].mean(1)], 1) @ mel  # (b, 2, mels)
        db = 10 * np.log10(np.maximum(bands, 1e-12))
        db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0)
        out[rows] = np.sqrt(np.mean((db[:, 0] - db[:, 1]) ** 2, axis=1))
    return out


def seam_metrics(
    wav: np.ndarray,
    positions: np.ndarray,
    sample_rate: int,
    window_ms: float = 50.0,
    block_ms: float = 2.0,
    onsets: bool = True,
    distance: bool = False,
) -> dict[str, np.ndarray]:
    """Level jump (dB), spectral cosine, click ratio, onset anomaly (z) and the three gates (``pass``)
    at each position: arrays ``(n,)``; with ``distance``, the seam distance (dB, :func:`seam_distance_db`).

    Positions closer than ``window_ms`` to either end are dropped (``positions`` in the result says
    which were kept). ``onsets=False`` skips the onset anomaly (NaN).
    """
    wav = np.asarray(wav, dtype=np.float64)
    w = int(window_ms * sample_rate / 1000)
    b = max(2, int(block_ms * sample_rate / 1000))
    pos = np.asarray(positions, dtype=np.int64)
    pos = pos[(pos >= w + b) & (pos <= len(wav) - w - b)]
    idx = np.arange(w)
    before = wav[pos[:, None] - w + idx[None, :]]
    after = wav[pos[:, None] + idx[None, :]]
    rms = lambda x: 10 * np.log10(np.mean(x**2, axis=1) + 1e-10)  # noqa: E731
    level = np.abs(rms(before) - rms(after))
    han = np.hanning(w)
    sb = np.abs(np.fft.rfft(before * han, axis=1))
    sa = np.abs(np.fft.rfft(after * han, axis=1))
    cos = (sb * sa).sum(1) / (np.linalg.norm(sb, axis=1) * np.linalg.norm(sa, axis=1) + 1e-12)
    n_blocks = (2 * w) // b
    start = pos - (n_blocks // 2) * b - b // 2
    steps = np.abs(np.diff(wav[start[:, None] + np.arange(n_blocks * b + 1)[None, :]], axis=1))
    block_max = steps[:, : n_blocks * b].reshape(len(pos), n_blocks, b).max(axis=2)
    centre = block_max[:, n_blocks // 2]
    click = centre / (np.median(block_max, axis=1) + 1e-9)
    passed = (level <= LEVEL_GATE_DB) & (cos >= COSINE_GATE) & (click <= CLICK_GATE)
    onset = onset_anomaly(wav, pos, sample_rate, window_ms) if onsets else np.full(len(pos), np.nan)
    out = {
        "positions": pos,
        "level_jump_db": level,
        "spectral_cosine": cos,
        "click_ratio": click,
        "onset_anomaly": onset,
        "pass": passed,
    }
    if distance:
        out["seam_distance_db"] = seam_distance_db(wav, pos, sample_rate)
    return out


def median_interval(values: np.ndarray, seed: int = 0, n_boot: int = 1000) -> tuple[float, float, float]:
    """Median of the finite ``values`` and its 95% bootstrap interval (NaN for none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan"), float("nan")
    boot = np.median(v[np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))], axis=1)
    return float(np.median(v)), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def summarise(m: dict[str, np.ndarray]) -> dict:
    """Pass rates per gate and overall, and medians, of :func:`seam_metrics` output."""
    n = len(m["positions"])
    if n == 0:
        return {"n": 0}
    return {
        "n": int(n),
        "pass_all": float(np.mean(m["pass"])),
        "pass_level": float(np.mean(m["level_jump_db"] <= LEVEL_GATE_DB)),
        "pass_cosine": float(np.mean(m["spectral_cosine"] >= COSINE_GATE)),
        "pass_click": float(np.mean(m["click_ratio"] <= CLICK_GATE)),
        "median_level_jump_db": float(np.median(m["level_jump_db"])),
        "median_spectral_cosine": float(np.median(m["spectral_cosine"])),
        "median_click_ratio": float(np.median(m["click_ratio"])),
        "click_rate": float(np.mean(m["click_ratio"] > CLICK_GATE)),
        "median_onset_anomaly": float(np.nanmedian(m["onset_anomaly"])) if "onset_anomaly" in m else float("nan"),
        **_distance_summary(m),
    }


def _distance_summary(m: dict[str, np.ndarray]) -> dict:
    """Median seam distance with its 95% bootstrap interval, when measured."""
    if "seam_distance_db" not in m or not np.isfinite(m["seam_distance_db"]).any():
        return {}
    med, lo, hi = median_interval(m["seam_distance_db"])
    return {"median_seam_distance_db": med, "seam_distance_db_95": [lo, hi]}


def reference_positions(catalog, song_ids: list[int], n: int, seed: int = 0) -> dict[str, dict]:
    """Seam figures at ``n`` random positions inside the songs and at their natural chunk boundaries."""
    from .pairs import SongAudio, pool_offsets

    rng = np.random.default_rng(seed)
    songs = catalog.song_map()
    rate = catalog.sample_rate
    audio = SongAudio(songs, rate)
    table = catalog.chunks()
    starts, _ = pool_offsets(table, songs, rate)
    succ = table.successor()
    lengths = np.array([int(songs[s].duration_s * rate) for s in song_ids], dtype=np.float64)
    per_song = rng.multinomial(n, lengths / lengths.sum())
    rand, nat = [], []
    for s, k in zip(song_ids, per_song):
        wav = audio[s]
        margin = int(0.2 * rate)
        rand.append(seam_metrics(wav, rng.integers(margin, len(wav) - margin, size=k), rate, distance=True))
        rows = np.flatnonzero((table.song_id == s) & (succ >= 0))
        nat.append(seam_metrics(wav, starts[succ[rows]], rate, distance=True))
    cat = lambda ms: {key: np.concatenate([m[key] for m in ms]) for key in ms[0]}  # noqa: E731
    return {"random_in_song": summarise(cat(rand)), "natural_boundaries": summarise(cat(nat))}


class SeamVerifier:
    """Checks candidate joins on real audio before search commits to one.

    For chunk A and candidate B it reads the second around the cut, joins them exactly as the
    renderer will (the same :mod:`soundloom.streams.joins` functions: gains, crossfade placement, lag
    and curves) and measures the seam figures at the cut. A join passes when it passes the three
    gates and its onset anomaly exceeds the larger of A's own (A's song going on past A's end) and
    B's own (B's song arriving at B's start) by at most ``onset_gate``: a join may land on a beat
    where either song has one, but should not make an event where neither had one. Cost per
    candidate: two short file reads and three onset envelopes of a second (a few milliseconds),
    independent of the pool size; each chunk's own onset anomalies (at its start and past its end) are
    measured once and kept, and B's audio around its start is kept for the last :data:`B_CACHE` chunks.

    What a quiet join is, is calibrated on the pool itself (:meth:`onset_reference`): the median onset
    anomaly at :data:`REFERENCE_PER_SONG` random positions inside each song the verifier has met, the
    reference a stream's joins are judged by (:func:`reference_positions`). Not the chunk boundaries: a
    fixed-length grid from a song's start falls on its beats (3 s is 6 beats at 120 BPM), where the onset
    anomaly of warzone2100's songs has a median of 12.7 against 5.2 at random positions.
    """

    def __init__(self, catalog, cfg: RenderConfig, onset_gate: float = ONSET_GATE, distance: bool = False):
        self.distance = distance  # also measure the seam distance (an evaluation's, not the search's)
        self.table, self.songs = catalog.chunks(), catalog.song_map()
        self.rate = catalog.sample_rate
        self.cfg = cfg
        self.onset_gate = onset_gate
        self.half = int(cfg.crossfade_ms * self.rate / 2000)
        self.lag = int(cfg.align_ms * self.rate / 1000)
        self.slide = int(cfg.slide_ms * self.rate / 1000)
        # a second around the cut plus room for the crossfade and the onset frames' own width
        self.ctx = int((ONSET_CONTEXT_S + 0.05) * self.rate) + 2 * self.half + self.lag + self.slide
        self.ref = reference_lufs(self.table.loudness_lufs)
        self._a: tuple[int, tuple[np.ndarray, int, float]] | None = None
        self._own: dict[tuple[int, str], float] = {}  # (row, "a" past its end | "b" at its start) -> anomaly
        self._b: OrderedDict[int, tuple[np.ndarray, int]] = OrderedDict()  # row -> B's audio, index of its start
        self._song_ref: dict[int, np.ndarray] = {}  # song id -> onset anomalies at random positions in it
        self._met: set[int] = set()  # songs this verifier has met (its reference is theirs)

    def __copy__(self) -> SeamVerifier:
        """A verifier sharing the pool's read-only parts and the measurements that depend on the pool
        alone (each chunk's own onset anomalies, each song's random positions: seeded, so the same for
        every copy), with the rest its own (one per thread or listener): the last A and B sides and the
        songs it has met, so its onset reference is the same as a fresh verifier's on the same path."""
        other = object.__new__(SeamVerifier)
        other.__dict__.update(self.__dict__)
        other._a, other._b, other._met = None, OrderedDict(), set()
        return other

    def _read(self, row: int, at: int, before: int, after: int) -> tuple[np.ndarray, int]:
        """Audio of chunk ``row``'s song around file sample ``at``, gain applied; index of ``at`` in it."""
        song = self.songs[int(self.table.song_id[row])]
        gain = db_to_gain(chunk_gain_db(float(self.table.loudness_lufs[row]), self.ref, self.cfg))
        wav, pre, _ = read_within_song(song, at, at, before, after, self.rate)
        return wav * gain, pre

    def _own_anomaly(self, row: int, side: str, wav: np.ndarray, at: int) -> float:
        key = (int(row), side)
        if key not in self._own:
            self._own[key] = float(onset_anomaly(wav, np.array([at]), self.rate)[0])
        return self._own[key]

    def _meet_song(self, row: int) -> None:
        """Measure the onset anomaly at :data:`REFERENCE_PER_SONG` random positions (seeded by the song)
        inside chunk ``row``'s song, the first time the verifier meets that song."""
        song_id = int(self.table.song_id[row])
        if song_id in self._met:
            return
        if song_id not in self._song_ref:  # else measured by another copy: the same seeded positions
            self._song_ref[song_id] = self._song_positions(row, song_id)
        self._met.add(song_id)

    def _song_positions(self, row: int, song_id: int) -> np.ndarray:
        song = self.songs[song_id]
        total = int(round(song.duration_s * song.sample_rate))
        margin = int(ONSET_CONTEXT_S * song.sample_rate)
        rng = np.random.default_rng(song_id)
        values = []
        if total > 2 * margin:
            for at in rng.integers(margin, total - margin, size=REFERENCE_PER_SONG):
                wav, pre = self._read(row, int(at), self.ctx, self.ctx)
                values.append(float(onset_anomaly(wav, np.array([pre]), self.rate)[0]))
        return np.asarray(values)

    def onset_reference(self, min_songs: int = 2) -> float | None:
        """Median onset anomaly at random positions inside the songs met so far (what a position inside
        these songs scores), or None before ``min_songs`` songs are met."""
        if len(self._met) < min_songs:
            return None
        values = np.concatenate([self._song_ref[i] for i in sorted(self._met)])
        return float(np.median(values)) if len(values) else None

    def _b_side(self, b: int) -> tuple[np.ndarray, int]:
        got = self._b.get(b)
        if got is None:
            got = self._read(b, int(self.table.start[b]), self.ctx, self.ctx)
            self._b[b] = got
            if len(self._b) > B_CACHE:
                self._b.popitem(last=False)
        else:
            self._b.move_to_end(b)
        return got

    def measure(self, a: int, b: int) -> dict[str, float]:
        """Seam figures of the rendered join of chunk rows ``a`` -> ``b``, the two songs' own onset
        anomalies at the cut (``onset_a``, ``onset_b``) and ``pass`` (bool)."""
        h, lag = self.half, self.lag
        if self._a is None or self._a[0] != a:
            a_wav, a_end = self._read(a, int(self.table.end[a]), self.ctx, self.ctx)
            self._a = (a, (a_wav, a_end, self._own_anomaly(a, "a", a_wav, a_end)))
            self._meet_song(a)
        a_wav, a_end, onset_a = self._a[1]
        self._meet_song(b)
        b_wav, b_start = self._b_side(b)
        onset_b = self._own_anomaly(b, "b", b_wav, b_start)
        joined, cut, _, _ = join_audio(a_wav, a_end, b_wav, b_start, h, lag, self.slide, self.rate)
        m = seam_metrics(joined, np.array([cut]), self.rate, distance=self.distance)
        if not len(m["positions"]):  # a song shorter than the seam windows: nothing to judge by
            return {"pass": False, "onset_a": onset_a, "onset_b": onset_b}
        out = {k: float(v[0]) for k, v in m.items() if k not in ("positions", "pass")}
        created = out["onset_anomaly"] - max(onset_a, onset_b)
        out.update(onset_a=onset_a, onset_b=onset_b, pass_gates=bool(m["pass"][0]))
        out["pass"] = bool(m["pass"][0]) and created <= self.onset_gate
        return out

    def passes(self, a: int, b: int) -> bool:
        """True when the rendered join of chunk rows ``a`` -> ``b`` passes the seam gates and the onset gate."""
        return bool(self.measure(a, b)["pass"])
