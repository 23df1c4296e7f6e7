"""The sampling prior of one trained run: one Gaussian per class against the Gaussian mixture, same weights.

    python benchmarks/bench_prior.py RUN --classifier CLF --temperature 0.9 --seeds 5 --json prior.json

Copies RUN (weights, config, statistics) twice into a temporary folder and fits each copy's prior on the
run's own training split, as export does: once with one Gaussian per class (``--components 1``, the prior
before mixtures), once with up to ``--components`` (default 10). Both are judged against the same
reference (held-out real clips through the run's front end) in the same fixed space, for ``--seeds``
seeds of the generated draws and of the real-vs-real baseline: accuracy, FD ratio, diversity, classifier
FD, and each class's spectral floor gap (generated minus real, dB; worst over seeds). A copying check
follows: each generated sound's fixed-space distance to the nearest training clip of its class, over the
same distance for held-out real clips (a ratio well below 1 would mean the sampler reproduces training
items). Prints one line per prior and seed and a median / worst summary.

``--postfilter``: ``run`` renders with the run's own ``postfilter.json`` if it has one, ``fit`` fits one in each
copy after its prior (on the training split, as export does), ``off`` renders without. ``--priors mixture``
skips the one-Gaussian copy. ``--per-label N``: N sounds per label and seed instead of the reference's count
(4 per class on the built-in one-shots), drawn from disjoint seeds (seed ``s`` draws items ``s * N`` onward;
without it, seed ``s`` draws items ``s`` to ``s + count - 1``, so consecutive seeds share all but one).
``--postfilter-kind`` (with ``fit``): what to fit (``gv+quantile``, as export; ``gv``; ``quantile``).

Floor gaps are given against the evaluation's floor set through the front end (``floor_gap_db``: every item of a
class up to 64, held-out ones first, :class:`~soundloom.sounds.evaluation.judge.FloorSet`), against the same items
as recorded (``floor_gap_raw_db``: "the real sounds'" of the issue, which the front end's own floor does not lift),
the same inside the sounding frames (``floor_gap_frame_raw_db``, :func:`~soundloom.core.floor.frame_floor_db`), and
against the training split's real clips through the front end (``floor_gap_train_db``); the summary gives each
class's gap furthest above real (``..._worst``) and furthest below (``..._lowest``) over seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from soundloom.core.floor import spectral_floor_db
from soundloom.data.store import FeatureStore
from soundloom.sounds.evaluation.fixed_space import FixedFeatureSpace
from soundloom.sounds.evaluation.judge import build_reference, generate_like, judge
from soundloom.sounds.evaluation.report import classifier_scorer, split_rows
from soundloom.sounds.generator import Generator
from soundloom.sounds.models import load_safetensors, save_safetensors
from soundloom.sounds.postfilter import DEFAULT_KIND, KINDS, POSTFILTER_FILE
from soundloom.sounds.training.data import StoreDataModule, split_store
from soundloom.sounds.training.export import fit_prior, fit_run_postfilter, posterior_means

KEYS = ("accuracy", "fixed_fd_ratio", "fixed_diversity_within_class", "classifier_fd_ratio")
LOWER_IS_BETTER = {"fixed_fd_ratio", "classifier_fd_ratio"}


def refit_copy(
    run: Path, dest: Path, components: int, postfilter: str = "run", pf_kind: str = DEFAULT_KIND, calibrate: bool = True
) -> Path:
    """A copy of ``run`` whose prior is refitted with at most ``components`` per class (and with ``postfilter``
    "fit", its post-filter of ``pf_kind`` refitted on that prior, its strengths calibrated unless not ``calibrate``;
    "off": removed); returns it."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "samples", "eval", "plots"))
    gen = Generator.from_run(dest, level="raw")
    info, kind = gen.info, gen.model.cfg.kind
    store = FeatureStore.open(info["store"])
    t = info["train"]
    split = split_store(store, t["val_fraction"], t["seed"], t.get("group_key", "auto"))
    if sorted(split.val_groups) != sorted(info["val_groups"]):
        raise SystemExit(f"{run}: the split does not reproduce the run's held-out groups")
    labels = list(gen.model.cfg.labels)
    data = StoreDataModule(store, split, info["label_key"], labels, gen.model.pitch_conditioned, 64, 0, t["seed"])
    z, lab, _ = posterior_means(gen.model, data.train_set)
    tensors = {k: v for k, v in load_safetensors(dest / "model.safetensors", kind=kind).items() if "prior." not in k}
    n_classes = len(labels) if gen.model.label_conditioned else 0
    prior = fit_prior(z, lab, n_classes, max_components=components)
    tensors.update(prior)
    save_safetensors(dest / "model.safetensors", tensors, kind=kind)
    if postfilter != "run":
        (dest / POSTFILTER_FILE).unlink(missing_ok=True)
    if postfilter == "fit":
        start = time.process_time()
        post = fit_run_postfilter(gen.model, prior, data.train_set, gen.normalizer, kind=pf_kind, calibrate=calibrate)
        cpu_s = round(time.process_time() - start, 1)
        if post is not None:
            post.save(dest)
            fitted = {"components": components, "postfilter": post.kind, "ratio": post.ratio, "strength": post.strength}
            if post.row_gain is not None:  # the classes the calibration gave row gains (zeros: none)
                fitted["row_gain"] = sorted(k for k, g in post.row_gain.items() if bool(g.any()))
            fitted["postfilter_cpu_s"] = cpu_s
            print(json.dumps(fitted), flush=True)
    return dest


def nearest_training_distance(space, sample_rate, train_emb, train_labels, clips, labels) -> np.ndarray:
    """Per clip, the fixed-space distance to the nearest training clip of the same label."""
    emb = np.asarray(space.transform(list(clips), sample_rate))
    return np.array([np.linalg.norm(train_emb[train_labels == lab] - e, axis=1).min() for e, lab in zip(emb, labels)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--classifier", type=Path, required=True)
    ap.add_argument(
        "--classifier-run",
        type=Path,
        default=None,
        help="A run on the store the classifier was trained on (its front end feeds the classifier); "
        "default: the run judged. For a run on other features (another mel count, linear dB).",
    )
    ap.add_argument("--temperature", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--components", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--postfilter", choices=("run", "fit", "off"), default="run")
    ap.add_argument("--postfilter-kind", choices=KINDS, default=DEFAULT_KIND)
    ap.add_argument(
        "--no-calibrate", action="store_true", help="with --postfilter fit: keep every class's strength at 1"
    )
    ap.add_argument("--priors", choices=("both", "mixture"), default="both")
    ap.add_argument("--per-label", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        if args.priors == "both":
            kind = args.postfilter_kind
            runs["one Gaussian"] = refit_copy(
                args.run, Path(tmp) / "gaussian", 1, args.postfilter, kind, not args.no_calibrate
            )
        runs[f"mixture (<= {args.components})"] = refit_copy(
            args.run,
            Path(tmp) / "mixture",
            args.components,
            args.postfilter,
            args.postfilter_kind,
            not args.no_calibrate,
        )
        first = Generator.from_run(next(iter(runs.values())), level="raw")
        info = first.info
        store = FeatureStore.open(info["store"])
        train_rows, val_rows = split_rows(store, info)
        label_key, group_key = info.get("label_key"), info.get("group_key")
        held = sorted(info.get("val_groups", []))
        ref = build_reference(first, store, val_rows, label_key, group_key, None, held)
        space = FixedFeatureSpace().fit(list(ref.clips), ref.sample_rate)
        # The classifier hears audio through the front end (and statistics) of the store it was trained on.
        front = Generator.from_run(args.classifier_run, level="raw") if args.classifier_run else first
        scorer, _, classes = classifier_scorer(args.classifier, front)
        ref_scores = scorer.audio(torch.from_numpy(ref.clips))
        train = build_reference(
            first, store, train_rows, label_key, group_key, None, [], recorded=False, floor_per_class=0
        )
        train_emb = np.asarray(space.transform(list(train.clips), ref.sample_rate))
        train_labels = np.array(train.labels)
        train_floor = spectral_floor_db(train.clips, ref.sample_rate)
        train_floor = {c: float(np.median(train_floor[train_labels == c])) for c in sorted(set(train.labels))}
        base = nearest_training_distance(space, ref.sample_rate, train_emb, train_labels, ref.clips, ref.labels)
        result: dict = {
            "run": str(args.run),
            "temperature": args.temperature,
            "postfilter": args.postfilter,
            "postfilter_kind": args.postfilter_kind if args.postfilter == "fit" else None,
            "calibrated": args.postfilter == "fit" and not args.no_calibrate,
            "per_label": args.per_label,
            "priors": {},
        }
        for name, run in runs.items():
            gen = Generator.from_run(run, level="raw")
            rows = []
            for seed in range(args.seeds):
                first_item = seed * args.per_label if args.per_label else seed
                made = generate_like(gen, ref, args.per_label, args.temperature, first_item, "fitted")
                judged = judge(ref, made, space, scorer.audio, classes, ref_scores, seed)
                s = judged["summary"]
                row = {"seed": seed, **{k: s.get(k) for k in KEYS}}
                row["accuracy_weakest"] = s.get("accuracy_weakest")
                floors = judged["fixed_space"]["spectral_floor"]["per_class"]
                row["floor_gap_db"] = {c: round(v["delta_db"], 1) for c, v in sorted(floors.items())}
                if all("delta_raw_db" in v for v in floors.values()):  # the recorded clips: the issue's "real sounds'"
                    row["floor_gap_raw_db"] = {c: round(v["delta_raw_db"], 1) for c, v in sorted(floors.items())}
                    row["floor_gap_frame_raw_db"] = {
                        c: round(v["delta_frame_raw_db"], 1) for c, v in sorted(floors.items())
                    }
                made_floor, made_labels = spectral_floor_db(made.clips, made.sample_rate), np.array(made.labels)
                row["floor_gap_train_db"] = {
                    c: round(float(np.median(made_floor[made_labels == c])) - f, 1)
                    for c, f in train_floor.items()
                    if (made_labels == c).any()
                }
                if seed == 0:
                    d = nearest_training_distance(
                        space, ref.sample_rate, train_emb, train_labels, made.clips, made.labels
                    )
                    row["nearest_training_ratio"] = float(np.median(d) / np.median(base))
                print(json.dumps({"prior": name, **row}), flush=True)
                rows.append(row)
            summary = {}
            for k in KEYS:
                vals = [r[k] for r in rows if r[k] is not None]
                if vals:
                    worst = max(vals) if k in LOWER_IS_BETTER else min(vals)
                    summary[k] = {"median": statistics.median(vals), "worst": worst}
            summary["nearest_training_ratio"] = rows[0]["nearest_training_ratio"]
            gaps = [r["floor_gap_db"] for r in rows]
            summary["floor_gap_db_worst"] = {c: max(g[c] for g in gaps) for c in gaps[0]}
            summary["floor_gap_db_lowest"] = {c: min(g[c] for g in gaps) for c in gaps[0]}
            for key in ("floor_gap_raw_db", "floor_gap_frame_raw_db"):
                if key in rows[0]:
                    gaps = [r[key] for r in rows]
                    summary[f"{key}_worst"] = {c: max(g[c] for g in gaps) for c in gaps[0]}
                    summary[f"{key}_lowest"] = {c: min(g[c] for g in gaps) for c in gaps[0]}
            gaps = [r["floor_gap_train_db"] for r in rows]
            summary["floor_gap_train_db_worst"] = {c: max(g[c] for g in gaps) for c in gaps[0]}
            summary["floor_gap_train_db_lowest"] = {c: min(g[c] for g in gaps) for c in gaps[0]}
            result["priors"][name] = {"seeds": rows, "summary": summary}
            print(name, json.dumps(summary), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
