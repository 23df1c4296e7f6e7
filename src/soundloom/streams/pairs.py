"""Training and test pairs for transition models, split by song (never by chunk).

A pair is "the tail ending at sample ``a_end`` of song ``a_song``" followed by "the head starting
at ``b_start`` of song ``b_song``" (pool-rate samples), with a label and a kind:

    next        B followed A in the song (label 1)
    other_song  a random chunk of another song                  (label 0)
    same_song   a random chunk of the same song, not the next   (label 0)
    reversed    the next chunk's tail, then A's head (B -> A)   (label 0)
    shifted     the true next chunk with its cut point moved     (label 0)
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from .catalog import ChunkCatalog, ChunkTable, Song, load_song
from .edges import edge_windows

KINDS = ("next", "other_song", "same_song", "reversed", "shifted")


def split_songs(songs: list[Song], val: float = 0.15, test: float = 0.15, seed: int = 0) -> dict[str, list[int]]:
    """Assign song ids to "train" / "val" / "test" by a seeded hash of their content.

    Deterministic for a given seed and set of songs; with 3 or more songs, val and test get at
    least one song each, and test gets two from 6 songs on (so other-song negatives exist).
    """
    keyed = sorted(songs, key=lambda s: hashlib.sha1(f"{seed}:{s.content_hash}".encode()).hexdigest())
    n = len(keyed)
    n_test = max(1 if n < 6 else 2, int(round(n * test))) if n >= 3 and test > 0 else 0
    n_val = max(1, int(round(n * val))) if n >= 3 and val > 0 else 0
    ids = [s.id for s in keyed]
    return {
        "test": sorted(ids[:n_test]),
        "val": sorted(ids[n_test : n_test + n_val]),
        "train": sorted(ids[n_test + n_val :]),
    }


@dataclass
class Pairs:
    """Parallel arrays ``(n,)``: songs and cut samples (pool rate), labels (0/1) and kind indices into KINDS."""

    a_song: np.ndarray
    a_end: np.ndarray
    b_song: np.ndarray
    b_start: np.ndarray
    label: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def select(self, mask: np.ndarray) -> Pairs:
        return Pairs(*(v[mask] for v in self.__dict__.values()))


def pool_offsets(table: ChunkTable, songs: dict[int, Song], sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk starts and ends converted from each file's own rate to ``sample_rate``: ``(n,), (n,)``."""
    ratio = np.array([sample_rate / songs[int(s)].sample_rate for s in table.song_id], dtype=np.float64)
    return (table.start * ratio).astype(np.int64), (table.end * ratio).astype(np.int64)


def make_pairs(
    table: ChunkTable,
    songs: dict[int, Song],
    song_ids: list[int],
    sample_rate: int,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    shift_s: tuple[float, float] = (0.15, 1.0),
) -> Pairs:
    """One pair of each kind in ``kinds`` per consecutive chunk pair of the songs ``song_ids``.

    Negatives never leave the given songs (so test pairs use only test songs).
    """
    rng = np.random.default_rng(seed)
    starts, ends = pool_offsets(table, songs, sample_rate)
    in_split = np.isin(table.song_id, np.asarray(song_ids))
    succ = table.successor()
    rows = np.flatnonzero(in_split & (succ >= 0))
    pool_rows = np.flatnonzero(in_split)
    by_song = {int(s): np.flatnonzero(table.song_id == s) for s in song_ids}
    out: list[tuple[int, int, int, int, int, int]] = []
    for i in rows:
        s, j = int(table.song_id[i]), int(succ[i])
        if "next" in kinds:
            out.append((s, ends[i], s, starts[j], 1, 0))
        if "other_song" in kinds and len(by_song) > 1:
            k = int(rng.choice(pool_rows))
            while table.song_id[k] == s:  # rejection sampling: O(1) per pair in a pool of many songs
                k = int(rng.choice(pool_rows))
            out.append((s, ends[i], int(table.song_id[k]), starts[k], 0, 1))
        if "same_song" in kinds:
            same = by_song[s][(by_song[s] != i) & (by_song[s] != j)]
            if len(same):
                k = int(rng.choice(same))
                out.append((s, ends[i], s, starts[k], 0, 2))
        if "reversed" in kinds:
            out.append((s, ends[j], s, starts[i], 0, 3))
        if "shifted" in kinds:
            delta = int(rng.uniform(*shift_s) * sample_rate) * int(rng.choice([-1, 1]))
            b = int(np.clip(starts[j] + delta, 0, max(0, ends[j] - 1)))
            out.append((s, ends[i], s, b, 0, 4))
    arr = np.array(out, dtype=np.int64).reshape(-1, 6)
    return Pairs(*(arr[:, k] for k in range(6)))


class SongAudio:
    """Songs loaded once at the pool rate, mono ``(samples,)``, keyed by song id."""

    def __init__(self, songs: dict[int, Song], sample_rate: int):
        self.songs, self.sample_rate = songs, sample_rate
        self._cache: dict[int, np.ndarray] = {}

    def __getitem__(self, song_id: int) -> np.ndarray:
        song_id = int(song_id)
        if song_id not in self._cache:
            self._cache[song_id] = load_song(self.songs[song_id], self.sample_rate)
        return self._cache[song_id]


def pair_windows(audio: SongAudio, pairs: Pairs, tail_samples: int, head_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Tail windows ``(n, tail_samples)`` and head windows ``(n, head_samples)`` of every pair."""
    tails = np.zeros((len(pairs), tail_samples), np.float32)
    heads = np.zeros((len(pairs), head_samples), np.float32)
    for s in np.unique(np.concatenate([pairs.a_song, pairs.b_song])):
        wav = audio[int(s)]
        ia = np.flatnonzero(pairs.a_song == s)
        if len(ia):
            tails[ia] = edge_windows(wav, pairs.a_end[ia], pairs.a_end[ia], tail_samples)[0]
        ib = np.flatnonzero(pairs.b_song == s)
        if len(ib):
            heads[ib] = edge_windows(wav, pairs.b_start[ib], pairs.b_start[ib], head_samples)[1]
    return tails, heads


def chunk_windows(audio: SongAudio, table: ChunkTable, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Tail and head windows ``(len(rows), width)`` of the chunks at positions ``rows``."""
    starts, ends = pool_offsets(table, audio.songs, audio.sample_rate)
    tails = np.zeros((len(rows), width), np.float32)
    heads = np.zeros((len(rows), width), np.float32)
    rows = np.asarray(rows)
    for s in np.unique(table.song_id[rows]):
        sel = np.flatnonzero(table.song_id[rows] == s)
        r = rows[sel]
        tails[sel], heads[sel] = edge_windows(audio[int(s)], starts[r], ends[r], width)
    return tails, heads


def song_packages(songs: list[Song]) -> dict[int, str]:
    """Package of each song from an ``index.csv`` (columns ``file``, ``package``) beside it or in a
    folder above it, matched by file name; songs not listed are left out."""
    tables: dict[Path, dict[str, str]] = {}
    out: dict[int, str] = {}
    for s in songs:
        for folder in Path(s.path).parents:
            index = folder / "index.csv"
            if folder not in tables:
                tables[folder] = _read_packages(index) if index.is_file() else {}
            if Path(s.path).name in tables[folder]:
                out[s.id] = tables[folder][Path(s.path).name]
                break
    return out


def _read_packages(index: Path) -> dict[str, str]:
    with open(index, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0] or "package" not in rows[0]:
        return {}
    return {Path(r["file"]).name: r["package"] for r in rows}


def package_split(songs: list[Song], holdout: str, val: float = 0.15, seed: int = 0) -> dict[str, list[int]]:
    """Leave one package out: the songs of package ``holdout`` (or of the one package whose name starts
    with it, e.g. "wesnoth" for "wesnoth-1.16-music") are the test songs, the others train and val.

    Raises:
        DataError: no ``index.csv`` with a package column, or ``holdout`` names no single package.
    """
    packages = song_packages(songs)
    if not packages:
        raise DataError(Path(songs[0].path).parent if songs else ".", "no index.csv with file and package columns")
    names = sorted(set(packages.values()))
    match = [p for p in names if p == holdout] or [p for p in names if p.startswith(holdout)]
    if len(match) != 1:
        raise DataError(
            Path(songs[0].path).parent, f"--holdout-package {holdout!r} matches {len(match)} of {', '.join(names)}"
        )
    test = sorted(s.id for s in songs if packages.get(s.id) == match[0])
    rest = [s for s in songs if s.id in packages and packages[s.id] != match[0]]
    inner = split_songs(rest, val=val, test=0.0, seed=seed)
    return {"test": test, "val": inner["val"], "train": inner["train"], "package": match[0]}


def open_split(
    catalog: ChunkCatalog, seed: int = 0, val: float = 0.15, test: float = 0.15, holdout: str | None = None
) -> dict[str, list[int]]:
    """The pool's song split for ``seed`` (see :func:`split_songs`), or leave-package-``holdout``-out
    (see :func:`package_split`)."""
    if holdout:
        return package_split(catalog.songs(), holdout, val=val, seed=seed)
    return split_songs(catalog.songs(), val=val, test=test, seed=seed)
