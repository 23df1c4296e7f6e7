"""The pool: a SQLite catalog of songs and their chunks (offsets into the source files, never copies).

A pool is a folder::

    POOL/catalog.sqlite      songs (path, content hash, duration, rate, tempo, loudness) and chunks
                             (song, index, start and end sample, summary features)
    POOL/embeddings/         cached tail/head embeddings per transition model (see stream.index)
    POOL/skipped.json        songs left out and why (empty, too short, silent, non-finite, unreadable,
                             broken links, ...), also kept in the catalog's ``skipped`` table

Adding a folder twice adds only the songs whose content hash is new. A bad song never stops a
run: it is skipped with a reason and the good ones are kept. Each song is one transaction, so
a kill loses at most the song being added (SQLite rolls its journal back on the next open).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import write_json
from ..core.convert import resample
from ..core.errors import DataError, PoolError
from ..core.io import AudioError, audio_info, is_audio_file, load_audio
from ..core.progress import ProgressCallback, null_progress
from . import edges
from .chunking import ChunkConfig, chunk_song, estimate_tempo, min_song_seconds

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
CREATE TABLE IF NOT EXISTS skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""

#: Tables every pool has; a SQLite file without them is not a pool.
POOL_TABLES = ("meta", "songs", "chunks")
#: Songs quieter than this peak (dBFS) are skipped as silent.
SILENT_PEAK_DB = -80.0

#: Called with (path, reason) for each song left out.
SkipCallback = Callable[[str, str], None]


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
    return scan_songs(folder).paths


@dataclass
class SongScan:
    """Audio files found under a folder, and what the walk left out: ``{"path", "reason"}`` each."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def scan_songs(folder: str | Path) -> SongScan:
    """Walk ``folder`` for audio files (sorted); a single file is returned as is.

    Hidden names are ignored. Folder links are followed, never into a folder already listed
    (no loops). Audio-named entries that are not regular files (a folder named ``x.wav``, a
    broken link, a link loop, a pipe) and unreadable folders are named in ``skipped``.
    """
    folder = Path(folder)
    try:
        top = os.stat(folder)
    except OSError as err:
        raise DataError(folder, f"no such folder ({_os_reason(err)})") from err
    if not stat.S_ISDIR(top.st_mode):
        return SongScan([folder])
    out = SongScan()
    seen = {(top.st_dev, top.st_ino)}
    stack = [str(folder)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            out.skipped.append({"path": str(err.filename), "reason": f"unreadable folder ({_os_reason(err)})"})
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                st = os.stat(e.path)  # follows links; raises on broken links and loops
            except OSError as err:
                if is_audio_file(e.name) or e.is_symlink():
                    out.skipped.append({"path": e.path, "reason": _os_reason(err, link=e.is_symlink())})
                continue
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    out.skipped.append({"path": e.path, "reason": "link to a folder already listed (a loop)"})
                    continue
                seen.add((st.st_dev, st.st_ino))
                stack.append(e.path)
                if is_audio_file(e.name):
                    out.skipped.append({"path": e.path, "reason": "a folder, not an audio file"})
            elif is_audio_file(e.name):
                if stat.S_ISREG(st.st_mode):
                    out.paths.append(Path(e.path))
                else:
                    out.skipped.append({"path": e.path, "reason": "not a regular file (a pipe, socket or device)"})
    out.paths.sort()
    out.skipped.sort(key=lambda d: d["path"])
    return out


def _os_reason(err: OSError, link: bool = False) -> str:
    """A short reason for an ``OSError``: permission denied, broken link, link loop, ..."""
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ELOOP:
        return "link loop (the link points back to itself)"
    if err.errno == errno.ENOENT:
        return "broken link (its target does not exist)" if link else "missing (no such file)"
    if err.errno == errno.EISDIR:
        return "a folder, not an audio file"
    return f"unreadable ({err.strerror or err})"


def song_problem(wav: np.ndarray, sample_rate: int, cfg: ChunkConfig) -> str | None:
    """Why a decoded song cannot be chunked (empty, non-finite, too short, silent), or None.

    Args:
        wav: mono samples ``(samples,)``; sample_rate: Hz.
    """
    if wav.size == 0:
        return "empty (no samples)"
    hi, lo = float(wav.max()), float(wav.min())  # max and min propagate NaN and keep Inf
    if not (np.isfinite(hi) and np.isfinite(lo)):
        return "non-finite samples (NaN or Inf)"
    shortest = min_song_seconds(cfg)
    if wav.size < shortest * sample_rate:
        n = f"{wav.size} sample{'s' * (wav.size != 1)}"
        return f"too short ({n} = {wav.size / sample_rate:.3f} s < {shortest:g} s, the shortest chunk)"
    peak = max(hi, -lo)
    if peak <= 10 ** (SILENT_PEAK_DB / 20):
        return f"silent (peak {20 * np.log10(peak + 1e-12):.1f} dBFS)"
    return None


class ChunkCatalog:
    """SQLite catalog of a pool folder. Use as a context manager or call :meth:`close`."""

    def __init__(self, pool: str | Path, create: bool = True):
        self.pool = Path(pool)
        db = self.pool / "catalog.sqlite"
        if self.pool.exists() and not self.pool.is_dir():
            raise PoolError(self.pool, "exists and is not a folder (a pool is a folder)")
        if not create and not db.exists():
            raise PoolError(self.pool, "not a pool (no catalog.sqlite); run `soundloom chunk` first")
        if create:
            self.pool.mkdir(parents=True, exist_ok=True)
            _remove_stale_temps(self.pool)
        self.db = sqlite3.connect(str(db))
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = [t for t in POOL_TABLES if t not in tables]
            if missing and (tables or not create):  # another program's database, or an empty file
                what = "empty catalog" if not tables else f"no {'/'.join(missing)} table"
                raise PoolError(db, f"not a soundloom pool ({what}); run `soundloom chunk` to make one")
            self.db.execute("PRAGMA foreign_keys = ON")
            if missing or "skipped" not in tables:
                self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise PoolError(db, f"not a soundloom pool ({exc})") from exc
        except PoolError:
            self.db.close()
            raise
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
        on_skip: SkipCallback | None = None,
    ) -> list[Song]:
        """Chunk and catalogue every song not already in the pool (by content hash).

        The first call fixes the chunking config and analysis rate; later calls must match.
        A song that cannot be used (unreadable, empty, shorter than the shortest chunk, silent,
        non-finite) is skipped: recorded in the ``skipped`` table and ``skipped.json`` and passed
        to ``on_skip(path, reason)``; the other songs are still added.
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
            try:
                digest = content_hash(path)
                if digest in known:
                    continue
                song = self._add_song(path, digest, cfg, rate)
            except AudioError as err:
                self.record_skip(path, err.reason, on_skip)
                continue
            except OSError as err:
                self.record_skip(path, _os_reason(err, link=path.is_symlink()), on_skip)
                continue
            added.append(song)
            known.add(digest)
        progress("chunking", len(paths), len(paths))
        self.write_skipped_json()
        self._table = None
        return added

    def record_skip(self, path: str | Path, reason: str, on_skip: SkipCallback | None = None) -> None:
        """Note that ``path`` was left out and why (replaces an older reason for the same path)."""
        key = os.path.abspath(path)
        self.db.execute("INSERT OR REPLACE INTO skipped VALUES (?, ?)", (key, reason))
        self.db.commit()
        if on_skip is not None:
            on_skip(str(path), reason)

    def skipped(self) -> list[dict]:
        """Songs left out, ``{"path", "reason"}`` each, by path."""
        rows = self.db.execute("SELECT path, reason FROM skipped ORDER BY path")
        return [{"path": p, "reason": r} for p, r in rows]

    def write_skipped_json(self) -> Path:
        """Write ``POOL/skipped.json`` (atomically) from the ``skipped`` table; returns its path."""
        return write_json(self.pool / "skipped.json", self.skipped())

    def remove_missing(self) -> list[str]:
        """Forget songs whose files are gone (and their chunks); returns their paths."""
        gone = [s.path for s in self.songs() if not os.path.lexists(s.path) or not os.path.exists(s.path)]
        if gone:
            self.db.executemany("DELETE FROM songs WHERE path = ?", [(p,) for p in gone])
            self.db.commit()
            self._table = None
        return gone

    def check_sources(self) -> list[dict]:
        """Songs whose files no longer match the catalog: ``{"path", "reason"}`` each.

        Checks the header only (cheap at any pool size): the file is there, readable, and has the
        catalogued sample rate and length. A same-length edit is caught by ``chunk`` (content hash).
        """
        problems = []
        for s in self.songs():
            try:
                info = audio_info(s.path)
            except AudioError as err:
                problems.append({"path": s.path, "reason": f"{err.reason}; re-run `soundloom chunk`"})
                continue
            except OSError as err:
                problems.append({"path": s.path, "reason": f"{_os_reason(err)}; re-run `soundloom chunk`"})
                continue
            frames = round(s.duration_s * s.sample_rate)
            if info.sample_rate != s.sample_rate or info.frames != frames:
                problems.append(
                    {
                        "path": s.path,
                        "reason": f"changed since chunking ({info.frames} samples at {info.sample_rate} Hz,"
                        f" catalogued {frames} at {s.sample_rate} Hz); re-run `soundloom chunk`",
                    }
                )
        return problems

    def _add_song(self, path: Path, digest: str, cfg: ChunkConfig, rate: int) -> Song:
        """Chunk one song and commit it with its chunks in one transaction; AudioError if unusable."""
        wav, native = load_audio(path, mono=True, silence_db=None)
        problem = song_problem(wav, native, cfg)
        if problem:
            raise AudioError(path, problem)
        tempo, bounds = chunk_song(wav, native, cfg)
        if not bounds:
            raise AudioError(path, "no chunks (all silent below the threshold?)")
        if tempo is None:
            tempo = estimate_tempo(wav, native)
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
        self.db.execute("DELETE FROM skipped WHERE path = ?", (os.path.abspath(path),))
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


def _remove_stale_temps(pool: Path) -> None:
    """Remove temp files a killed writer left beside ``skipped.json`` (atomic writes rename them)."""
    for p in pool.glob(".skipped.json.*"):
        try:
            p.unlink()
        except OSError:
            pass


def load_song(song: Song, sample_rate: int) -> np.ndarray:
    """A catalogued song as mono float32 ``(samples,)`` at ``sample_rate`` Hz."""
    wav, _ = load_audio(song.path, sample_rate=sample_rate, mono=True, silence_db=None)
    return wav
