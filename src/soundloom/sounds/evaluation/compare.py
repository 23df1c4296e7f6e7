"""Compare trained runs on one table: the same reference, the same fixed space, the same judge.

    soundloom compare runs/cvae runs/vae --classifier runs/clf [--json] [--n-per-label 20]

The reference (held-out real items of the first run, through its front end and Griffin-Lim) and
the fixed feature space fitted on it are built once; every run's sounds come from its public
:class:`~soundloom.sounds.generator.Generator`, so any model kind is judged the same way. Each
row: model kind, parameters, training time (``metrics.csv``), generation speed (seconds of
audio per CPU second, phase reconstruction included), recognition accuracy, FD ratio,
within-class diversity and precision / recall in the fixed space (and in the classifier's),
the worst class's spectral floor gap and, for pitched runs, pitch accuracy.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ...core.errors import ParameterError
from ...core.progress import ProgressCallback, null_progress
from ...data.store import FeatureStore
from ..generator import Generator
from .fixed_space import FixedFeatureSpace
from .judge import build_reference, generate_like, generation_speed, judge
from .report import classifier_record, classifier_scorer, reference_record, split_rows


def training_progress(run_dir: str | os.PathLike) -> tuple[float | None, int | None]:
    """Wall seconds and optimizer steps of training from the last row of ``metrics.csv`` (None when
    absent). Steps matter beside seconds: on a shared machine a wall-clock budget buys fewer of them."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return None, None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return (float(rows[-1]["elapsed_s"]), int(rows[-1]["step"])) if rows else (None, None)
    except (KeyError, ValueError):
        return None, None


def compare_runs(
    run_dirs: Sequence[str | os.PathLike],
    classifier_dir: str | os.PathLike | None = None,
    n_per_label: int | None = None,
    temperature: float = 1.0,
    prior: str = "fitted",
    griffin_lim_iters: int | None = None,
    speed_items: int = 16,
    seed: int = 0,
    progress: ProgressCallback = null_progress,
) -> dict:
    """One row per run, all judged against the first run's reference in one fitted fixed space.

    Returns:
        ``{"reference", "classifier" (or None), "temperature", "rows"}``; each row has the
        headline numbers (``None`` where a measure does not apply), ``"summary"`` (everything
        :func:`.judge.judge` summarised) and ``"warning"`` when the run trained on another store.
    """
    if not run_dirs:
        raise ParameterError("compare needs at least one run directory")
    if speed_items < 1:
        raise ParameterError(f"speed_items must be >= 1, got {speed_items}")
    first = Generator.from_run(run_dirs[0], griffin_lim_iters=griffin_lim_iters, level="raw")
    info = first.info
    store = FeatureStore.open(info["store"])
    _, val_rows = split_rows(store, info)
    val_groups = sorted(info.get("val_groups", []))
    total = 1 + len(run_dirs)
    progress("compare: reference", 0, total)
    ref = build_reference(
        first, store, val_rows, info.get("label_key"), info.get("group_key"), griffin_lim_iters, val_groups
    )
    space = FixedFeatureSpace().fit(list(ref.clips), ref.sample_rate)
    out: dict = {"reference": {"run": info["run"], **reference_record(ref, space)}, "temperature": temperature}
    scorer = ref_scores = clf_info = None
    classes: list[str] = []
    if classifier_dir is not None:
        scorer, record, classes = classifier_scorer(classifier_dir, first)
        clf_info = classifier_record(classifier_dir, record, val_groups)
        ref_scores = scorer.audio(torch.from_numpy(ref.clips))
    out["classifier"] = clf_info
    rows = []
    for i, run in enumerate(run_dirs):
        progress(f"compare: {Path(run).name}", 1 + i, total)
        gen = first if i == 0 else Generator.from_run(run, griffin_lim_iters=griffin_lim_iters, level="raw")
        run_scorer = None
        if scorer is not None:
            # The same classifier, fed through this run's front end (equal to the first's on one store).
            run_scorer = scorer if i == 0 else classifier_scorer(classifier_dir, gen)[0]
        made = generate_like(gen, ref, n_per_label, temperature, seed, prior)
        result = judge(ref, made, space, run_scorer and run_scorer.audio, classes, ref_scores, seed)
        rows.append(_row(run, gen, result, generation_speed(gen, speed_items, seed), store))
    progress("compare: done", total, total)
    out["rows"] = rows
    return out


def _row(run: str | os.PathLike, gen: Generator, result: dict, speed: dict, store: FeatureStore) -> dict:
    s = result["summary"]
    seconds, steps = training_progress(run)
    row = {
        "run": str(Path(run).resolve()),
        "name": Path(run).name,
        "model": gen.model.cfg.kind,
        "parameters": int(sum(p.numel() for p in gen.model.parameters())),
        "train_seconds": seconds,
        "train_cpu_seconds": gen.info.get("training", {}).get("cpu_s_total"),
        "train_steps": steps,
        "train_max_minutes": gen.info.get("train", {}).get("max_minutes"),
        "audio_s_per_cpu_s": speed["audio_s_per_cpu_s"],
        "items": result["items"],
        "accuracy": s.get("accuracy"),
        "fixed_fd_ratio": s["fixed_fd_ratio"],
        "fixed_diversity_within_class": s["fixed_diversity_within_class"],
        "fixed_precision": s["fixed_precision"],
        "fixed_recall": s["fixed_recall"],
        "classifier_fd_ratio": s.get("classifier_fd_ratio"),
        "classifier_diversity_within_class": s.get("classifier_diversity_within_class"),
        "classifier_precision": s.get("classifier_precision"),
        "classifier_recall": s.get("classifier_recall"),
        "spectral_floor_gap_db": s["spectral_floor_gap_db"],
        "spectral_floor_worst_class": (s["spectral_floor_weakest"] or {}).get("class"),
        "spectral_floor_raw_gap_db": (s.get("spectral_floor_raw_weakest") or {}).get("delta_raw_db"),
        "pitch_accuracy": s.get("pitch_accuracy"),
        "summary": s,
    }
    if Path(gen.info["store"]).resolve() != Path(store.path).resolve():
        row["warning"] = f"trained on {gen.info['store']}, judged against the reference of {store.path}"
    return row


COLUMNS = (
    ("name", "run", "{}"),
    ("model", "kind", "{}"),
    ("parameters", "params", "{:,}"),
    ("train_seconds", "train s", "{:.0f}"),
    ("train_cpu_seconds", "CPU s", "{:.0f}"),
    ("train_steps", "steps", "{}"),
    ("audio_s_per_cpu_s", "audio s/CPU s", "{:.1f}"),
    ("accuracy", "acc", "{:.3f}"),
    ("fixed_fd_ratio", "FD ratio", "{:.2f}"),
    ("fixed_diversity_within_class", "div/cls", "{:.2f}"),
    ("fixed_precision", "prec", "{:.2f}"),
    ("fixed_recall", "recall", "{:.2f}"),
    ("classifier_fd_ratio", "clf FD", "{:.2f}"),
    ("classifier_diversity_within_class", "clf div", "{:.2f}"),
    ("classifier_precision", "clf prec", "{:.2f}"),
    ("classifier_recall", "clf rec", "{:.2f}"),
    ("spectral_floor_gap_db", "floor gap dB", "{:+.1f}"),
    ("spectral_floor_raw_gap_db", "rec. floor dB", "{:+.1f}"),
    ("pitch_accuracy", "pitch", "{:.3f}"),
)

LEGEND = (
    "acc: classifier hears the asked class | FD ratio: FD(generated, real) / FD(real, real), 1 = like unseen real | "
    "div/cls: generated / real spread within a class (< 1 collapse) | prec / recall: generated inside real "
    "neighbourhoods / real covered | clf *: the same in the classifier's embedding | floor gap: worst class's "
    "spectral floor, generated minus real (> 0 = noise) | rec. floor: the class furthest from the recorded "
    "clips' floor (either way; the real clips through the front end carry its floor) | audio s/CPU s: generation "
    "speed on one core | CPU s: training CPU seconds, every stage included"
)


def table_lines(result: dict) -> list[str]:
    """The rows of :func:`compare_runs` as an aligned text table (columns with no value dropped) and a legend."""
    rows = result["rows"]
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    cells = [[head for _, head, _ in cols]]
    for r in rows:
        cells.append([("-" if r.get(key) is None else fmt.format(r[key])) for key, _, fmt in cols])
    widths = [max(len(row[j]) for row in cells) for j in range(len(cols))]
    lines = [
        "  ".join(cell.rjust(w) if j else cell.ljust(w) for j, (cell, w) in enumerate(zip(row, widths)))
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    ref = result["reference"]
    lines.append(
        f"reference: {ref['items']} held-out real items of {Path(ref['run']).name} through front end + Griffin-Lim, "
        f"baselines split {ref['baseline_split']}; T={result['temperature']}"
    )
    lines.append(LEGEND)
    return lines + [f"warning ({r['name']}): {r['warning']}" for r in rows if r.get("warning")]
