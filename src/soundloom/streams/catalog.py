"""The pool: a SQLite catalog of songs and their chunks (offsets into the source files, never copies).

A pool is a folder::

    POOL/catalog.sqlite      songs (path, content hash, duration, rate, tempo, loudness) and chunks
                             (song, index, start and end sample, summary features)
    POOL/embeddings/         cached tail/head embeddings per transition model (see stream.index)

Adding a folder twice adds only the songs whose content hash is new.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.convert import resample
from ..core.errors import DataError, PoolError
from ..core.io import AudioError, is_audio_file, load_audio
from ..core.progress import ProgressCallback, null_progress
from . import edges
from .chunking import ChunkConfig, chunk_song, estimate_tempo

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS songs (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, content_hash TEXT NOT NULL UNIQUE,
    duration_s REAL NOT NULL, sample_rate INTEGER NOT NULL, tempo_bpm REAL, loudness_lufs REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, song_id INTEGER NOT NULL REFERENCES songs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    rms_db REAL NOT NULL, loudness_lufs REAL NOT NULL, centroid_hz REAL NOT NULL,
    head_rms_db REAL NOT NULL, tail_rms_db REAL NOT NULL, head_spec BLOB NOT NULL, tail_spec BLOB NOT NULL,
    UNIQUE (song_id, idx)
);
"""


@dataclass(frozen=True)
class Song:
    """One catalogued song; ``sample_rate`` is the file's own rate (chunk offsets use it)."""

    id: int
    path: str
    content_hash: str
    duration_s: float
    sample_rate: int
    tempo_bpm: float | None
    loudness_lufs: float


@dataclass
class ChunkTable:
    """All chunks as parallel arrays ``(n,)`` in (song, index) order; row ``i`` is "chunk position i".

    ``head_spec`` / ``tail_spec`` are ``(n, SEAM_BANDS)`` unit-norm spectra of the first / last 50 ms.
    """

    id: np.ndarray
    song_id: np.ndarray
    idx: np.ndarray
    start: np.ndarray
    end: np.ndarray
    rms_db: np.ndarray
    loudness_lufs: np.ndarray
    centroid_hz: np.ndarray
    head_rms_db: np.ndarray
    tail_rms_db: np.ndarray
    head_spec: np.ndarray
    tail_spec: np.ndarray

    def __len__(self) -> int:
        return len(self.id)

    def successor(self) -> np.ndarray:
        """Position of each chunk's natural successor in its song, -1 for a song's last chunk: ``(n,)``."""
        nxt = np.full(len(self), -1, dtype=np.int64)
        same = (self.song_id[1:] == self.song_id[:-1]) & (self.idx[1:] == self.idx[:-1] + 1)
        nxt[:-1][same] = np.arange(1, len(self))[same]
        return nxt

    def subset(self, rows: np.ndarray) -> ChunkTable:
        """The chunks at positions ``rows`` (kept in order)."""
        return ChunkTable(**{k: v[rows] for k, v in self.__dict__.items()})


def content_hash(path: str | Path, block: int = 1 << 20) -> str:
    """SHA-1 of the file's bytes (hex)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while data := f.read(block):
            h.update(data)
    return h.hexdigest()


def find_songs(folder: str | Path) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted); a single file is returned as is."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p))


class ChunkCatalog:
    """SQLite catalog of a pool folder. Use as a context manager or call :meth:`close`."""

    def __init__(self, pool: str | Path, create: bool = True):
        self.pool = Path(pool)
        db = self.pool / "catalog.sqlite"
        if not create and not db.exists():
            raise PoolError(self.pool, "not a pool (no catalog.sqlite); run `soundloom chunk` first")
        self.pool.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(db))
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA)
        self._table: ChunkTable | None = None

    def __enter__(self) -> ChunkCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> object | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        self.db.commit()

    @property
    def chunk_config(self) -> ChunkConfig | None:
        d = self.get_meta("chunk_config")
        return ChunkConfig(**d) if d else None

    @property
    def sample_rate(self) -> int:
        """The pool's analysis rate in Hz (the rate edge windows and streams use)."""
        return int(self.get_meta("sample_rate") or 22050)

    # -- adding ------------------------------------------------------------------------------
    def add_songs(
        self,
        paths: Iterable[str | Path],
        cfg: ChunkConfig,
        sample_rate: int | None = None,
        progress: ProgressCallback = null_progress,
    ) -> list[Song]:
        """Chunk and catalogue every song not already in the pool (by content hash).

        The first call fixes the chunking config and analysis rate; later calls must match.
        Unreadable files raise :class:`AudioError` naming the file.
        """
        old = self.chunk_config
        if old is not None and old.to_dict() != cfg.to_dict():
            raise PoolError(self.pool, f"pool was chunked with {old.to_dict()}; got {cfg.to_dict()}")
        if old is None:
            self.set_meta("chunk_config", cfg.to_dict())
        if self.get_meta("sample_rate") is None:
            self.set_meta("sample_rate", int(sample_rate or 22050))
        rate = self.sample_rate
        paths = [Path(p) for p in paths]
        known = {r[0] for r in self.db.execute("SELECT content_hash FROM songs")}
        added: list[Song] = []
        for i, path in enumerate(paths):
            progress("chunking", i, len(paths))
            digest = content_hash(path)
            if digest in known:
                continue
            added.append(self._add_song(path, digest, cfg, rate))
            known.add(digest)
        progress("chunking", len(paths), len(paths))
        self._table = None
        return added

    def _add_song(self, path: Path, digest: str, cfg: ChunkConfig, rate: int) -> Song:
        wav, native = load_audio(path, mono=True, silence_db=None)
        tempo, bounds = chunk_song(wav, native, cfg)
        if tempo is None:
            tempo = estimate_tempo(wav, native)
        if not bounds:
            raise AudioError(path, "no chunks (all silent below the threshold?)")
        starts = np.array([b[0] for b in bounds], dtype=np.int64)
        ends = np.array([b[1] for b in bounds], dtype=np.int64)
        # Summary features at the pool rate (offsets stay in the file's own samples).
        ana, scale = (wav, 1.0) if native == rate else (resample(wav, native, rate), rate / native)
        s_a, e_a = (starts * scale).astype(np.int64), (ends * scale).astype(np.int64)
        kw = edges.k_weight(ana, rate)
        song_lufs = float(edges.chunk_loudness(kw, np.array([0]), np.array([len(ana)]), rate)[0])
        lufs = edges.chunk_loudness(kw, s_a, e_a, rate)
        rms = np.array(
            [edges.rms_db_rows(ana[None, s:e])[0] if e > s else -100.0 for s, e in zip(s_a, e_a)], np.float32
        )
        seam = int(edges.SEAM_MS * rate / 1000)
        tails, heads = edges.edge_windows(ana, s_a, e_a, seam)
        head_spec, tail_spec = edges.seam_spectra(heads), edges.seam_spectra(tails)
        head_db, tail_db = edges.rms_db_rows(heads), edges.rms_db_rows(tails)
        centroid = edges.spectral_centroid_hz(ana, s_a, e_a, rate)
        cur = self.db.execute(
            "DELETE FROM songs WHERE path = ?", (str(path.resolve()),)
        )  # a changed file at the same path replaces the old entry
        cur = self.db.execute(
            "INSERT INTO songs (path, content_hash, duration_s, sample_rate, tempo_bpm, loudness_lufs)"
            " VALUES (?,?,?,?,?,?)",
            (str(path.resolve()), digest, len(wav) / native, native, tempo, song_lufs),
        )
        song_id = int(cur.lastrowid)
        rows = [
            (
                song_id,
                k,
                int(starts[k]),
                int(ends[k]),
                float(rms[k]),
                float(lufs[k]),
                float(centroid[k]),
                float(head_db[k]),
                float(tail_db[k]),
                head_spec[k].astype(np.float16).tobytes(),
                tail_spec[k].astype(np.float16).tobytes(),
            )
            for k in range(len(bounds))
        ]
        self.db.executemany(
            "INSERT INTO chunks (song_id, idx, start, end, rms_db, loudness_lufs, centroid_hz, head_rms_db,"
            " tail_rms_db, head_spec, tail_spec) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        self.db.commit()
        return Song(song_id, str(path.resolve()), digest, len(wav) / native, native, tempo, song_lufs)

    # -- reading -----------------------------------------------------------------------------
    def songs(self) -> list[Song]:
        rows = self.db.execute(
            "SELECT id, path, content_hash, duration_s, sample_rate, tempo_bpm, loudness_lufs FROM songs ORDER BY id"
        )
        return [Song(*r) for r in rows]

    def song_map(self) -> dict[int, Song]:
        return {s.id: s for s in self.songs()}

    def chunks(self) -> ChunkTable:
        """Every chunk as a :class:`ChunkTable` (cached until songs are added)."""
        if self._table is None:
            rows = self.db.execute(
                "SELECT id, song_id, idx, start, end, rms_db, loudness_lufs, centroid_hz, head_rms_db, tail_rms_db,"
                " head_spec, tail_spec FROM chunks ORDER BY song_id, idx"
            ).fetchall()
            cols = list(zip(*rows)) if rows else [[]] * 12
            ints = [np.asarray(c, dtype=np.int64) for c in cols[:5]]
            floats = [np.asarray(c, dtype=np.float32) for c in cols[5:10]]
            specs = [
                np.frombuffer(b"".join(c), dtype=np.float16).reshape(len(rows), edges.SEAM_BANDS).astype(np.float32)
                if rows
                else np.zeros((0, edges.SEAM_BANDS), np.float32)
                for c in cols[10:12]
            ]
            self._table = ChunkTable(*ints, *floats, *specs)
        return self._table

    def fingerprint(self) -> str:
        """Changes whenever the set of chunks changes (keys embedding caches)."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(start + end), 0) FROM chunks"
        ).fetchone()
        return f"{row[0]}-{row[1]}-{row[2]}"

    def summary(self) -> dict:
        """Counts and total duration for the CLI."""
        n_songs, dur = self.db.execute("SELECT COUNT(*), COALESCE(SUM(duration_s), 0) FROM songs").fetchone()
        (n_chunks,) = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        return {"songs": n_songs, "chunks": n_chunks, "minutes": dur / 60.0}


def load_song(song: Song, sample_rate: int) -> np.ndarray:
    """A catalogued song as mono float32 ``(samples,)`` at ``sample_rate`` Hz."""
    wav, _ = load_audio(song.path, sample_rate=sample_rate, mono=True, silence_db=None)
    return wav
