"""The independent judge of a run's generated sounds, shared by ``soundloom eval`` and ``compare``.

A :class:`Reference` is real held-out audio passed through the run's front end and Griffin-Lim
(the best the pipeline can render). :func:`generate_like` asks the run's
:class:`~soundloom.sounds.generator.Generator` for sounds under the reference's conditions
(labels, MIDI pitches), timing the calls in CPU seconds. :func:`judge` then scores them in two
spaces side by side:

- the fixed feature space (:class:`~.fixed_space.FixedFeatureSpace`, fitted on the reference
  only): FD ratio to a real-vs-real baseline, precision / recall, NDB, within-class diversity and
  the per-class spectral floor (:func:`~.fidelity.compare_sets`);
- the evaluation classifier's embedding (optional): accuracy, IS and the same embedding measures;

plus pitch accuracy (pYIN, within 50 cents) when the run is pitch-conditioned.

    ref = build_reference(gen, store, rows, label_key, group_key, griffin_lim_iters=None)
    space = FixedFeatureSpace().fit(ref.clips, ref.sample_rate)
    made = generate_like(gen, ref, n_per_label=None, temperature=1.0, seed=0)
    result = judge(ref, made, space, scorer)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...core.errors import ParameterError
from ...data.prepare import recorded_clips
from ...data.store import FeatureStore
from ..decode import features_to_audio
from ..generator import Generator
from ..models import protocol
from . import metrics as M
from .fidelity import (
    compare_sets,
    diversity_by_class,
    frechet_with_baseline,
    ndb_with_baseline,
    precision_recall,
)
from .fixed_space import FixedFeatureSpace
from .pitch import contour_error_cents, pitch_accuracy

# (N, samples) audio at the model rate -> (probabilities (N, classes), embeddings (N, D)).
Scorer = Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]


@dataclass
class Reference:
    """Real held-out items rendered through the front end and Griffin-Lim.

    Attributes:
        clips: ``(N, samples)`` float32 at ``sample_rate`` Hz.
        labels: class per clip (``"all"`` when the data has no class label).
        groups: group per clip (speaker, instrument) or None; None too when fewer than two
            groups are held out, since a baseline split needs whole groups on both sides.
        pitches: MIDI pitch per clip, or None for unpitched data.
        features: the real items' normalised features ``(N, rows, frames)``.
        group_key, heldout_groups: where the groups came from.
        raw: the same items as recorded ``(N, samples)`` (each file cut as ``prepare`` cut it, not through the
            front end), or None when a file can no longer be read.
        floor: the larger set the spectral floor is judged on (:class:`FloorSet`), or None: then the held-out
            items above.
    """

    clips: np.ndarray
    sample_rate: int
    labels: list[str]
    groups: list[str] | None
    pitches: np.ndarray | None
    features: torch.Tensor
    group_key: str | None
    heldout_groups: list[str]
    raw: np.ndarray | None = None
    floor: FloorSet | None = None


# Items a class the spectral floor is judged on. A class's real floors spread widely (the built-in bells' from
# -101 to -49 dB, interquartile -79..-59 over 40 clips), so the median of the 2-6 held-out clips a class that a
# 10 % item split leaves could land 20 dB from the class's (README).
FLOOR_PER_CLASS = 64


@dataclass
class FloorSet:
    """Real items the spectral floor is judged on: every item of each class up to :data:`FLOOR_PER_CLASS`, the
    held-out ones first, so a class's median rests on more than a handful of clips. The floor is a property of a
    class's sound, not of which items the model saw; copying training items would match held-out floors as well.

    Attributes:
        rendered: ``(N, samples)`` through the run's front end and Griffin-Lim.
        recorded: ``(N, samples)`` as recorded (cut as ``prepare`` cut them), or None when a file is unreadable.
        labels: class per item.
        heldout: how many of the N are held-out items.
    """

    rendered: np.ndarray
    recorded: np.ndarray | None
    labels: list[str]
    heldout: int


@dataclass
class GeneratedSet:
    """Generated clips ``(M, samples)`` with the condition asked for each, and what they cost."""

    clips: np.ndarray
    sample_rate: int
    labels: list[str] | None  # None: the model takes no label
    pitches: np.ndarray | None
    cpu_s: float

    @property
    def audio_s(self) -> float:
        return float(self.clips.shape[0] * self.clips.shape[1] / self.sample_rate)


def render_features(
    gen: Generator, feat: torch.Tensor, iters: int | None, chunk: int = 128, labels: Sequence[str] | None = None
) -> torch.Tensor:
    """Batched Griffin-Lim of normalised features ``(N, rows, frames)`` -> ``(N, samples)`` (no levelling). With
    ``labels`` (one per item), each item starts with the fade-in the run gives its class's sounds (its post-filter's
    ``fade_in_s``), so that a reference differs from generated sounds by its features, not by how it is rendered."""
    wav = torch.cat(
        [
            features_to_audio(feat[i : i + chunk], gen.normalizer, gen.spec, gen.n_samples, iters)
            for i in range(0, len(feat), chunk)
        ]
    )
    if labels is None or gen.postfilter is None:
        return wav
    return torch.from_numpy(gen.postfilter.fade(wav.numpy(), list(labels), gen.spec.sample_rate))


@torch.no_grad()
def build_reference(
    gen: Generator,
    store: FeatureStore,
    rows: np.ndarray,
    label_key: str | None,
    group_key: str | None,
    griffin_lim_iters: int | None,
    heldout_groups: Sequence[str] = (),
    recorded: bool = True,
    floor_per_class: int = FLOOR_PER_CLASS,
) -> Reference:
    """The reference of real store items ``rows`` rendered as the run renders its own output, and (``recorded``)
    the same items read again from their files (:func:`recorded_clips`), with the floor set
    (:func:`floor_rows`, ``floor_per_class`` items a class; 0: none, the floor is judged on ``rows``)."""
    rows = np.sort(np.asarray(rows))
    if len(rows) < 4:
        raise ParameterError(f"{store.path}: the reference needs at least 4 held-out items, got {len(rows)}")
    feat = torch.from_numpy(store.normalized(rows))
    labels = [str(v) for v in np.asarray(store.labels(label_key), dtype=object)[rows]] if label_key else None
    clips = render_features(gen, feat, griffin_lim_iters, labels=labels or ["all"] * len(rows))
    clips = clips.numpy().astype(np.float32)
    groups = None
    if group_key:
        g = [str(v) for v in np.asarray(store.labels(group_key), dtype=object)[rows]]
        groups = g if len(set(g)) >= 2 else None
    pitches = None
    if getattr(gen.model, "pitch_conditioned", False) and "pitch" in store.label_names():
        pitches = np.array([int(p) for p in store.labels("pitch")])[rows]
    picked = floor_rows(store, rows, label_key, floor_per_class) if floor_per_class > 0 else rows[:0]
    # Each file read once: the held-out items' recordings and the floor set's (which holds most of them).
    both = np.union1d(rows, picked)
    recordings = recorded_clips(store, both) if recorded else None
    raw = None if recordings is None else recordings[np.searchsorted(both, rows)]
    floor = None
    if floor_per_class > 0:
        floor_feat = torch.from_numpy(store.normalized(picked))
        names = np.asarray(store.labels(label_key), dtype=object)[picked] if label_key else ["all"] * len(picked)
        floor = FloorSet(
            render_features(gen, floor_feat, griffin_lim_iters, labels=[str(v) for v in names])
            .numpy()
            .astype(np.float32),
            None if recordings is None else recordings[np.searchsorted(both, picked)],
            [str(v) for v in names],
            int(np.isin(picked, rows).sum()),
        )
    return Reference(
        clips,
        gen.spec.sample_rate,
        labels or ["all"] * len(rows),
        groups,
        pitches,
        feat,
        group_key,
        sorted(heldout_groups),
        raw,
        floor,
    )


def floor_rows(
    store: FeatureStore, heldout: np.ndarray, label_key: str | None, per_class: int = FLOOR_PER_CLASS, seed: int = 0
) -> np.ndarray:
    """Sorted store rows of the floor set: per class (one class without ``label_key``) its held-out rows, then its
    other rows in a seeded order, ``per_class`` at most."""
    names = np.asarray([str(v) for v in store.labels(label_key)]) if label_key else np.full(len(store), "all")
    held = np.zeros(len(store), dtype=bool)
    held[np.asarray(heldout, dtype=int)] = True
    order = np.random.default_rng(seed).permutation(len(store))
    order = np.concatenate([order[held[order]], order[~held[order]]])  # held-out first, each part seeded
    picked = []
    for c in sorted(set(names)):
        picked.extend(order[names[order] == c][:per_class].tolist())
    return np.sort(np.asarray(picked, dtype=int))


def _conditions(gen: Generator, ref: Reference, n_per_label: int | None) -> list[tuple[str | None, int | None, int]]:
    """``(label, pitch, count)`` calls to the generator: the reference's label (and pitch) mix.

    A label-conditioned model gets ``n_per_label`` (default: the reference's count) per label it
    knows; pitches cycle through the reference's pitches of that label. A model without labels
    gets as many sounds as the reference in one call (pitches still cycled when it takes one).
    """
    pitched = ref.pitches is not None
    conditioned = bool(gen.labels) and gen.model.label_conditioned
    labels = np.asarray(ref.labels)
    calls: dict[tuple[str | None, int | None], int] = {}
    targets: list[tuple[str | None, int]] = []
    if conditioned:
        for name in gen.labels:
            count = int((labels == name).sum())
            targets.append((name, int(n_per_label) if n_per_label else max(2, count)))
    else:
        per = int(n_per_label) * max(1, len(set(ref.labels))) if n_per_label else len(labels)
        targets.append((None, per))
    for name, n in targets:
        if not pitched:
            calls[(name, None)] = n
            continue
        pool = ref.pitches[labels == name] if name is not None and (labels == name).any() else ref.pitches
        for i in range(n):
            key = (name, int(pool[i % len(pool)]))
            calls[key] = calls.get(key, 0) + 1
    return [(name, pitch, n) for (name, pitch), n in calls.items()]


def generate_like(
    gen: Generator,
    ref: Reference,
    n_per_label: int | None,
    temperature: float,
    seed: int,
    prior: str = "fitted",
) -> GeneratedSet:
    """Sounds from ``gen`` under the reference's conditions; ``cpu_s`` is process CPU time of the calls."""
    clips, labels, pitches, cpu = [], [], [], 0.0
    options = {} if prior == "fitted" else {"prior": prior}  # the default keeps to Generator.sample's core API
    for i, (name, pitch, n) in enumerate(_conditions(gen, ref, n_per_label)):
        start = time.process_time()
        sounds = gen.sample(n, label=name, temperature=temperature, seed=seed + 1000 * i, pitch=pitch, **options)
        cpu += time.process_time() - start
        clips += [np.asarray(s.audio, dtype=np.float32) for s in sounds]
        labels += [name] * n
        pitches += [pitch] * n
    n_samples = max(len(c) for c in clips)
    clips = [np.pad(c, (0, n_samples - len(c))) for c in clips]
    return GeneratedSet(
        np.stack(clips),
        gen.sample_rate,
        None if labels[0] is None else [str(v) for v in labels],
        None if pitches[0] is None else np.asarray(pitches),
        cpu,
    )


def generation_speed(gen: Generator, n: int = 16, seed: int = 0) -> dict:
    """Seconds of audio made per CPU second (``time.process_time``, all threads) by one
    ``gen.sample(n)`` call, phase reconstruction included; 1.0 = real time on one core."""
    gen.sample(1, seed=seed)  # warm-up: first calls allocate and load kernels
    start = time.process_time()
    sounds = gen.sample(n, seed=seed)
    cpu = time.process_time() - start
    audio_s = sum(len(s.audio) / s.sample_rate for s in sounds)
    return {"items": n, "audio_s": audio_s, "cpu_s": cpu, "audio_s_per_cpu_s": audio_s / max(cpu, 1e-9)}


def embedding_measures(
    emb_r: np.ndarray,
    emb_g: np.ndarray,
    labels_r: Sequence[str],
    labels_g: Sequence[str],
    groups_r: Sequence[str] | None,
    k: int = 3,
    seed: int = 0,
) -> dict:
    """FD ratio to a real-vs-real baseline, precision / recall, NDB and within-class diversity of
    embeddings ``(N, D)`` / ``(M, D)`` (the measures of :func:`~.fidelity.compare_sets` without audio)."""
    frechet = frechet_with_baseline(emb_r, emb_g, groups_real=groups_r, seed=seed)
    pr = precision_recall(emb_r, emb_g, k=k, seed=seed)
    ndb = ndb_with_baseline(emb_r, emb_g, groups_real=groups_r, seed=seed)
    div = diversity_by_class(emb_r, emb_g, labels_r, labels_g)
    ratios = [v["ratio"] for v in div.values() if np.isfinite(v["ratio"])]
    return {
        "frechet": frechet,
        "precision_recall": pr,
        "ndb": ndb,
        "diversity_per_class": div,
        "summary": {
            "fd_ratio": frechet["ratio"],
            "precision": pr["precision"],
            "recall": pr["recall"],
            "ndb_fraction": ndb["fraction"],
            "diversity_within_class": float(np.mean(ratios)) if ratios else float("nan"),
        },
    }


def _weakest(per_class: dict[str, float]) -> dict | None:
    """The class with the lowest value of ``per_class``, or None when empty."""
    if not per_class:
        return None
    worst = min(per_class, key=per_class.get)
    return {"class": worst, "value": per_class[worst]}


def classifier_measures(
    scorer: Scorer,
    ref: Reference,
    made: GeneratedSet,
    classes: Sequence[str],
    ref_scores: tuple[np.ndarray, np.ndarray],
    seed: int = 0,
) -> tuple[dict, list[str]]:
    """Accuracy (label-conditioned runs), IS and the embedding measures in the classifier's space,
    and the classifier's label for each generated clip.

    A run without labels has its sounds labelled by the classifier's choice, so per-class
    diversity compares what it made of each class with the real class.
    """
    ref_probs, ref_emb = ref_scores
    probs, emb = scorer(torch.from_numpy(made.clips))
    pred = [classes[i] for i in probs.argmax(1)]
    labels_g = made.labels if made.labels is not None else pred
    out = {
        "inception_score": M.inception_score(probs),
        "reference_inception_score": M.inception_score(ref_probs),
        "reference_accuracy": float(np.mean([classes[i] == y for i, y in zip(ref_probs.argmax(1), ref.labels)])),
        **embedding_measures(ref_emb, emb, ref.labels, labels_g, ref.groups, seed=seed),
    }
    if made.labels is not None:
        hits = np.array([p == y for p, y in zip(pred, made.labels)])
        per = {c: float(hits[np.asarray(made.labels) == c].mean()) for c in sorted(set(made.labels))}
        out["accuracy"] = float(hits.mean())
        out["accuracy_per_class"] = per
        out["summary"]["accuracy"] = out["accuracy"]
        out["summary"]["accuracy_weakest"] = _weakest(per)
    return out, pred


def pitch_measures(ref: Reference, made: GeneratedSet) -> dict:
    """Pitch accuracy (pYIN median f0 within 50 cents of the asked MIDI pitch) of the generated
    clips, per class, next to the same measure of the reference clips against their own pitches."""
    gen = pitch_accuracy(list(made.clips), made.sample_rate, made.pitches)
    real = pitch_accuracy(list(ref.clips), ref.sample_rate, ref.pitches)
    labels = made.labels or ["all"] * len(made.clips)
    hits = np.array([c["hit"] for c in gen["per_clip"]])
    per = {c: float(hits[np.asarray(labels) == c].mean()) for c in sorted(set(labels))}
    return {
        "accuracy": gen["accuracy"],
        "unvoiced": gen["unvoiced"],
        "n": gen["n"],
        "tolerance_cents": gen["tolerance_cents"],
        "reference_accuracy": real["accuracy"],
        "reference_unvoiced": real["unvoiced"],
        "per_class": per,
        "weakest": _weakest(per),
    }


def continuation_contour(
    gen: Generator,
    recordings: Sequence[np.ndarray],
    sample_rate: int,
    labels: Sequence[str | None],
    pitches: Sequence[int],
    prompt_fraction: float = 0.4,
    seed: int = 0,
) -> dict:
    """f0 contour error of continuations: the first ``prompt_fraction`` of each real recording
    ``(samples,)`` at ``sample_rate`` Hz is the prompt, the run continues it to the recording's
    length, and the continued part's pYIN contour is compared with the recording's own (cents).

    Returns:
        ``{"items", "prompt_fraction", "median_cents", "no_overlap", "per_pair"}`` (see
        :func:`.pitch.contour_error_cents`), or ``{"skipped": reason}`` for a kind that cannot continue.
    """
    if not protocol.supports(gen.model, "continuable"):
        return {"skipped": f"a {gen.model.cfg.kind} model cannot continue a prompt"}
    if not 0 < prompt_fraction < 1:
        raise ParameterError(f"prompt_fraction must be in (0, 1), got {prompt_fraction}")
    conditioned = bool(gen.labels) and gen.model.label_conditioned
    made, truth = [], []
    for i, (wav, label, pitch) in enumerate(zip(recordings, labels, pitches)):
        wav = np.asarray(wav, dtype=np.float32)
        cut = int(round(prompt_fraction * len(wav)))
        sound = gen.continue_(
            wav[:cut],
            sample_rate,
            len(wav) / sample_rate,
            label=label if conditioned else None,
            pitch=int(pitch),
            seed=seed + i,
        )[0]
        out = np.asarray(sound.audio, dtype=np.float32)[cut : len(wav)]
        made.append(np.pad(out, (0, len(wav) - cut - len(out))))
        truth.append(wav[cut:])
    hz = 440.0 * 2.0 ** ((np.asarray(pitches, dtype=np.float64) - 69.0) / 12.0)
    result = contour_error_cents(made, truth, sample_rate, fmin_hz=float(hz.min()) / 2, fmax_hz=float(hz.max()) * 2)
    return {"items": len(made), "prompt_fraction": prompt_fraction, **result}


def judge(
    ref: Reference,
    made: GeneratedSet,
    space: FixedFeatureSpace,
    scorer: Scorer | None = None,
    classes: Sequence[str] = (),
    ref_scores: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> dict:
    """Score ``made`` against ``ref`` in the fixed space (and the classifier's, given ``scorer``).

    Returns:
        ``{"items", "cpu_s", "audio_s_per_cpu_s", "fixed_space", "classifier_space" (or None),
        "pitch" (or None), "summary"}``; ``summary`` gathers the headline numbers and the weakest
        class of each per-class measure.
    """
    if not space.fitted:
        raise ParameterError("the fixed space must be fitted on the reference before judging")
    clf, pred = None, None
    if scorer is not None:
        scores = ref_scores or scorer(torch.from_numpy(ref.clips))
        clf, pred = classifier_measures(scorer, ref, made, classes, scores, seed)
    labels_g = made.labels or pred or ["all"] * len(made.clips)
    labels_r = ref.labels if (made.labels is not None or clf is not None) else ["all"] * len(ref.clips)
    fixed = compare_sets(
        list(ref.clips),
        list(made.clips),
        labels_r,
        labels_g,
        space,
        sample_rate=ref.sample_rate,
        generated_rate=made.sample_rate,
        groups_real=ref.groups,
        seed=seed,
        real_raw=None if ref.raw is None else list(ref.raw),
        floor_set=None if ref.floor is None else (ref.floor.rendered, ref.floor.recorded, ref.floor.labels),
    )
    fixed.pop("space")  # the same for every set: reported once by the caller
    pitch = pitch_measures(ref, made) if made.pitches is not None and ref.pitches is not None else None
    s = fixed["summary"]
    floor = s.get("spectral_floor_weakest")
    summary = {
        "fixed_fd_ratio": s["fd_ratio"],
        "fixed_precision": s["precision"],
        "fixed_recall": s["recall"],
        "fixed_ndb_fraction": s["ndb_fraction"],
        "fixed_ndb_baseline_fraction": fixed["ndb"]["baseline_fraction"],
        "fixed_diversity_within_class": s["diversity_within_class"],
        "fixed_diversity_weakest": s.get("diversity_weakest"),
        "fixed_precision_weakest": s.get("precision_weakest"),
        "fixed_recall_weakest": s.get("recall_weakest"),
        "spectral_floor_weakest": floor,
        "spectral_floor_gap_db": None if floor is None else floor["delta_db"],
        "spectral_floor_raw_weakest": s.get("spectral_floor_raw_weakest"),
        "missing_classes": s["missing_classes"],
    }
    if clf is not None:
        cs = clf["summary"]
        summary.update(
            {
                "accuracy": clf.get("accuracy"),
                "accuracy_weakest": cs.get("accuracy_weakest"),
                "classifier_fd_ratio": cs["fd_ratio"],
                "classifier_precision": cs["precision"],
                "classifier_recall": cs["recall"],
                "classifier_diversity_within_class": cs["diversity_within_class"],
            }
        )
    if pitch is not None:
        summary["pitch_accuracy"] = pitch["accuracy"]
        summary["pitch_accuracy_reference"] = pitch["reference_accuracy"]
        summary["pitch_weakest"] = pitch["weakest"]
    return {
        "items": int(len(made.clips)),
        "cpu_s": made.cpu_s,
        "audio_s_per_cpu_s": made.audio_s / max(made.cpu_s, 1e-9),
        "labels_from": "asked" if made.labels is not None else ("classifier" if clf is not None else "none"),
        "fixed_space": fixed,
        "classifier_space": clf,
        "pitch": pitch,
        "summary": summary,
    }


__all__ = [
    "FLOOR_PER_CLASS",
    "FloorSet",
    "GeneratedSet",
    "Reference",
    "build_reference",
    "floor_rows",
    "classifier_measures",
    "continuation_contour",
    "embedding_measures",
    "generate_like",
    "generation_speed",
    "judge",
    "pitch_measures",
    "render_features",
]
