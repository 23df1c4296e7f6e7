"""Data set -> feature store: load, check, mono, resample, fit length, then STFT features in NumPy.

Usage::

    from soundloom.data.prepare import PrepareConfig, prepare
    result = prepare("/data/digits", "features/digits", PrepareConfig(sample_rate=16000, seconds=1.0))
    # soundloom prepare /data/digits --out features/digits --sample-rate 16000 --seconds 1

Work is split into batches of files of about the same size, handled by worker processes
(which die with this one, even on ``kill -9``); each worker computes the features of a whole
batch in one NumPy call (no torch: the process starts in a fraction of a second) and writes the
rows straight into a memory-mapped ``.npy`` in a work folder beside the output
(``.<name>.partial/<hash>/``, the hash covering every feature setting), then appends a JSON
line per batch to its journal, naming each file by path, size and mtime. A killed run resumes
from there; a re-run reuses rows of an existing complete store made with the same settings
(and does nothing when the files have not changed). When the run is complete the ``.npy`` is
moved into the store by :func:`~soundloom.data.store.write_store_moving` (temp folder +
rename, as ``write_store``), so the features are written once and a killed run never leaves a
half store; a run killed during that write is finished or undone by the next one
(:func:`~soundloom.data.store.recover_store`), which then reuses the features. Bad files
(unreadable, empty, non-finite, silent, too short) and what the folder walk could not use
(unreadable folders, broken or looping links) are skipped and listed in ``skipped.json`` with
their reason.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import os
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.convert import fit_length, resample, to_mono
from ..core.errors import DataError, ParameterError, SoundloomError
from ..core.io import AudioError, audio_info, load_audio, os_reason, read_head, validate_audio
from ..core.progress import ProgressCallback, null_progress
from ..core.spectrogram import SpectrogramConfig, features_numpy
from .layouts import Dataset, discover
from .stats import Normalizer
from .store import FeatureStore, StoreError, recover_store, remove_stale, write_store_moving
from .workers import worker_pool


@dataclass
class PrepareConfig:
    """Every setting of :func:`prepare`; all but the normalisation ones shape the features.

    Attributes:
        sample_rate: target rate in Hz; None (the default) takes the data set's own rate, the
            most common one among up to 64 headers spread over the items, so 8 kHz digits are
            not upsampled into spectrograms whose upper half is empty.
        seconds: clip length; every clip is padded or trimmed to ``round(seconds * sample_rate)``.
        kind: "db" (log magnitude, ``n_fft // 2 + 1`` rows) or "mel" (log mel, ``n_mels`` rows).
        n_fft, win_length, hop_length, overlap, window, n_mels, floor_db: see
            :class:`~soundloom.core.spectral.SpectrogramConfig`.
        normalization: "meanstd" (per-bin mean/std clipped at ``clip_sigma``) or "range"
            (fixed ``[min_db, max_db]``). The STFT is not scaled by the window, so a full-scale
            sine reaches about ``20 log10(n_fft / 4)`` dB (+42 dB at n_fft 512); ``max_db=None``
            takes the data set's maximum rounded up to 10 dB.
        fade_ms: fade where a long clip is cut, in milliseconds.
        align: "start" or "center": which part of a long clip is kept.
        min_seconds: shorter files are skipped as "too short".
        silence_db: files whose peak is at or below this level (dBFS) are skipped as "silent".
    """

    sample_rate: int | None = None
    seconds: float = 1.0
    kind: str = "db"
    n_fft: int = 512
    win_length: int | None = None
    hop_length: int | None = None
    overlap: float = 0.75
    window: str = "hann"
    n_mels: int = 80
    floor_db: float = -100.0
    normalization: str = "meanstd"
    clip_sigma: float = 3.0
    min_db: float = -100.0
    max_db: float | None = None
    fade_ms: float = 5.0
    align: str = "start"
    min_seconds: float = 0.05
    silence_db: float = -80.0

    def __post_init__(self) -> None:
        if self.kind not in ("db", "mel"):
            raise ParameterError(f"kind must be 'db' or 'mel', got {self.kind!r}")
        if self.normalization not in ("meanstd", "range"):
            raise ParameterError(f"normalization must be 'meanstd' or 'range', got {self.normalization!r}")
        if self.seconds <= 0:
            raise ParameterError(f"seconds must be > 0, got {self.seconds}")
        self.spectrogram()  # validates window, overlap and sizes (the rate does not enter)

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))

    def spectrogram(self) -> SpectrogramConfig:
        return SpectrogramConfig(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            overlap=self.overlap,
            window=self.window,
            kind=self.kind,
            n_mels=self.n_mels,
            floor_db=self.floor_db,
        )

    def feature_hash(self) -> str:
        """Hash of the settings that change the features (not the normalisation)."""
        keys = ("sample_rate", "kind", "fade_ms", "align", "min_seconds", "silence_db")
        d = {k: getattr(self, k) for k in keys}
        d["n_samples"] = self.n_samples
        d["spectrogram"] = self.spectrogram().to_dict()
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def normalizer_options(self) -> dict:
        return {"mode": self.normalization, "clip_sigma": self.clip_sigma, "min_db": self.min_db, "max_db": self.max_db}


@dataclass
class PrepareResult:
    """What :func:`prepare` did."""

    store: Path
    layout: str
    n_items: int  # rows in the store
    n_computed: int  # files decoded in this run
    n_reused: int  # files taken from the work folder or an earlier store
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    shape: tuple[int, int, int] = (0, 0, 0)  # features.npy: (items, rows, frames)


# ------------------------------------------------------------------------------- per batch


def file_key(path: str | os.PathLike) -> tuple[str, int, float]:
    """``(absolute path, size in bytes, mtime in s)``: a file counts as unchanged while these hold."""
    p = os.path.abspath(path)
    st = os.stat(p)
    return p, int(st.st_size), float(st.st_mtime)


def _key_str(key: tuple[str, int, float]) -> str:
    return f"{key[0]}|{key[1]}|{key[2]!r}"


def load_clip(path: str, cfg: PrepareConfig) -> tuple[np.ndarray, int, int, int]:
    """One file as a fixed-length mono clip.

    Returns:
        ``(clip (n_samples,) float32, source rate Hz, source frames, source channels)``.
    Raises:
        AudioError: unreadable, empty, too short, non-finite or silent (the last two judged on
            the part that is kept when the file is longer than the clip).
    """
    clip, rate, frames, channels = _load_head(path, cfg)
    return fit_length(clip, cfg.n_samples), rate, frames, channels


def _load_head(path: str, cfg: PrepareConfig) -> tuple[np.ndarray, int, int, int]:
    """:func:`load_clip` without the zero padding at the end when ``cfg.align`` is "start":
    the clip has at most ``n_samples`` (cut ones are faded), and the silence after it is
    left implicit. With "center" it has exactly ``n_samples``."""
    # Decode only what the clip keeps (plus a margin that keeps soxr's edge transient out of
    # it): a 5-minute song costs no more than a one-shot.
    start = cfg.align == "start"
    wav, rate, frames = read_head(path, cfg.seconds if start else None, extra_frames=256)
    # Too short is judged on the whole file; empty, non-finite and silent on what we keep.
    if frames == 0:
        raise AudioError(path, "empty (no samples)")  # as scan says, not "too short (0.000 s)"
    if frames < cfg.min_seconds * rate:
        raise AudioError(path, f"too short ({frames / rate:.3f} s < {cfg.min_seconds:.3f} s)")
    validate_audio(wav, rate, path, min_seconds=0.0, silence_db=cfg.silence_db)
    mono = resample(to_mono(wav), rate, cfg.sample_rate)
    if not start or len(mono) > cfg.n_samples:
        fade = int(round(cfg.fade_ms * 1e-3 * cfg.sample_rate))
        mono = fit_length(mono, cfg.n_samples, fade_samples=fade, align=cfg.align)
    return mono, rate, frames, wav.shape[0]


def compute_features(clips: np.ndarray, spec: SpectrogramConfig, out: np.ndarray | None = None) -> np.ndarray:
    """Features of clips ``(batch, samples)`` -> ``(batch, rows, frames)`` float32, as
    :func:`~soundloom.core.spectral.features` computes them, written into ``out`` if given
    (any strides; a new C-contiguous array otherwise).

    NumPy, not torch: this process then never imports torch (1.6 s of start-up), and with the
    dB taken as a SIMD ``log`` it is faster than the torch STFT path on one thread.
    """
    return features_numpy(np.asarray(clips, dtype=np.float32), spec, out=out)


def clip_features(clips: list[np.ndarray], n_samples: int, spec: SpectrogramConfig) -> np.ndarray:
    """Features of clips zero-padded to ``n_samples``: ``(batch, rows, spec.n_frames(n_samples))``.

    Frames that see only the padding are not computed: the STFT runs on the batch's longest
    clip plus half a window (rounded up to a hop), whose last frame already sees only zeros,
    and that frame's features fill the rest. On one-shots padded to a fixed length this
    skips about half of the FFT and log work; the values are the same as on the padded clips.

    Args:
        clips: mono float32 arrays of at most ``n_samples`` samples each.
    """
    longest = max(len(c) for c in clips)
    hop = int(spec.hop_length)
    length = min(n_samples, -(-(longest + spec.n_fft // 2) // hop) * hop)
    batch = np.zeros((len(clips), length), np.float32)
    for row, clip in zip(batch, clips):
        row[: len(clip)] = clip
    n_frames = spec.n_frames(n_samples)
    out = np.empty((len(clips), spec.n_rows, n_frames), np.float32)
    computed = spec.n_frames(length)
    compute_features(batch, spec, out=out[..., :computed])
    if computed < n_frames:
        out[..., computed:] = out[..., computed - 1 : computed]
    return out


def process_batch(paths: list[str], cfg: PrepareConfig) -> tuple[np.ndarray, list[dict]]:
    """Features of a batch of files.

    Returns:
        ``(features (ok, rows, frames) float32, results)``: one result per path in order, with
        ``row`` (index into features) or ``reason`` (why it was skipped), ``sample_rate``,
        ``frames`` and ``channels`` of the source.
    """
    clips, results = [], []
    for path in paths:
        try:
            clip, rate, frames, channels = _load_head(path, cfg)
        except AudioError as err:
            results.append({"reason": err.reason})
            continue
        except OSError as err:
            results.append({"reason": os_reason(err)})
            continue
        except Exception as err:  # one odd file must not stop the run; the reason names the error
            results.append({"reason": f"failed ({type(err).__name__}: {str(err)[:200]})"})
            continue
        results.append({"row": len(clips), "sample_rate": rate, "frames": frames, "channels": channels})
        clips.append(clip)
    spec = cfg.spectrogram()
    if not clips:
        return np.zeros((0, spec.n_rows, spec.n_frames(cfg.n_samples)), np.float32), results
    feats = clip_features(clips, cfg.n_samples, spec)
    # Clips are finite, but guard anyway: a NaN row would poison the data-set statistics.
    bad = ~np.isfinite(feats).all(axis=(1, 2))
    if bad.any():
        keep = np.flatnonzero(~bad)
        new_row = {int(old): new for new, old in enumerate(keep)}
        for r in results:
            if "row" in r:
                if bad[r["row"]]:
                    r.clear()
                    r["reason"] = "non-finite features"
                else:
                    r["row"] = new_row[r["row"]]
        feats = np.ascontiguousarray(feats[keep])
    return feats, results


def _worker_init(kind: str) -> None:
    global _WORKER_LIMITS
    _WORKER_LIMITS = _one_blas_thread(kind)  # held for the worker's life
    _keep_freed_memory()


_WORKER_LIMITS = None


def _one_blas_thread(kind: str):
    """Limit BLAS to one thread while features of ``kind`` are computed in this process.

    Only "mel" multiplies matrices (a few MFLOP a batch): BLAS threads would spin and fight the
    other workers for the cores (they made it 4x slower in CPU time). threadpoolctl (installed
    with librosa) is imported only then. Returns the limiter (a context manager) or a no-op one.
    """
    if kind == "mel":
        try:
            from threadpoolctl import threadpool_limits

            return threadpool_limits(1)
        except ImportError:
            pass
    return contextlib.nullcontext()


def _keep_freed_memory() -> None:
    """Let glibc reuse this process's freed memory instead of returning it to the kernel.

    Each batch allocates and frees the same few megabytes; by default glibc serves blocks that
    large with fresh ``mmap`` pages and unmaps them again, so every batch pays the page faults
    anew (costly in a virtual machine whose freed memory goes back to the host). Raising the
    mmap and trim thresholds keeps those pages in the heap. A worker process calls this; other
    C libraries have no ``mallopt`` and are left alone.
    """
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 256 << 20)


def _run_batch(
    work: str, plan: str, offset: int, paths: list[str], slots: list[int], keys: list[str], cfg: PrepareConfig
) -> tuple[list[dict], dict]:
    """Worker task: compute a batch and write its rows into the plan file (an .npy whose data
    start at byte ``offset``) at ``slots``; then append a line naming each file and its slot
    or skip reason to this process's journal, which marks the batch done.

    Returns:
        ``(results, sums)``: the journal line's results and the batch's float64 per-row sums
        (which spare the main process a pass over all features).
    """
    feats, results = process_batch(paths, cfg)
    dest = [slot for r, slot in zip(results, slots) if "row" in r]  # rows of feats, in order
    if dest:
        _write_rows(os.path.join(work, plan), offset, feats, dest)
    for r, key, slot in zip(results, keys, slots):
        r["key"] = key
        if "row" in r:
            del r["row"]
            r["slot"] = slot
    _append_journal(work, {"file": plan, "results": results})
    return results, _sums(feats)


def _append_journal(work: str, entry: dict) -> None:
    """Append ``entry`` as one JSON line to ``journal-<pid>.jsonl`` in ``work``, in one write.

    Appending is far cheaper than a marker file per batch (create + rename). A line cut short
    by a kill does not parse and its batch is simply computed again; the leading newline ends
    such a line when a later process happens to get the same pid."""
    fd = os.open(os.path.join(work, f"journal-{os.getpid()}.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("\n" + json.dumps(entry, separators=(",", ":"))).encode())
    finally:
        os.close(fd)


def _read_journals(work: Path) -> list[dict]:
    """Every complete entry of the journals in ``work``."""
    entries = []
    for path in sorted(work.glob("journal-*.jsonl")):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line) if line else None
            except ValueError:
                continue
            if isinstance(entry, dict) and "file" in entry and "results" in entry:
                entries.append(entry)
    return entries


def _write_rows(path: str, offset: int, feats: np.ndarray, dest: list[int]) -> None:
    """``file[dest[j]] = feats[j]`` for rows of an .npy; runs of consecutive slots go in one
    ``pwrite`` (several times cheaper than page-faulting a memory map)."""
    row_bytes = feats[0].nbytes
    fd = os.open(path, os.O_WRONLY)
    try:
        start = 0
        while start < len(dest):
            end = start + 1
            while end < len(dest) and dest[end] == dest[end - 1] + 1:
                end += 1
            view = memoryview(np.ascontiguousarray(feats[start:end])).cast("B")
            pos = offset + dest[start] * row_bytes
            while len(view):
                n = os.pwrite(fd, view, pos)
                view, pos = view[n:], pos + n
            start = end
    finally:
        os.close(fd)


def _sums(feats: np.ndarray, chunk: int = 64) -> dict:
    """Per-row ``sum``, ``sumsq`` and ``count`` of ``(items, rows, frames)``, in chunks so a large
    (memory-mapped) array needs no float64 copy. NumPy, not torch: single-threaded and
    predictable on a busy machine."""
    s = np.zeros(feats.shape[1])
    s2 = np.zeros(feats.shape[1])
    ones = np.ones(feats.shape[2], np.float32)
    for i in range(0, len(feats), chunk):
        x = np.ascontiguousarray(feats[i : i + chunk], dtype=np.float32)
        # float32 over one row's frames is exact enough (a few hundred terms); float64 across
        # items. A product with ones sums the frames as a BLAS gemv, about 3x faster than a
        # reduction over the last axis.
        s += (x @ ones).sum(axis=0, dtype=np.float64)
        s2 += (np.square(x) @ ones).sum(axis=0, dtype=np.float64)
    return {"sum": s.tolist(), "sumsq": s2.tolist(), "count": int(feats.shape[0] * feats.shape[2])}


# ------------------------------------------------------------------------------- the driver


def native_rate(dataset: Dataset, sample: int = 64, fallback: int = 16000) -> int:
    """The most common sample rate (Hz) among up to ``sample`` headers spread over the items."""
    items = dataset.items
    picks = sorted({round(i * (len(items) - 1) / max(1, sample - 1)) for i in range(min(sample, len(items)))})
    rates = Counter()
    for i in picks:
        try:
            rates[audio_info(items[i].path).sample_rate] += 1
        except (AudioError, OSError):
            continue
    return rates.most_common(1)[0][0] if rates else fallback


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def work_dir_for(out: str | os.PathLike) -> Path:
    """The work folder of a store: ``.<name>.partial`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def _reserve_disk(path: Path) -> None:
    """Allocate the blocks of the file at ``path`` now: a disk too small fails at the start of a
    run, not near its end, and writing into reserved blocks is a little cheaper for the file
    system than filling a sparse file."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            size_mb = os.fstat(fd).st_size / 2**20
            raise OSError(err.errno, f"not enough disk space for {size_mb:.0f} MB of features", str(path)) from err
        # file systems without fallocate: the file stays sparse
    finally:
        os.close(fd)


class _Assembly:
    """The rows of one run, in a memory-mapped .npy (the plan file) with one slot per data-set
    item, filled by workers in place and by copies from earlier plans and stores."""

    def __init__(self, keys: list[str | None], work: Path, shape: tuple[int, int]):
        self.index = {k: i for i, k in enumerate(keys) if k is not None}
        # The name hashes the ordered keys: a slot always means the same file in this plan.
        self.name = "plan-" + hashlib.sha1("\n".join(map(str, keys)).encode()).hexdigest()[:20] + ".npy"
        self.path = work / self.name
        full = (len(keys), *shape)
        self.feats = None
        if self.path.exists():
            try:
                self.feats = np.load(self.path, mmap_mode="r+")
            except (OSError, ValueError):
                self.feats = None
            if self.feats is not None and (self.feats.shape != full or self.feats.dtype != np.float32):
                self.feats = None
        self.created = self.feats is None
        if self.created:
            self.feats = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=full)
            _reserve_disk(self.path)
        self.results: list[dict | None] = [None] * len(keys)
        self.sums = np.zeros((2, shape[0]))
        self.count = 0

    def has(self, key: str) -> bool:
        return self.results[self.index[key]] is not None

    def place(self, source: np.ndarray | None, results: list[dict], sums: dict | None = None) -> int:
        """Take every result whose key is ours and not yet placed; returns how many were taken.

        Args:
            source: the array the results' ``slot`` values index, or None for this plan file.
            sums: the float64 sums of all of ``results``' rows, used when every row is taken.
        """
        dest, src, placed, taken, ok_in = [], [], [], 0, 0
        for r in results:
            ok_in += "slot" in r
            i = self.index.get(r["key"])
            if i is None or self.results[i] is not None:
                continue
            self.results[i] = r
            taken += 1
            if "slot" in r:
                placed.append(i)
                if source is not None or r["slot"] != i:
                    dest.append(i)
                    src.append(r["slot"])
        base = self.feats if source is None else source
        for j in range(0, len(dest), 256):  # in chunks: both may be large memory maps
            self.feats[np.asarray(dest[j : j + 256])] = np.asarray(base[np.asarray(src[j : j + 256])])
        if sums is not None and len(placed) == ok_in:
            self.sums += np.asarray([sums["sum"], sums["sumsq"]])
            self.count += int(sums["count"])
        else:
            for j in range(0, len(placed), 256):
                part = _sums(np.asarray(self.feats[np.asarray(placed[j : j + 256])]))
                self.sums += np.asarray([part["sum"], part["sumsq"]])
                self.count += part["count"]
        return taken

    def harvest(self, work: Path) -> int:
        """Place the finished batches in ``work``: this plan's first (no copies), then older plans'."""
        entries = _read_journals(work)
        taken = 0
        for entry in entries:
            # A plan file made just now holds none of its old entries' rows (it was unreadable).
            if entry["file"] == self.name and not self.created:
                taken += self.place(None, entry["results"])
        others: dict[str, np.ndarray | None] = {}
        for entry in entries:
            name = entry["file"]
            if name != self.name:
                if name not in others:
                    try:
                        others[name] = np.load(work / name, mmap_mode="r")
                    except (OSError, ValueError):
                        others[name] = None
                if others[name] is not None:
                    taken += self.place(others[name], entry["results"])
        return taken


def prepare(
    source: str | os.PathLike | Dataset,
    out: str | os.PathLike,
    config: PrepareConfig | None = None,
    layout: str | None = None,
    workers: int | None = None,
    batch_size: int = 32,
    progress: ProgressCallback = null_progress,
    keep_work: bool = False,
) -> PrepareResult:
    """Turn the data set at ``source`` into a feature store at ``out``.

    Args:
        source: a folder (layout detected unless ``layout`` is given) or a discovered Dataset.
        config: feature settings; defaults to :class:`PrepareConfig()`.
        workers: worker processes (default: all cores); 1 computes in this process.
        batch_size: files per worker task (and per STFT call).
        progress: called as ``progress("prepare", files_done, files_total)``.
        keep_work: keep the work folder after the store is written (default: delete it).
    Returns:
        :class:`PrepareResult`; the store holds ``(items, rows, frames)`` float32 features with
        ``rows = n_fft // 2 + 1`` (db) or ``n_mels`` (mel) and ``frames = 1 + n_samples // hop``.
    Raises:
        LayoutError: no data set at ``source``. DataError: no file was usable, or ``out``
        exists and is not a feature store (it would be replaced).
    """
    t0 = time.perf_counter()
    cfg = config or PrepareConfig()
    out = Path(out)
    if out.exists() and (not out.is_dir() or (not (out / "config.json").exists() and any(out.iterdir()))):
        # The store replaces whatever is at `out`; never let a typo replace someone's folder.
        raise DataError(out, "exists and is not a feature store; choose another --out")
    dataset = source if isinstance(source, Dataset) else discover(source, layout, with_info=False)
    # A run killed while writing the store left it beside `out`: finish or undo that first, so
    # its finished features are found (and its temp folders do not pile up).
    recover_store(out, work_dir_for(out))
    if cfg.sample_rate is None:
        cfg = replace(cfg, sample_rate=native_rate(dataset))
    workers = default_workers() if workers is None else max(1, int(workers))
    spec = cfg.spectrogram()
    fhash = cfg.feature_hash()

    keys: list[str | None] = []
    sizes: list[int] = []
    missing: list[dict] = []
    for it in dataset.items:
        try:
            key = file_key(it.path)
            keys.append(_key_str(key))
            sizes.append(key[1])
        except OSError as err:
            keys.append(None)
            sizes.append(0)
            missing.append({"path": str(it.path), "reason": f"missing ({err.strerror or err})"})
    if _up_to_date(out, fhash, cfg, dataset, keys):
        progress("prepare", len(keys), len(keys))
        if not keep_work:  # a run killed after its store was in place left its work folder
            remove_stale(work_dir_for(out))
        store = FeatureStore.open(out)
        return PrepareResult(
            out,
            dataset.layout,
            len(store),
            0,
            len(keys),
            store.skipped,
            time.perf_counter() - t0,
            tuple(store.features.shape),
        )

    work = work_dir_for(out) / fhash
    work.mkdir(parents=True, exist_ok=True)
    asm = _Assembly(keys, work, (spec.n_rows, spec.n_frames(cfg.n_samples)))
    n_reused = asm.harvest(work) + _reuse_store(out, fhash, asm)
    todo = [i for i, k in enumerate(keys) if k is not None and not asm.has(k)]
    # Batches of files of about the same size hold clips of about the same length, so the
    # STFT of a batch of short clips stops soon after its longest one (see clip_features).
    todo.sort(key=sizes.__getitem__)
    total = len(keys) - len(missing)
    n_done = total - len(todo)
    progress("prepare", n_done, total)

    tasks = []
    for b in range(0, len(todo), batch_size):
        slots = todo[b : b + batch_size]
        bkeys = [keys[i] for i in slots]
        tasks.append(
            (str(work), asm.name, int(asm.feats.offset), [str(dataset.items[i].path) for i in slots], slots, bkeys, cfg)
        )

    def collect(results: list[dict], sums: dict) -> None:
        nonlocal n_done
        asm.place(None, results, sums)
        n_done += len(results)
        progress("prepare", n_done, total)

    # A full garbage collection walks every object (torch's ~200k when a caller has imported it)
    # and, in forked workers, would copy every page it touches; the loop makes almost no
    # reference cycles, so pause it here (forked workers inherit the pause and end with the pool).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _compute(tasks, cfg, workers, collect)
    finally:
        if gc_was_enabled:
            gc.enable()

    items, skipped, ok = _index(dataset, keys, asm)
    skipped = dataset.skipped + missing + skipped
    if not items:
        raise DataError(dataset.root, f"no usable audio files ({len(skipped)} skipped)")
    store_config = {
        "sample_rate": cfg.sample_rate,
        "n_samples": cfg.n_samples,
        "seconds": cfg.seconds,
        "spectrogram": spec.to_dict(),
        "normalization": cfg.normalizer_options(),
        "layout": dataset.layout,
        "source": str(Path(dataset.root).resolve()),
        "prepare": asdict(cfg),
        "features_hash": fhash,
    }
    if len(ok) == len(keys):  # every slot used: the plan file becomes the store's features.npy
        final = asm.path
    else:  # drop the slots of skipped files, chunk by chunk on disk (a big store never sits in RAM)
        final = work / "compact.npy"
        compact = np.lib.format.open_memmap(final, mode="w+", dtype=np.float32, shape=(len(ok), *asm.feats.shape[1:]))
        for j in range(0, len(ok), 256):
            compact[j : j + 256] = asm.feats[np.asarray(ok[j : j + 256])]
        compact.flush()
        del compact
    normalizer = _normalizer(asm, np.load(final, mmap_mode="r"), cfg)
    asm.feats = None
    write_store_moving(out, final, items, store_config, normalizer, skipped)
    if not keep_work:
        remove_stale(work_dir_for(out))
    shape = (len(items), spec.n_rows, spec.n_frames(cfg.n_samples))
    return PrepareResult(out, dataset.layout, len(items), len(todo), n_reused, skipped, time.perf_counter() - t0, shape)


def _compute(tasks: list[tuple], cfg: PrepareConfig, workers: int, collect) -> None:
    """Run the batch tasks in this process (one worker or one task) or in a worker pool."""
    if workers == 1 or len(tasks) <= 1:
        with _one_blas_thread(cfg.kind):
            for task in tasks:
                collect(*_run_batch(*task))
    else:
        _run_pool(tasks, cfg, workers, collect)


def _run_pool(tasks: list[tuple], cfg: PrepareConfig, workers: int, collect) -> None:
    # fork starts workers in milliseconds (no re-imports); workers only compute. What
    # they import lazily is imported here once, not once per worker.
    import wave  # noqa: F401  (read_head's fast path)

    with worker_pool(min(workers, len(tasks)), _worker_init, (cfg.kind,)) as pool:
        pending = {pool.submit(_run_batch, *task) for task in tasks}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    collect(*fut.result())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


def _store_keys(entries: list[dict]) -> list[str] | None:
    """Keys of index entries; skipped entries without size (the walk's finds: links, folders)
    are no data-set items and are left out. None when an item lacks its size or mtime."""
    try:
        return [_key_str((e["path"], int(e["size"]), float(e["mtime"]))) for e in entries if "size" in e]
    except KeyError:
        return None


def _up_to_date(out: Path, fhash: str, cfg: PrepareConfig, dataset: Dataset, keys: list[str | None]) -> bool:
    """True when the store at ``out`` was made from exactly these files with these settings."""
    if None in keys or not (out / "config.json").exists():
        return False
    try:
        store = FeatureStore.open(out)
    except StoreError:
        return False
    c = store.config
    if (c.get("features_hash"), c.get("normalization"), c.get("layout")) != (
        fhash,
        cfg.normalizer_options(),
        dataset.layout,
    ):
        return False
    item_keys, skipped_keys = _store_keys(store.items), _store_keys(store.skipped)
    if item_keys is None or skipped_keys is None:
        return False
    skipped_set = set(skipped_keys)
    if item_keys != [k for k in keys if k not in skipped_set] or len(item_keys) + len(skipped_set) != len(keys):
        return False
    labels = {k.rsplit("|", 2)[0]: it.labels for k, it in zip(keys, dataset.items)}
    return all(labels.get(it["path"]) == it["labels"] for it in store.items)


def _reuse_store(out: Path, fhash: str, asm: _Assembly) -> int:
    """Place rows of an existing store made with the same feature settings; returns how many."""
    if not out.exists():
        return 0
    try:
        store = FeatureStore.open(out)
    except StoreError:
        return 0
    if store.config.get("features_hash") != fhash:
        return 0
    results = []
    for row, it in enumerate(store.items):
        if "size" in it and "mtime" in it:
            key = _key_str((it["path"], int(it["size"]), float(it["mtime"])))
            results.append(
                {
                    "key": key,
                    "slot": row,
                    "sample_rate": it.get("sample_rate"),
                    "frames": it.get("frames"),
                    "channels": it.get("channels"),
                }
            )
    for s in store.skipped:
        if "size" in s and "mtime" in s:
            results.append({"key": _key_str((s["path"], int(s["size"]), float(s["mtime"]))), "reason": s["reason"]})
    return asm.place(store.features, results)


def _index(dataset: Dataset, keys: list[str | None], asm: _Assembly) -> tuple[list[dict], list[dict], list[int]]:
    """Index items, skipped files and the plan slots of usable items, in data-set order."""
    items, skipped, ok = [], [], []
    for i, (it, key) in enumerate(zip(dataset.items, keys)):
        if key is None:
            continue
        res = asm.results[i]
        path, size, mtime = key.rsplit("|", 2)
        if "slot" not in res:
            skipped.append({"path": path, "reason": res["reason"], "size": int(size), "mtime": float(mtime)})
            continue
        ok.append(i)
        rate, frames = res.get("sample_rate"), res.get("frames")
        items.append(
            {
                "id": it.id,
                "path": path,
                "labels": it.labels,
                "duration_s": frames / rate if rate and frames else None,
                "sample_rate": rate,
                "frames": frames,
                "channels": res.get("channels"),
                "size": int(size),
                "mtime": float(mtime),
            }
        )
    return items, skipped, ok


def _normalizer(asm: _Assembly, feats: np.ndarray, cfg: PrepareConfig) -> Normalizer:
    if cfg.normalization == "range":
        max_db = cfg.max_db if cfg.max_db is not None else _data_max_db(feats)
        return Normalizer(mode="range", min_db=cfg.min_db, max_db=max_db, clip_sigma=cfg.clip_sigma)
    if asm.count != feats.shape[0] * feats.shape[2]:  # sums do not cover exactly the kept rows
        return fit_normalizer(feats, clip_sigma=cfg.clip_sigma)
    return _from_sums(asm.sums[0], asm.sums[1], asm.count, cfg.clip_sigma)


def _data_max_db(feats: np.ndarray, chunk: int = 256) -> float:
    """The largest feature value, rounded up to a multiple of 10 dB."""
    peak = max(float(np.max(feats[i : i + chunk])) for i in range(0, len(feats), chunk))
    return float(np.ceil(peak / 10.0) * 10.0)


def _from_sums(s: np.ndarray, s2: np.ndarray, n: int, clip_sigma: float) -> Normalizer:
    mean = s / n
    std = np.maximum(np.sqrt(np.maximum(s2 / n - mean**2, 0.0)), 1e-3)  # the floor Normalizer.fit uses
    return Normalizer(mode="meanstd", mean=mean.astype(np.float32), std=std.astype(np.float32), clip_sigma=clip_sigma)


def fit_normalizer(
    feats: np.ndarray, mode: str = "meanstd", clip_sigma: float = 3.0, min_db: float = -100.0, max_db: float = 0.0
) -> Normalizer:
    """:meth:`Normalizer.fit` in chunks (float64 sums), so a large store needs no float64 copy.

    Args:
        feats: dB features ``(items, rows, frames)``.
    """
    if mode == "range":
        return Normalizer(mode="range", min_db=min_db, max_db=max_db, clip_sigma=clip_sigma)
    if len(feats) == 0:
        raise DataError("no features to fit normalisation statistics on")
    part = _sums(feats)
    return _from_sums(np.asarray(part["sum"]), np.asarray(part["sumsq"]), part["count"], clip_sigma)


def recorded_clips(store: FeatureStore, rows: np.ndarray) -> np.ndarray | None:
    """Store items ``rows`` read again from their files and cut as ``prepare`` cut them (a store made otherwise:
    resampled to its rate, its first ``n_samples``) ``(N, n_samples)`` float32; None when a file is gone or no
    longer readable (the evaluation's floor is then judged against the resynthesised clips only, and the post-filter is
    calibrated against them)."""
    settings = store.config.get("prepare")
    try:
        if settings:
            cfg = PrepareConfig(**settings)
            clips = [load_clip(store.items[int(r)]["path"], cfg)[0] for r in rows]
        else:
            n = int(store.n_samples)
            clips = [fit_length(load_audio(store.items[int(r)]["path"], store.sample_rate)[0], n) for r in rows]
        return np.stack(clips).astype(np.float32)
    except (OSError, KeyError, TypeError, ValueError, SoundloomError):
        return None
