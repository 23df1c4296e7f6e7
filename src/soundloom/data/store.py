"""The feature store: fixed-length features of a data set, its index, statistics and config.

On disk (a directory)::

    config.json     {"version", "sample_rate", "n_samples", "seconds", "spectrogram": {...},
                     "normalization": {...fit options}, "layout", "source", ...}
    features.npy    float32 (items, rows, frames): dB (kind "db"/"mel") or linear values, NOT normalised
    index.json      [{"id", "path", "labels": {name: value}, "duration_s", "sample_rate",
                      "size", "mtime"}, ...] in the row order of features.npy
    stats.json      :class:`~soundloom.data.stats.Normalizer` fitted on all items
    skipped.json    [{"path", "reason"}, ...] files that could not be used

A store is always written complete into a temporary sibling directory and renamed into place,
so a killed run never leaves a half store under the final name. The temporary names carry the
writer's pid (``.<name>.tmp-<pid>-*``, ``.<name>.old-<pid>``); :func:`recover_store` finishes
or removes what a killed writer left, and gives back features it had moved in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import make_temp_dir
from ..core.errors import StoreError
from ..core.spectrogram import SpectrogramConfig
from .stats import Normalizer

STORE_VERSION = 1


@dataclass
class FeatureStore:
    """A feature store opened for reading; ``features`` is memory-mapped."""

    path: Path
    config: dict
    features: np.ndarray  # (items, rows, frames)
    items: list[dict]
    normalizer: Normalizer
    skipped: list[dict] = field(default_factory=list)

    @property
    def spectrogram(self) -> SpectrogramConfig:
        return SpectrogramConfig.from_dict(self.config["spectrogram"])

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])

    @property
    def n_samples(self) -> int:
        return int(self.config["n_samples"])

    def __len__(self) -> int:
        return len(self.items)

    def label_names(self) -> list[str]:
        """Label keys present on every item (e.g. ``["label", "speaker"]``)."""
        if not self.items:
            return []
        common = set(self.items[0]["labels"])
        for it in self.items[1:]:
            common &= set(it["labels"])
        return sorted(common)

    def labels(self, name: str) -> list:
        """The value of label ``name`` for every item, in row order."""
        try:
            return [it["labels"][name] for it in self.items]
        except KeyError as exc:
            raise StoreError(f"{self.path}: label {name!r} missing; have {self.label_names()}") from exc

    def normalized(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """Normalised features ``(items, rows, frames)`` in [-1, 1] (a copy)."""
        x = np.asarray(self.features if rows is None else self.features[rows], dtype=np.float32)
        return self.normalizer.normalize(x).astype(np.float32)

    @classmethod
    def open(cls, path: str | os.PathLike) -> FeatureStore:
        path = Path(path)
        try:
            config = json.loads((path / "config.json").read_text())
            items = json.loads((path / "index.json").read_text())
            stats = json.loads((path / "stats.json").read_text())
            skipped_file = path / "skipped.json"
            skipped = json.loads(skipped_file.read_text()) if skipped_file.exists() else []
            features = np.load(path / "features.npy", mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            raise StoreError(
                f"{path}: not a feature store ({Path(exc.filename).name} missing); make one with `soundloom prepare`"
            ) from exc
        except (ValueError, json.JSONDecodeError) as exc:
            raise StoreError(f"{path}: malformed feature store ({exc})") from exc
        if config.get("version") != STORE_VERSION:
            raise StoreError(f"{path}: store version {config.get('version')} != {STORE_VERSION}")
        if features.ndim != 3 or features.shape[0] != len(items):
            raise StoreError(f"{path}: features {features.shape} do not match {len(items)} index rows")
        return cls(path, config, features, items, Normalizer.from_dict(stats), skipped)


def write_store(
    path: str | os.PathLike,
    features: np.ndarray,
    items: list[dict],
    config: dict,
    normalizer: Normalizer,
    skipped: list[dict] | None = None,
) -> Path:
    """Write a complete store atomically (temp dir, then rename over any old one).

    Args:
        features: float32 ``(items, rows, frames)``.
        config: must hold ``sample_rate``, ``n_samples`` and ``spectrogram``; ``version`` is set here.
    """
    path = Path(path)
    for key in ("sample_rate", "n_samples", "spectrogram"):
        if key not in config:
            raise StoreError(f"store config needs {key!r}")
    if features.shape[0] != len(items):
        raise StoreError(f"{features.shape[0]} feature rows but {len(items)} items")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_dir(path)
    try:
        np.save(tmp / "features.npy", np.ascontiguousarray(features, dtype=np.float32))
        _write_json(tmp / "index.json", items)
        _write_json(tmp / "stats.json", normalizer.to_dict())
        _write_json(tmp / "skipped.json", skipped or [])
        _write_json(tmp / "config.json", {**config, "version": STORE_VERSION})
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


#: In a temp store folder: where its features.npy was moved from (for :func:`recover_store`).
MOVED_FROM = "moved-from.json"


def _temp_dir(path: Path) -> Path:
    return make_temp_dir(path.parent, f".{path.name}.tmp-{os.getpid()}-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def recover_store(path: str | os.PathLike, work: str | os.PathLike | None = None) -> None:
    """Finish or undo what a writer killed while writing the store at ``path`` left beside it.

    - a temp folder holding a complete store while ``path`` is missing (killed between the two
      renames of the swap) is renamed into place;
    - features a killed :func:`write_store_moving` had moved into its temp folder go back where
      they came from (the work folder ``work`` of ``soundloom prepare``), so they are reused;
    - then its temp and old folders are removed. Folders of writers still alive are left alone.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(tmp|old)-(\d+)(-.*)?$")
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:
        return
    for name in names:
        m = pattern.match(name)
        if m is None or _pid_alive(int(m[2])):
            continue
        stale = path.parent / name
        if m[1] == "tmp":
            _recover_temp(stale, path, work)
        shutil.rmtree(stale, ignore_errors=True)
    marker = path / MOVED_FROM
    if marker.exists():  # killed after the swap, before the marker was removed
        marker.unlink(missing_ok=True)


def _recover_temp(tmp: Path, path: Path, work: str | os.PathLike | None) -> None:
    marker = tmp / MOVED_FROM
    complete = all((tmp / f).exists() for f in ("features.npy", "index.json", "stats.json", "config.json"))
    if complete and not path.exists():
        os.replace(tmp, path)
        (path / MOVED_FROM).unlink(missing_ok=True)
        return
    try:
        source = Path(json.loads(marker.read_text())["features"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    inside_work = work is not None and source.parent.resolve().is_relative_to(Path(work).resolve())
    if inside_work and source.parent.is_dir() and not source.exists() and (tmp / "features.npy").exists():
        os.replace(tmp / "features.npy", source)


def remove_stale(folder: str | os.PathLike) -> None:
    """Remove a work or temp folder (``soundloom prepare``'s ``.<name>.partial``) if present."""
    shutil.rmtree(folder, ignore_errors=True)


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished folder ``tmp`` to ``path``, replacing an older store there."""
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1))


def write_store_moving(
    path: str | os.PathLike,
    features_npy: str | os.PathLike,
    items: list[dict],
    config: dict,
    normalizer: Normalizer,
    skipped: list[dict] | None = None,
) -> Path:
    """:func:`write_store`, but the features come as a finished ``.npy`` file that is moved
    (renamed) into the store instead of written a second time; same atomic result.

    For large stores computed in place (``soundloom prepare`` fills a memory-mapped .npy in its
    work folder). ``features_npy`` must hold float32 ``(items, rows, frames)`` and lie on the
    same file system as ``path``; on failure it is moved back.
    """
    path, features_npy = Path(path), Path(features_npy)
    for key in ("sample_rate", "n_samples", "spectrogram"):
        if key not in config:
            raise StoreError(f"store config needs {key!r}")
    feats = np.load(features_npy, mmap_mode="r", allow_pickle=False)
    if feats.dtype != np.float32 or feats.ndim != 3 or feats.shape[0] != len(items):
        raise StoreError(f"{features_npy}: features {feats.dtype} {feats.shape} do not fit {len(items)} items")
    del feats
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_dir(path)
    moved = tmp / "features.npy"
    try:
        # Written first: a kill from here on leaves the way back for recover_store.
        (tmp / MOVED_FROM).write_text(json.dumps({"features": str(features_npy.resolve())}))
        os.replace(features_npy, moved)
        # Compact separators keep json's C encoder (indent forces the pure-Python one, about
        # 0.1 ms an item); the content is the same JSON write_store writes.
        (tmp / "index.json").write_text(json.dumps(items, separators=(",", ":")))
        _write_json(tmp / "stats.json", normalizer.to_dict())
        (tmp / "skipped.json").write_text(json.dumps(skipped or [], separators=(",", ":")))
        _write_json(tmp / "config.json", {**config, "version": STORE_VERSION})
        _swap_into_place(tmp, path)
    except BaseException:
        if moved.exists():
            os.replace(moved, features_npy)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (path / MOVED_FROM).unlink(missing_ok=True)
    return path
