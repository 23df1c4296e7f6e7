"""Data set layouts on disk: find the audio files of a folder and the labels each one carries.

Layouts (``detect_layout`` picks one; ``discover(root, layout=...)`` forces one):

- ``nsynth``: ``examples.json`` beside ``audio/<note_str>.wav``; labels pitch, velocity,
  instrument_family_str, instrument_source_str, instrument_str.
- ``classes``: ``<class>/<file>`` (nested folders below a class folder belong to it); label ``label``.
- ``fsdd``: ``<label>_<speaker>_<take>.wav`` (the speaker may hold ``_`` or ``-``); labels
  ``label``, ``speaker``, ``take``, plus the columns of a metadata file naming the files, if any.
- ``maestro``: a metadata CSV or JSON beside the audio with a column naming each file
  (``audio_filename``, ``file``, ``path`` ...); the other columns become labels.
- ``songs``: every audio file below the folder (any format), label ``folder`` when nested.
- ``plain``: every audio file below the folder, no labels.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import statistics
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..core.errors import AudioError, LayoutError
from ..core.io import audio_info, is_audio_file, os_reason

LAYOUTS = ("fsdd", "classes", "nsynth", "maestro", "songs", "plain")
NSYNTH_LABELS = ("pitch", "velocity", "instrument_family_str", "instrument_source_str", "instrument_str")
#: Metadata columns that may name the audio file, in order of preference.
FILE_COLUMNS = ("audio_filename", "audio_file", "audio_path", "filename", "file_name", "file", "path", "audio", "fname")
FSDD_PATTERN = re.compile(r"^(?P<label>[^_]+)_(?P<speaker>.+)_(?P<take>\d+)$")
#: A folder whose audio is this long (median seconds) is a folder of songs, not of one-shots.
SONG_SECONDS = 30.0


@dataclass
class Item:
    """One audio file of a data set.

    Attributes:
        id: unique, stable name within the data set (relative path without extension).
        path: the file.
        labels: label name -> value (str, int or float).
        duration_s: seconds, from the header; None when the header could not be read.
        sample_rate: Hz, from the header; None when unreadable.
        channels: from the header; None when unreadable.
        error: why the header could not be read (an :class:`AudioError` reason), else None.
    """

    id: str
    path: Path
    labels: dict = field(default_factory=dict)
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "path": str(self.path),
            "labels": self.labels,
            "duration_s": self.duration_s,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "error": self.error,
        }


@dataclass
class Dataset:
    """The items of a folder in a known layout, sorted by id."""

    root: Path
    layout: str
    items: list[Item]
    metadata: Path | None = None  # the metadata file the labels came from, if any
    #: ``{"path", "reason"}`` for what the walk could not use: unreadable folders, broken or
    #: looping links, audio names that are not regular files (a folder named ``x.wav``, a pipe).
    skipped: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def label_names(self) -> list[str]:
        names: dict[str, None] = {}
        for it in self.items:
            names.update(dict.fromkeys(it.labels))
        return list(names)


# ---------------------------------------------------------------------------------- discovery


def discover(root: str | os.PathLike, layout: str | None = None, with_info: bool = True) -> Dataset:
    """Items of the data set in ``root``.

    Args:
        layout: one of :data:`LAYOUTS`, or None / "auto" to detect it.
        with_info: read every header (duration, rate); files whose header fails keep ``error``.
    Raises:
        LayoutError: ``root`` is missing, empty, or not of the requested layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    _listing.cache_clear()  # a folder may have changed since the last call
    if layout in (None, "auto"):
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise LayoutError(f"layout must be one of {LAYOUTS} or 'auto', got {layout!r}")
    metadata = None
    if layout == "nsynth":
        items, metadata = _nsynth_items(root)
    elif layout == "classes":
        items = _class_items(root)
    elif layout == "fsdd":
        items, metadata = _fsdd_items(root)
    elif layout == "maestro":
        metadata = find_metadata(root)
        if metadata is None:
            raise LayoutError(f"{root}: no metadata CSV/JSON naming the audio files")
        items = _metadata_items(root, metadata)
    elif layout == "songs":
        items = [_item(root, p, _folder_label(root, p)) for p in audio_files(root)]
    else:
        items = [_item(root, p, {}) for p in audio_files(root)]
    if not items:
        raise LayoutError(f"{root}: no audio files for layout {layout!r}")
    _unique_ids(root, items)
    items.sort(key=lambda it: it.id)
    if with_info:
        for it in items:
            read_header(it)
    skipped = [dict(s) for s in _listing(str(root), layout != "fsdd")[1]]
    return Dataset(root, layout, items, metadata, skipped)


def _unique_ids(root: Path, items: list[Item]) -> None:
    """Ids drop the extension; where that collides (``a.wav`` and ``a.flac``) keep it."""
    seen: dict[str, int] = {}
    for it in items:
        seen[it.id] = seen.get(it.id, 0) + 1
    for it in items:
        if seen[it.id] > 1:
            it.id = str(it.path)[len(str(root)) :].lstrip(os.sep).replace(os.sep, "/")


def read_header(item: Item) -> Item:
    """Fill ``duration_s``, ``sample_rate``, ``channels`` or ``error`` from the file header."""
    try:
        info = audio_info(item.path)
    except AudioError as err:
        item.error = err.reason
    except OSError as err:
        item.error = os_reason(err)
    else:
        item.duration_s, item.sample_rate, item.channels = info.duration_s, info.sample_rate, info.channels
    return item


def audio_files(root: Path, recursive: bool = True) -> list[Path]:
    """Audio files below ``root`` (hidden files and folders skipped), sorted.

    Folder links are followed, but never into a folder already listed (no loops); what cannot
    be used is left out and named in :attr:`Dataset.skipped` by :func:`discover`.
    """
    return [Path(f) for f in _listing(str(root), recursive)[0]]


@lru_cache(maxsize=256)
def _listing(root: str, recursive: bool) -> tuple[tuple[str, ...], tuple[tuple[tuple[str, str], ...], ...]]:
    """``(sorted audio file paths, problems)``, problems as ``(("path", p), ("reason", r))``
    pairs; cached within one :func:`discover` call (detection and item building list the same
    folders, and 10k ``Path`` objects cost ~0.1 s)."""
    found: list[str] = []
    problems: list[tuple[str, str]] = []
    try:
        top = os.stat(root)
    except OSError as err:
        return (), ((("path", root), ("reason", os_reason(err))),)
    seen = {(top.st_dev, top.st_ino)}  # real folders listed, by device and inode
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as err:
            problems.append((folder, f"unreadable folder ({os_reason(err)})"))
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()  # follows links
                is_file = not is_dir and e.is_file()
            except OSError as err:  # a link loop (ELOOP) or a vanished entry
                problems.append((e.path, os_reason(err)))
                continue
            if is_dir:
                if not recursive:
                    if is_audio_file(e.name):
                        problems.append((e.path, "a folder, not an audio file"))
                    continue
                try:
                    st = e.stat()
                except OSError as err:
                    problems.append((e.path, f"unreadable folder ({os_reason(err)})"))
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    problems.append((e.path, "link to a folder already listed (a loop); not followed"))
                    continue
                seen.add((st.st_dev, st.st_ino))
                stack.append(e.path)  # a folder named x.wav is a folder: listed, never read
            elif is_audio_file(e.name):
                if is_file:
                    found.append(e.path)
                elif e.is_symlink() and not os.path.lexists(os.path.realpath(e.path)):
                    problems.append((e.path, "broken link (its target does not exist)"))
                else:
                    problems.append((e.path, _special_reason(e.path)))
    ordered = tuple((("path", p), ("reason", r)) for p, r in sorted(problems))
    return tuple(sorted(found)), ordered


def _special_reason(path: str) -> str:
    """Why an audio-named entry that is neither a folder nor a regular file is left out."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return os_reason(err)
    if stat.S_ISFIFO(mode):
        return "not a regular file (a named pipe)"
    if stat.S_ISSOCK(mode):
        return "not a regular file (a socket)"
    return "not a regular file (a device)"


def _item(root: Path, path: Path, labels: dict) -> Item:
    # String slicing: Path.relative_to costs ~100 us a file, which adds up over 100k files.
    rel = str(path)[len(str(root)) :].lstrip(os.sep)
    stem = os.path.splitext(rel)[0].replace(os.sep, "/")
    return Item(id=stem, path=path, labels=labels)


def _folder_label(root: Path, path: Path) -> dict:
    parent = os.path.dirname(str(path)[len(str(root)) :].lstrip(os.sep)).replace(os.sep, "/")
    return {"folder": parent} if parent else {}


def _nsynth_items(root: Path) -> tuple[list[Item], Path]:
    meta = root / "examples.json"
    try:
        examples = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LayoutError(f"{meta}: cannot read NSynth metadata ({exc})") from exc
    items = []
    for key, ex in examples.items():
        note = ex.get("note_str", key)
        path = root / ex["file"] if "file" in ex else root / "audio" / f"{note}.wav"
        labels = {k: ex[k] for k in NSYNTH_LABELS if k in ex}
        items.append(Item(id=note, path=path, labels=labels))
    return items, meta


def _subfolders(root: Path) -> list[Path]:
    """Visible sub-folders of ``root`` (links to folders included), sorted.

    Raises:
        LayoutError: ``root`` cannot be listed.
    """
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as err:
        raise LayoutError(root, f"unreadable folder ({os_reason(err)})") from err


def _class_items(root: Path) -> list[Item]:
    """Files below the sub-folders of ``root``, labelled by their top folder; one walk from
    ``root``, so a link inside a class folder never pulls another class's files into it."""
    _subfolders(root)  # an unreadable root is a LayoutError, not an empty data set
    items = []
    for p in audio_files(root):
        top = _top_folder(root, p)
        if top is not None:
            items.append(_item(root, p, {"label": top}))
    return items


def _top_folder(root: Path, path: Path) -> str | None:
    """The first folder of ``path`` below ``root``, or None for a file directly in ``root``."""
    rel = str(path)[len(str(root)) :].lstrip(os.sep)
    head, sep, _ = rel.partition(os.sep)
    return head if sep else None


def _fsdd_items(root: Path) -> tuple[list[Item], Path | None]:
    """Labels from the names; a metadata file naming the files (FSDD forks ship one) adds its
    other columns without overriding label, speaker or take."""
    extra: dict[str, dict] = {}
    meta = find_metadata(root)
    if meta is not None:
        rows = read_metadata(meta)
        col = _file_column(rows)
        extra = {
            os.path.basename(str(r[col])): {k: _coerce(v) for k, v in r.items() if k != col and k is not None}
            for r in rows
        }
    items = []
    for p in audio_files(root, recursive=False):
        m = FSDD_PATTERN.match(p.stem)
        if m:
            labels = {k: m.group(k) for k in ("label", "speaker", "take")}
            labels.update((k, v) for k, v in extra.get(p.name, {}).items() if k not in labels)
            items.append(_item(root, p, labels))
    return items, meta


def find_metadata(root: Path) -> Path | None:
    """The CSV/JSON file in ``root`` whose file column names the most existing audio files."""
    best, best_hits = None, 0
    try:
        candidates = sorted(root.iterdir())
    except OSError:
        return None
    for cand in candidates:
        if cand.suffix.lower() not in (".csv", ".json") or not cand.is_file():
            continue
        try:
            rows = read_metadata(cand)
        except (LayoutError, OSError, UnicodeDecodeError):
            continue
        col = _file_column(rows)
        if col is None:
            continue
        sample = rows[:200]
        hits = sum(1 for r in sample if is_audio_file(str(r[col])) and (root / str(r[col])).is_file())
        if hits > len(sample) / 2 and hits > best_hits:
            best, best_hits = cand, hits
    return best


def read_metadata(path: Path) -> list[dict]:
    """Rows of a metadata CSV (header row) or JSON (list of objects, or {key: object})."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LayoutError(f"{path}: invalid JSON ({exc})") from exc
    if isinstance(data, dict):
        data = list(data.values())
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise LayoutError(f"{path}: expected a list of objects")
    return data


def _file_column(rows: list[dict]) -> str | None:
    if not rows:
        return None
    keys = {k.lower(): k for k in rows[0]}
    for name in FILE_COLUMNS:
        if name in keys:
            return keys[name]
    return None


def _metadata_items(root: Path, meta: Path) -> list[Item]:
    rows = read_metadata(meta)
    col = _file_column(rows)
    items = []
    for row in rows:
        rel = str(row[col])
        labels = {k: _coerce(v) for k, v in row.items() if k != col and k is not None}
        items.append(_item(root, root / rel, labels))
    return items


_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?\Z")


def _coerce(value):
    """CSV cells are text; numbers become int / float so labels compare as numbers.

    Regexes, not try/except: raising two exceptions per text cell cost ~9 us a cell.
    """
    if not isinstance(value, str):
        return value
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value


# ---------------------------------------------------------------------------------- detection


def detect_layout(root: str | os.PathLike) -> str:
    """Guess the layout of ``root`` (see the module docstring for the rules, in order).

    NSynth needs ``examples.json`` and ``audio/``. Two or more sub-folders holding most of the
    audio are class folders when the files are short (an index file beside them does not
    matter), else ``maestro`` (with a metadata file naming the audio) or ``songs``. FSDD needs
    more than 80 % of top-level files to match ``<label>_<speaker>_<take>``; then a metadata file
    naming the audio makes ``maestro``; then long files (median >= 30 s) make ``songs``, anything
    else ``plain``.
    """
    root = Path(root)
    _listing.cache_clear()
    if (root / "examples.json").is_file() and (root / "audio").is_dir():
        return "nsynth"
    _subfolders(root)  # an unreadable root is a LayoutError
    top = audio_files(root, recursive=False)
    nested = Counter(_top_folder(root, p) for p in audio_files(root))
    nested.pop(None, None)
    n_nested = sum(nested.values())
    class_dirs = [d for d, n in nested.items() if n > 0]
    if not top and not n_nested:
        raise LayoutError(f"{root}: no audio files found")
    if len(class_dirs) >= 2 and n_nested > len(top):
        # Sub-folders of one-shots are classes, even with an index file beside them (a sound
        # library); sub-folders of long recordings are albums or years (MAESTRO, songs).
        if _median_seconds(audio_files(root)) < SONG_SECONDS:
            return "classes"
        return "maestro" if find_metadata(root) is not None else "songs"
    if top and sum(bool(FSDD_PATTERN.match(p.stem)) for p in top) > 0.8 * len(top):
        return "fsdd"
    if find_metadata(root) is not None:
        return "maestro"
    return "songs" if _median_seconds(audio_files(root)) >= SONG_SECONDS else "plain"


def _median_seconds(paths: list[Path], sample: int = 16) -> float:
    """Median duration of up to ``sample`` evenly spread readable files (0 if none)."""
    step = max(1, len(paths) // sample)
    seconds = []
    for p in paths[::step][:sample]:
        try:
            seconds.append(audio_info(p).duration_s)
        except AudioError:
            continue
    return statistics.median(seconds) if seconds else 0.0
