"""Fidelity and diversity of generated sounds against a real reference, in a fixed feature space.

Nothing here looks at the model: every measure takes audio (or embeddings of audio in a
:class:`~.fixed_space.FixedFeatureSpace` fitted on the real reference), so the model under test
cannot shape its own judge. The reference should be real clips passed through the same front end
and inversion as the generated ones (the best the pipeline can render); the caller builds it.

    space = FixedFeatureSpace()
    result = compare_sets(reference, generated, labels_ref, labels_gen, space, sample_rate=8000)
    result["summary"]   # FD ratio, precision, recall, NDB and the weakest class of each measure

Measures: Fréchet distance with a real-vs-real baseline of matched sizes; within-class diversity
(mean pairwise distance, generated / real); improved precision and recall (Kynkäänniemi et al.
2019, k-NN balls); NDB (Richardson & Weiss 2018); and the per-class spectral floor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...core.errors import ParameterError
from ...core.floor import frame_floor_db, spectral_floor_db
from .fixed_space import Clips, FixedFeatureSpace
from .metrics import mean_pairwise_distance, number_of_statistically_different_bins

# -- embedding-level measures -----------------------------------------------------------------


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(len(a), len(b))``."""
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``a (N, D)`` and ``b (M, D)``.

    Same value as :func:`.metrics.frechet_distance`, computed as
    ``tr sqrt(Ca Cb) = sum sqrt(eig(sqrt(Ca) Cb sqrt(Ca)))`` with symmetric eigendecompositions:
    stable for the singular covariances of small sets and ~100x faster than ``scipy.linalg.sqrtm``.
    """
    from threadpoolctl import threadpool_limits  # ships with scikit-learn, which librosa needs

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Threaded eigh on a few hundred dimensions is 10-40x slower on a busy machine than one thread.
    with threadpool_limits(1, user_api="blas"):
        w, v = np.linalg.eigh(cov_a)
        sqrt_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a), 0.0, None)).sum()
    mean_term = ((a.mean(axis=0) - b.mean(axis=0)) ** 2).sum()
    return float(max(0.0, mean_term + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of ``x (N, D)`` to its k-th nearest other row ``(N,)``."""
    if len(x) <= k:
        raise ParameterError(f"k-NN radii need more than k={k} items, got {len(x)}")
    d = _pairwise(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of ``points`` inside at least one ball (``centres``, ``radii``)."""
    return float((_pairwise(points, centres) <= radii[None, :]).any(axis=1).mean())


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3, balance: bool = True, seed: int = 0) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Precision: share of generated items inside some real item's k-NN ball (fidelity).
    Recall: share of real items inside some generated item's k-NN ball (coverage).

    Args:
        real, generated: embeddings ``(N, D)`` and ``(M, D)``.
        balance: subsample the larger set to the size of the smaller; radii shrink with set
            size, so unequal sizes would bias the measure.
    Returns:
        ``{"precision", "recall", "k", "n"}`` (``n`` items per side after balancing).
    """
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    if balance and len(real) != len(generated):
        rng = np.random.default_rng(seed)
        n = min(len(real), len(generated))
        real = real[np.sort(rng.choice(len(real), n, replace=False))] if len(real) > n else real
        generated = (
            generated[np.sort(rng.choice(len(generated), n, replace=False))] if len(generated) > n else generated
        )
    k_eff = min(k, len(real) - 1, len(generated) - 1)
    if k_eff < 1:
        raise ParameterError(f"precision/recall need at least 2 items per set, got {len(real)} and {len(generated)}")
    return {
        "precision": _coverage(generated, real, knn_radii(real, k_eff)),
        "recall": _coverage(real, generated, knn_radii(generated, k_eff)),
        "k": k_eff,
        "n": min(len(real), len(generated)),
    }


def _real_split(n_real: int, size: int, groups: np.ndarray | None, rng: np.random.Generator):
    """Indices ``(part, rest)`` of the real set: ``part`` has ``size`` items, drawn from whole
    groups when ``groups`` is given (so the two halves share no speaker / package)."""
    if groups is None:
        perm = rng.permutation(n_real)
        return np.sort(perm[:size]), np.sort(perm[size:])
    uniq = rng.permutation(np.unique(groups))
    taken, count = [], 0
    for g in uniq:
        if count >= size:
            break
        taken.append(g)
        count += int((groups == g).sum())
    in_part = np.isin(groups, taken)
    part, rest = np.flatnonzero(in_part), np.flatnonzero(~in_part)
    if len(part) > size:
        part = np.sort(rng.choice(part, size, replace=False))
    return part, rest


def frechet_with_baseline(
    real: np.ndarray,
    generated: np.ndarray,
    splits: int = 5,
    groups_real: Sequence | None = None,
    seed: int = 0,
) -> dict:
    """Fréchet distance of generated vs real and of real vs real at matched sample sizes.

    FD is biased upwards by small samples, so the baseline splits the real set into ``part``
    (``m`` items) and ``rest``, and compares ``FD(part, rest)`` with ``FD(generated_m, rest)``
    where ``generated_m`` is ``m`` generated items: both have the same sizes, so the ratio is
    about the data, not the counts. With ``groups_real`` the split keeps groups (speakers,
    packages) whole: the baseline then asks how far *unseen* real groups are.

    Returns:
        ``{"fd"}`` (all generated vs all real), ``{"fd_matched", "baseline", "ratio"}`` (means over
        ``splits`` random splits), ``"m"`` and ``"grouped"``.
    """
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    groups = None if groups_real is None else np.asarray([str(g) for g in groups_real])
    if groups is not None and len(groups) != len(real):
        raise ParameterError(f"groups_real has {len(groups)} entries for {len(real)} real items")
    m = min(len(real) // 2, len(generated))
    if m < 2:
        raise ParameterError(
            f"Fréchet baseline needs >= 4 real and >= 2 generated items, got {len(real)}, {len(generated)}"
        )
    rng = np.random.default_rng(seed)
    matched, base = [], []
    for _ in range(splits):
        part, rest = _real_split(len(real), m, groups, rng)
        if len(part) < 2 or len(rest) < 2:
            raise ParameterError("the real groups are too few to split into two sets of at least 2 items")
        gen = generated[rng.choice(len(generated), len(part), replace=False)]
        base.append(frechet_distance(real[part], real[rest]))
        matched.append(frechet_distance(gen, real[rest]))
    baseline, fd_matched = float(np.mean(base)), float(np.mean(matched))
    return {
        "fd": frechet_distance(generated, real),
        "fd_matched": fd_matched,
        "baseline": baseline,
        "ratio": fd_matched / max(baseline, 1e-12),
        "m": m,
        "grouped": groups is not None,
    }


def ndb_with_baseline(
    real: np.ndarray,
    generated: np.ndarray,
    bins: int = 20,
    groups_real: Sequence | None = None,
    splits: int = 3,
    seed: int = 0,
) -> dict:
    """NDB over k-means bins of the real set, and the mean count over ``splits`` real-vs-real splits
    (``min(N // 2, M)`` real items, from whole groups when ``groups_real`` is given, vs the rest)."""
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    different, k = number_of_statistically_different_bins(real, generated, k=bins, seed=seed)
    groups = None if groups_real is None else np.asarray([str(g) for g in groups_real])
    rng = np.random.default_rng(seed)
    fractions = []
    for _ in range(splits):
        part, rest = _real_split(len(real), min(len(real) // 2, len(generated)), groups, rng)
        base, k_base = number_of_statistically_different_bins(real[rest], real[part], k=bins, seed=seed)
        fractions.append(base / k_base)
    return {
        "bins": k,
        "different": different,
        "fraction": different / k,
        "baseline_fraction": float(np.mean(fractions)),
    }


def diversity_by_class(
    real: np.ndarray, generated: np.ndarray, labels_real: Sequence, labels_gen: Sequence
) -> dict[str, dict]:
    """Mean pairwise distance per class, real and generated, and their ratio (generated / real)."""
    out = {}
    lr, lg = np.asarray([str(x) for x in labels_real]), np.asarray([str(x) for x in labels_gen])
    for c in sorted(set(lr) & set(lg)):
        r, g = mean_pairwise_distance(real[lr == c]), mean_pairwise_distance(generated[lg == c])
        out[c] = {"real": r, "generated": g, "ratio": g / r if r > 0 else float("nan")}
    return out


# -- everything at once -----------------------------------------------------------------------


def compare_sets(
    real: Clips,
    generated: Clips,
    labels_real: Sequence,
    labels_gen: Sequence,
    space: FixedFeatureSpace,
    sample_rate: int,
    generated_rate: int | None = None,
    groups_real: Sequence | None = None,
    k: int = 3,
    ndb_bins: int = 20,
    splits: int = 5,
    seed: int = 0,
    real_raw: Clips | None = None,
    floor_set: tuple[Clips, Clips | None, Sequence] | None = None,
) -> dict:
    """Judge generated clips against real reference clips in a fixed feature space.

    Args:
        real: reference clips ``(samples,)`` at ``sample_rate`` Hz (real audio through the same
            front end and inversion as the generated).
        generated: clips at ``generated_rate`` Hz (default ``sample_rate``).
        labels_real, labels_gen: one class label per clip.
        space: fitted on ``real`` here if not fitted yet; a fitted space is used as it is.
        groups_real: optional group per real clip (speaker, package): the real-vs-real baselines
            (FD, precision / recall, NDB) then split by whole groups. Use it when the generated
            set cannot share the reference's groups (held-out speakers, other packages).
        k: neighbours for precision / recall radii.
        real_raw: the same real clips as recorded (not through the front end), one per ``real`` clip: the
            spectral floor is then also given against them (``raw_db``, ``delta_raw_db``), what a listener
            compares with; the resynthesised ``real`` clips carry the front end's own floor.
        floor_set: ``(rendered, recorded or None, labels)``, a larger real set the spectral floor is judged on
            instead of ``real`` / ``real_raw`` (a class's floors spread too widely for a few held-out clips).
    Returns:
        JSON-ready dict: ``space``, ``frechet``, ``ndb``, ``precision_recall`` (overall, per class
        and a real-vs-real ``baseline``: the part vs the rest), ``diversity`` (overall and per
        class), ``spectral_floor`` (per class, dB) and ``summary`` naming the weakest class for each per-class measure.
    """
    generated_rate = sample_rate if generated_rate is None else generated_rate
    if len(labels_real) != len(real) or len(labels_gen) != len(generated):
        raise ParameterError(
            f"labels do not match clips: {len(labels_real)} labels for {len(real)} real clips, "
            f"{len(labels_gen)} for {len(generated)} generated"
        )
    if not space.fitted:
        space.fit(real, sample_rate)
    emb_r, emb_g = space.transform(real, sample_rate), space.transform(generated, generated_rate)
    lr, lg = np.asarray([str(x) for x in labels_real]), np.asarray([str(x) for x in labels_gen])
    classes = sorted(set(lr) & set(lg))

    frechet = frechet_with_baseline(emb_r, emb_g, splits=splits, groups_real=groups_real, seed=seed)
    ndb = ndb_with_baseline(emb_r, emb_g, bins=ndb_bins, groups_real=groups_real, splits=splits, seed=seed)
    pr = precision_recall(emb_r, emb_g, k=k, seed=seed)
    groups = None if groups_real is None else np.asarray([str(g) for g in groups_real])
    rng, base_pr = np.random.default_rng(seed), []
    for _ in range(splits):
        part, rest = _real_split(len(emb_r), min(len(emb_r) // 2, len(emb_g)), groups, rng)
        base_pr.append(precision_recall(emb_r[rest], emb_r[part], k=k, seed=seed))
    pr["baseline"] = {key: float(np.mean([b[key] for b in base_pr])) for key in ("precision", "recall")}
    pr["per_class"] = {}
    for c in classes:
        if min((lr == c).sum(), (lg == c).sum()) >= 2:
            pr["per_class"][c] = precision_recall(emb_r[lr == c], emb_g[lg == c], k=k, seed=seed)

    div_overall = {"real": mean_pairwise_distance(emb_r), "generated": mean_pairwise_distance(emb_g)}
    div_overall["ratio"] = div_overall["generated"] / max(div_overall["real"], 1e-12)
    div = {"overall": div_overall, "per_class": diversity_by_class(emb_r, emb_g, lr, lg)}

    floor_rendered, floor_recorded, floor_labels = floor_set if floor_set is not None else (real, real_raw, lr)
    if real_raw is not None and floor_set is None and len(real_raw) != len(real):
        raise ParameterError(f"real_raw has {len(real_raw)} clips, real has {len(real)}")
    lf = np.asarray([str(x) for x in floor_labels])
    if len(lf) != len(floor_rendered) or (floor_recorded is not None and len(floor_recorded) != len(lf)):
        raise ParameterError(f"the floor set's clips and labels differ in number ({len(floor_rendered)}, {len(lf)})")
    floor_r, floor_g = spectral_floor_db(floor_rendered, sample_rate), spectral_floor_db(generated, generated_rate)
    floor = {
        c: {
            "real_db": float(np.median(floor_r[lf == c])),
            "generated_db": float(np.median(floor_g[lg == c])),
            "n_real": int((lf == c).sum()),
        }
        for c in classes
        if (lf == c).any()
    }
    for v in floor.values():
        v["delta_db"] = v["generated_db"] - v["real_db"]
    if floor_recorded is not None:
        floor_raw = spectral_floor_db(floor_recorded, sample_rate)
        # and inside the sounding frames, where noise between partials shows that the clip average hides
        frame_raw, frame_g = frame_floor_db(floor_recorded, sample_rate), frame_floor_db(generated, generated_rate)
        for c, v in floor.items():
            v["raw_db"] = float(np.median(floor_raw[lf == c]))
            v["delta_raw_db"] = v["generated_db"] - v["raw_db"]
            v["frame_raw_db"] = float(np.median(frame_raw[lf == c]))
            v["frame_generated_db"] = float(np.median(frame_g[lg == c]))
            v["delta_frame_raw_db"] = v["frame_generated_db"] - v["frame_raw_db"]

    summary = {
        "fd_ratio": frechet["ratio"],
        "precision": pr["precision"],
        "recall": pr["recall"],
        "ndb_fraction": ndb["fraction"],
        "diversity_ratio": div_overall["ratio"],
        # Mean over classes: the overall ratio is dominated by distances between classes, so a
        # set that keeps its classes apart but collapses inside each still looks diverse there.
        "diversity_within_class": float(np.mean([v["ratio"] for v in div["per_class"].values()]))
        if div["per_class"]
        else float("nan"),
        "missing_classes": sorted(set(lr) - set(lg)),
        "unknown_classes": sorted(set(lg) - set(lr)),
    }
    per_class_div = {c: v["ratio"] for c, v in div["per_class"].items() if np.isfinite(v["ratio"])}
    if per_class_div:
        # Weakest = furthest from 1 either way: too little diversity is collapse, too much is noise.
        worst = max(per_class_div, key=lambda c: abs(np.log(max(per_class_div[c], 1e-12))))
        summary["diversity_weakest"] = {"class": worst, "ratio": per_class_div[worst]}
    for key in ("precision", "recall"):
        if pr["per_class"]:
            worst = min(pr["per_class"], key=lambda c: pr["per_class"][c][key])
            summary[f"{key}_weakest"] = {"class": worst, key: pr["per_class"][worst][key]}
    if floor:
        worst = max(floor, key=lambda c: floor[c]["delta_db"])
        summary["spectral_floor_weakest"] = {"class": worst, **floor[worst]}
        if floor_recorded is not None:
            # Either way: a floor far below the recorded one is as far from it as one above.
            worst = max(floor, key=lambda c: abs(floor[c]["delta_raw_db"]))
            summary["spectral_floor_raw_weakest"] = {"class": worst, **floor[worst]}
    return {
        "space": space.to_dict(),
        "n_real": len(emb_r),
        "n_generated": len(emb_g),
        "frechet": frechet,
        "ndb": ndb,
        "precision_recall": pr,
        "diversity": div,
        "spectral_floor": {"quantile": 0.1, "n_real": len(lf), "per_class": floor},
        "summary": summary,
    }
