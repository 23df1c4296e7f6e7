"""Seam gates: is a join in a stream any worse than a position inside a song?

Per position ``p`` (samples) of a mono signal:
* level jump (dB): |RMS of the 50 ms before p - RMS of the 50 ms after p|; gate <= 4 dB.
* spectral cosine: cosine of the Hann-windowed magnitude spectra of those two windows; gate >= 0.75.
* click ratio: the largest sample-to-sample step in the 2 ms block centred on p, over the median of
  the same "largest step" of every 2 ms block within +-50 ms; gate <= 3 (comparing a maximum to
  maxima keeps noise-like music from counting as clicks).

:class:`SeamVerifier` measures them on a candidate join before the search commits to it;
:func:`reference_positions` measures them inside songs, the reference a stream's joins are judged by.
"""

from __future__ import annotations

import numpy as np

from ..core.levels import db_to_gain
from .config import RenderConfig
from .joins import chunk_gain_db, crossfade, read_span, reference_lufs

LEVEL_GATE_DB = 4.0
COSINE_GATE = 0.75
CLICK_GATE = 3.0


def seam_metrics(
    wav: np.ndarray, positions: np.ndarray, sample_rate: int, window_ms: float = 50.0, block_ms: float = 2.0
) -> dict[str, np.ndarray]:
    """Level jump (dB), spectral cosine and click ratio at each position: arrays ``(n,)``.

    Positions closer than ``window_ms`` to either end are dropped (``positions`` in the result says
    which were kept).
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
    return {"positions": pos, "level_jump_db": level, "spectral_cosine": cos, "click_ratio": click, "pass": passed}


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
    }


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
        rand.append(seam_metrics(wav, rng.integers(margin, len(wav) - margin, size=k), rate))
        rows = np.flatnonzero((table.song_id == s) & (succ >= 0))
        nat.append(seam_metrics(wav, starts[succ[rows]], rate))
    cat = lambda ms: {key: np.concatenate([m[key] for m in ms]) for key in ms[0]}  # noqa: E731
    return {"random_in_song": summarise(cat(rand)), "natural_boundaries": summarise(cat(nat))}


class SeamVerifier:
    """Checks candidate joins on real audio before search commits to one.

    For chunk A and candidate B it reads the few hundred ms around the cut, aligns and crossfades
    them exactly as the renderer will (the same :mod:`soundloom.streams.joins` functions: gains, lag
    and curves), and measures the seam gates at the crossfade centre. Cost per candidate is two
    short file reads and two FFTs (about a millisecond), independent of the pool size.
    """

    def __init__(self, catalog, cfg: RenderConfig):
        self.table, self.songs = catalog.chunks(), catalog.song_map()
        self.rate = catalog.sample_rate
        self.cfg = cfg
        self.half = int(cfg.crossfade_ms * self.rate / 2000)
        self.lag = int(cfg.align_ms * self.rate / 1000)
        self.win = int(0.05 * self.rate) + int(0.002 * self.rate) + 2
        self.ref = reference_lufs(self.table.loudness_lufs)
        self._a: tuple[int, np.ndarray] | None = None

    def _span(self, row: int, centre_file: int, before: int, after: int) -> np.ndarray:
        song = self.songs[int(self.table.song_id[row])]
        k = song.sample_rate / self.rate
        gain = db_to_gain(chunk_gain_db(float(self.table.loudness_lufs[row]), self.ref, self.cfg))
        return read_span(song, centre_file - int(before * k), centre_file + int(after * k), self.rate) * gain

    def passes(self, a: int, b: int) -> bool:
        """True when the rendered join of chunk rows ``a`` -> ``b`` passes all three seam gates."""
        h, lag, w = self.half, self.lag, self.win
        ext = max(h, w)
        if self._a is None or self._a[0] != a:
            self._a = (a, self._span(a, int(self.table.end[a]), ext, h))
        a_audio = self._a[1]  # A from end - ext to end + h
        b_audio = self._span(b, int(self.table.start[b]), h + lag, ext + lag)  # B from start - h - lag
        mixed, b_after, _ = crossfade(a_audio[ext - h :], b_audio, lag)
        sig = np.concatenate([a_audio[: ext - h], mixed, b_after[: ext - h]])
        m = seam_metrics(sig, np.array([ext]), self.rate)
        return bool(len(m["pass"]) and m["pass"][0])
