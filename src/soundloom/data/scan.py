"""Pre-flight scan of a data set: what is there, and which files are bad and why.

Every file is decoded block by block and checked with the audio core's rules
(:func:`~soundloom.core.io.check_audio_file`: bounded memory for any length), so the reasons
are the ones :class:`~soundloom.core.io.AudioError` gives: unreadable, empty, non-finite
samples, too short, silent. What the folder walk could not use (unreadable folders, broken or
looping links, a folder named like audio) is reported too. A bad file never stops a scan.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.io import AudioError, check_audio_file, os_reason
from ..core.progress import ProgressCallback, null_progress
from .layouts import Dataset, discover
from .workers import worker_pool

#: Distinct values of a label listed in full; beyond this the report keeps the most common.
MAX_LABEL_VALUES = 50
#: A class-like label value with fewer usable files than this is worth a warning.
RARE_CLASS_FILES = 5


@dataclass
class ScanReport:
    """Summary of a data set.

    Attributes:
        labels: label name -> {value: files} over usable files (only the most common
            ``MAX_LABEL_VALUES`` values); ``label_distinct`` gives the full count of values.
        duration_s: min / median / mean / max / total seconds of usable files.
        sample_rates: rate in Hz (as text) -> files; ``channels`` likewise.
        bad: ``{"path", "kind", "reason"}`` per unusable file, kind one of unreadable, empty,
            non-finite, too-short, silent, missing, failed.
        warnings: things that work but deserve a look (rare classes, mixed sample rates).
    """

    root: str
    layout: str
    n_files: int
    n_ok: int
    labels: dict = field(default_factory=dict)
    label_distinct: dict = field(default_factory=dict)
    duration_s: dict = field(default_factory=dict)
    sample_rates: dict = field(default_factory=dict)
    channels: dict = field(default_factory=dict)
    bad: list = field(default_factory=list)
    bad_kinds: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


#: Reason heads -> report kinds.
_KINDS = {
    "non-finite samples": "non-finite",
    "non-finite features": "non-finite",
    "too short": "too-short",
    "not a decodable audio file": "unreadable",
    "permission denied": "unreadable",
    "unreadable folder": "unreadable",
    "a folder, not an audio file": "not-audio",
    "not a regular file": "not-audio",
    "broken link": "link",
    "link loop": "link",
    "link to a folder already listed": "link",
}


def reason_kind(reason: str) -> str:
    """Short class of an :class:`AudioError` reason: "too short (0.01 s < 0.05 s)" -> "too-short"."""
    head = reason.split(" (")[0].split(";")[0].strip()
    return _KINDS.get(head, head)


def check_file(path: str, min_seconds: float = 0.05, silence_db: float | None = -80.0) -> dict:
    """Decode ``path`` (block by block) and check it.

    Returns:
        ``{"sample_rate", "channels", "duration_s"}`` for a usable file, else ``{"reason"}``.
    """
    try:
        info = check_audio_file(path, min_seconds=min_seconds, silence_db=silence_db)
    except AudioError as err:
        return {"reason": err.reason}
    except OSError as err:
        return {"reason": os_reason(err)}
    except Exception as err:  # a decoder surprise is a bad file, not a failed scan
        return {"reason": f"failed ({type(err).__name__}: {str(err)[:200]})"}
    return {"sample_rate": info.sample_rate, "channels": info.channels, "duration_s": info.duration_s}


def _check_batch(paths: list[str], min_seconds: float, silence_db: float | None) -> list[dict]:
    return [check_file(p, min_seconds, silence_db) for p in paths]


def scan(
    source: str | os.PathLike | Dataset,
    layout: str | None = None,
    min_seconds: float = 0.05,
    silence_db: float | None = -80.0,
    workers: int | None = None,
    batch_size: int = 64,
    progress: ProgressCallback = null_progress,
) -> ScanReport:
    """Decode and check every file of a data set; see :class:`ScanReport`.

    Args:
        source: a folder (layout detected unless ``layout`` is given) or a discovered Dataset.
        min_seconds: files shorter than this are "too short".
        silence_db: files whose peak is at or below this (dBFS) are "silent"; None allows them.
        workers: processes that decode (default: all cores).
        progress: called as ``progress("scan", files_done, files_total)``.
    """
    from .prepare import default_workers

    t0 = time.perf_counter()
    dataset = source if isinstance(source, Dataset) else discover(source, layout, with_info=False)
    paths = [str(it.path) for it in dataset.items]
    workers = default_workers() if workers is None else max(1, int(workers))
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    results: list[dict] = []
    progress("scan", 0, len(paths))
    if workers == 1 or len(batches) <= 1:
        for b in batches:
            results += _check_batch(b, min_seconds, silence_db)
            progress("scan", len(results), len(paths))
    else:
        with worker_pool(min(workers, len(batches))) as pool:
            futures = [pool.submit(_check_batch, b, min_seconds, silence_db) for b in batches]
            for fut in futures:  # in order, so results line up with paths
                results += fut.result()
                progress("scan", len(results), len(paths))
    return _report(dataset, results, time.perf_counter() - t0)


def _report(dataset: Dataset, results: list[dict], seconds: float) -> ScanReport:
    ok = [(it, r) for it, r in zip(dataset.items, results) if "reason" not in r]
    bad = [
        {"path": str(it.path), "kind": reason_kind(r["reason"]), "reason": r["reason"]}
        for it, r in zip(dataset.items, results)
        if "reason" in r
    ]
    bad += [{"path": s["path"], "kind": reason_kind(s["reason"]), "reason": s["reason"]} for s in dataset.skipped]
    labels, distinct = {}, {}
    for name in dataset.label_names():
        counts = Counter(it.labels[name] for it, _ in ok if name in it.labels)
        distinct[name] = len(counts)
        labels[name] = {str(k): v for k, v in sorted(counts.most_common(MAX_LABEL_VALUES), key=_label_order)}
    durations = [r["duration_s"] for _, r in ok]
    duration = {}
    if durations:
        duration = {
            "min": min(durations),
            "median": statistics.median(durations),
            "mean": statistics.fmean(durations),
            "max": max(durations),
            "total": sum(durations),
        }
    rates = Counter(str(r["sample_rate"]) for _, r in ok)
    channels = Counter(str(r["channels"]) for _, r in ok)
    warnings = []
    for name, counts in labels.items():
        rare = [k for k, v in counts.items() if v < RARE_CLASS_FILES]
        if distinct[name] <= MAX_LABEL_VALUES and rare:
            warnings.append(
                f"label {name!r}: {len(rare)} value(s) with fewer than {RARE_CLASS_FILES} files: "
                + ", ".join(f"{k} ({counts[k]})" for k in rare[:10])
            )
    if len(rates) > 1:
        warnings.append(f"{len(rates)} sample rates; prepare resamples all to one")
    return ScanReport(
        root=str(Path(dataset.root)),
        layout=dataset.layout,
        n_files=len(results) + len(dataset.skipped),
        n_ok=len(ok),
        labels=labels,
        label_distinct=distinct,
        duration_s=duration,
        sample_rates=dict(sorted(rates.items(), key=lambda kv: int(kv[0]))),
        channels=dict(sorted(channels.items())),
        bad=bad,
        bad_kinds=dict(Counter(b["kind"] for b in bad)),
        warnings=warnings,
        seconds=seconds,
    )


def _label_order(kv: tuple) -> tuple:
    """Numbers in numeric order, then text; keeps "2" before "10"."""
    key = kv[0]
    try:
        return (0, float(key), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(key))
